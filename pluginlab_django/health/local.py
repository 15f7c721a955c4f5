"""Local checks: the settings, the cached JWKS, the syncs, the webhook backlog,
the usage-event outbox and scheduled API key revocations.

None of them calls a remote host; ``settings`` is cheap enough for a
liveness probe.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.cache import caches
from django.utils import timezone
from django.utils.timesince import timesince

from ..conf import pluginlab_settings
from ..schedules import DEFAULT_BEAT_SCHEDULE
from ..tokens import SigningKeyStore
from .registry import Result, doctor_check

#: The beat entry of each sync kind: a last success older than twice its
#: interval is a warning (a sync kind without one: older than a day).
SCHEDULE_OF_KIND = {
    "members": "pluginlab-sync-members",
    "identities": "pluginlab-sync-identities",
    "quotas": "pluginlab-snapshot-quotas",
    "apikeys": "pluginlab-sync-api-keys",
}
#: A delivery waiting longer than this is a warning (the worker may be down).
WEBHOOK_WAIT_WARNING = timedelta(minutes=10)


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    return timesince(timezone.now() - timedelta(seconds=seconds)).split(",")[0].replace("\xa0", " ")


@doctor_check("settings", liveness=True)
def settings_valid() -> Result:
    """Every PLUGINLAB value passes its validator and the credentials are set."""
    problems = pluginlab_settings.problems()
    missing = [k for k in ("PLUGIN_ID", "ADMIN_SECRET") if not pluginlab_settings.raw(k)]
    if problems or missing:
        words = [p.message for p in problems] + [f"PLUGINLAB[{k!r}] is not set." for k in missing]
        return Result.fail(
            f"{len(words)} setting(s) wrong: " + " ".join(words),
            keys=[p.key for p in problems] + missing,
        )
    return Result.ok("every PLUGINLAB setting is valid")


@doctor_check("jwks.cache")
def jwks_cache() -> Result:
    """The JWKS shared by the web workers (CACHE_ALIAS): its key ids and age."""
    store = SigningKeyStore(pluginlab_settings.CERT_URL)
    entry = caches[pluginlab_settings.CACHE_ALIAS].get(store.shared_key)
    if not isinstance(entry, dict):
        return Result.warn(
            f"no JWKS in the {pluginlab_settings.CACHE_ALIAS!r} cache yet "
            "(fetched on the first token; a per-process cache is empty here)"
        )
    kids = [k.get("kid") for k in entry.get("jwks", {}).get("keys", [])]
    age = max(0.0, time.time() - float(entry.get("fetched_at", 0)))
    stale = time.time() > float(entry.get("expires_at", 0))
    summary = f"JWKS cached {_age(age)} ago, key ids {', '.join(map(str, kids)) or 'none'}"
    details = {"kids": kids, "age_seconds": round(age)}
    if stale:
        return Result.warn(f"{summary}: past its lifetime (the cert URL may be failing)", **details)
    return Result.ok(summary, **details)


def _sync_check(kind: str, label: str) -> None:
    @doctor_check(f"sync.{kind}")
    def check() -> Result:
        from ..models import SyncRun

        runs = SyncRun.objects.filter(kind=kind)
        last_ok = runs.filter(status=SyncRun.Status.SUCCEEDED).order_by("-started_at").first()
        latest = runs.exclude(status=SyncRun.Status.RUNNING).order_by("-started_at").first()
        if last_ok is None:
            if latest is not None:
                error = latest.error[:200]
                return Result.warn(f"{label}: never succeeded; last run failed: {error}")
            return Result.warn(f"{label}: never run")
        finished = last_ok.finished_at or last_ok.started_at
        age = (timezone.now() - finished).total_seconds()
        entry = DEFAULT_BEAT_SCHEDULE.get(SCHEDULE_OF_KIND.get(kind, ""), {})
        limit = 2 * float(entry.get("schedule", 12 * 3600))
        summary = f"{label}: last success {_age(age)} ago (sync run {last_ok.pk})"
        details = {"last_success": finished.isoformat(), "age_seconds": round(age)}
        if latest is not None and latest.pk != last_ok.pk and latest.started_at > finished:
            error = latest.error[:200]
            return Result.warn(f"{summary}; a later run failed: {error}", **details)
        if age > limit:
            return Result.warn(f"{summary}: older than {_age(limit)} (is beat running?)", **details)
        return Result.ok(summary, **details)


for _kind, _label in (
    ("members", "member sync"),
    ("identities", "identity sync"),
    ("quotas", "quota snapshots"),
    ("apikeys", "API key sync"),
):
    _sync_check(_kind, _label)


@doctor_check("webhooks.deliveries")
def webhook_deliveries() -> Result:
    """Deliveries waiting to be processed, failed, and stuck in a dead worker's claim."""
    from ..models import WebhookDelivery

    Status = WebhookDelivery.Status
    now = timezone.now()
    waiting = WebhookDelivery.objects.filter(status=Status.RECEIVED)
    oldest = waiting.order_by("received_at").values_list("received_at", flat=True).first()
    failed = WebhookDelivery.objects.filter(status=Status.FAILED).count()
    claim_timeout = timedelta(seconds=pluginlab_settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS)
    stuck = WebhookDelivery.objects.filter(
        status=Status.PROCESSING, claimed_at__lt=now - claim_timeout
    ).count()
    count = waiting.count()
    summary = f"{count} waiting, {failed} failed, {stuck} stuck"
    details = {"waiting": count, "failed": failed, "stuck": stuck}
    if oldest is not None:
        summary += f" (oldest waiting {_age((now - oldest).total_seconds())})"
    if stuck or failed or (oldest is not None and now - oldest > WEBHOOK_WAIT_WARNING):
        return Result.warn(summary + ": see the admin's webhook deliveries", **details)
    return Result.ok(summary, **details)


@doctor_check("events.outbox")
def usage_events() -> Result:
    """The custom-event outbox: pending, stuck ``sending`` (a sender died
    mid-POST: reported, never resent blindly) and failed events."""
    from ..services.outbox import outbox_health

    health = outbox_health()
    summary = (
        f"usage events: {health.pending} pending, {health.sending} sending "
        f"({health.stuck_sending} stuck), {health.failed} failed"
    )
    details = {
        "pending": health.pending,
        "sending": health.sending,
        "stuck_sending": health.stuck_sending,
        "failed": health.failed,
    }
    problems = list(health.warnings)
    if health.failed:
        problems.append(
            f"{health.failed} refused by PluginLab: see the admin's custom events, status Failed."
        )
    if problems:
        return Result.warn(f"{summary}. " + " ".join(problems), **details)
    return Result.ok(summary, **details)


#: A due revocation not carried out after this long is a warning: the
#: ``pluginlab-revoke-due-api-keys`` beat entry runs every 5 minutes.
REVOCATION_OVERDUE = timedelta(
    seconds=2 * float(DEFAULT_BEAT_SCHEDULE["pluginlab-revoke-due-api-keys"]["schedule"])
)


@doctor_check("apikeys.revocations")
def scheduled_revocations() -> Result:
    """API keys a rotation scheduled for revocation: how many wait, the next
    one due, and any overdue (the periodic task is not running)."""
    from ..models import ApiKey

    now = timezone.now()
    scheduled = ApiKey.objects.active().filter(revoke_scheduled_at__isnull=False)
    count = scheduled.count()
    if not count:
        return Result.ok("no API key revocation scheduled", scheduled=0, overdue=0)
    overdue = scheduled.filter(revoke_scheduled_at__lt=now - REVOCATION_OVERDUE).count()
    upcoming = (
        scheduled.filter(revoke_scheduled_at__gte=now)
        .order_by("revoke_scheduled_at")
        .values_list("revoke_scheduled_at", flat=True)
        .first()
    )
    summary = f"{count} API key revocation(s) scheduled"
    if upcoming is not None:
        summary += f", the next in {_age((upcoming - now).total_seconds())}"
    details = {"scheduled": count, "overdue": overdue}
    if overdue:
        return Result.warn(
            f"{summary}; {overdue} overdue by more than {_age(REVOCATION_OVERDUE.total_seconds())}"
            " (is Celery beat running? `manage.py pluginlab_apikeys revoke-due` revokes them now)",
            **details,
        )
    return Result.ok(summary, **details)
