"""Sending the ``CustomEvent`` outbox to PluginLab: each event at most once,
each member's events in the order they were recorded.

Recording a use (``services.events.record_usage``) only writes a ``pending``
row; this module sends them:

* **One sender at a time.** ``send_pending`` first takes the sender lock (a
  PostgreSQL advisory lock, released by the server itself if the sender's
  process dies; elsewhere a lock in the ``CACHE_ALIAS`` cache that expires,
  which spans processes only when that cache is shared). A second sender
  started meanwhile returns at once (``busy``): the running one goes on
  until nothing is pending, so nothing waits for long.
* **Claimed before the POST.** Each event is switched ``pending`` →
  ``sending`` by a conditional UPDATE just before its POST, then marked
  ``sent`` (2xx) or ``failed`` (PluginLab refused it: 400, 404...). A sender
  killed between the two leaves the event ``sending``: PluginLab may have
  counted it, so it is never resent by a later sender, only reported
  (``outbox_health``; the admin's filter, dashboard and *Resend* action).
* **Unavailable means later.** No answer, 429 or 5xx (after the transport's
  own retries, which never repeat a POST that may have arrived), or our
  credentials refused (401/403): the event goes back to ``pending`` and the
  whole run stops, so a member's later events never overtake it. The Celery
  task retries with backoff and the periodic task sends whatever is left:
  an outage of an hour delays events by an hour and loses none.
* **Order.** Events are taken oldest first; one member's events all go
  through one thread, one after the other. Several members' events are sent
  in parallel (``EVENT_SEND_CONCURRENCY`` threads) when the database is not
  SQLite and the caller is not inside a transaction.

Do not call ``send_pending`` inside a transaction that may roll back: a
rolled-back "sent" would be sent again.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.db import connection, connections, router
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from ..clients import PluginLabClient, PluginLabError, RemoteUnavailable, get_pluginlab_client
from ..clients.types import EventLocation
from ..conf import pluginlab_settings
from ..models import CustomEvent
from ..sql_values import adapt_datetimes

__all__ = [
    "OutboxHealth",
    "SendSummary",
    "kick_sender",
    "outbox_health",
    "resend",
    "send_pending",
]

logger = logging.getLogger("pluginlab_django.events")

#: Events read per round; the run goes on round after round until none is pending.
BATCH_SIZE = 500
#: Any 64-bit number unlikely to collide with the site's own advisory locks.
ADVISORY_LOCK_KEY = 0x706C5F6F7574626F  # "pl_outbo"
CACHE_LOCK_KEY = "pluginlab:events:sender-lock"
Status = CustomEvent.Status
_FIELDS = (
    "pk",
    "member_remote_id",
    "event_source",
    "is_in_quota",
    "country_code",
    "subdivision_code",
)


@dataclass
class SendSummary:
    """What one ``send_pending`` run did."""

    sent: int = 0
    failed: int = 0
    still_pending: int = 0
    #: Why the run stopped early (PluginLab unreachable or refusing our
    #: credentials); empty when it did not.
    unavailable: str = ""
    #: Another sender held the lock: this run sent nothing.
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OutboxHealth:
    """Counts for the admin dashboard and ``pluginlab_doctor``."""

    pending: int
    sending: int
    #: ``sending`` for longer than ``EVENT_SENDING_STALE_SECONDS``: left by a
    #: sender that died mid-POST; reported, resent only from the admin.
    stuck_sending: int
    failed: int
    oldest_pending_at: datetime | None
    stale_after_seconds: int
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.oldest_pending_at is not None:
            data["oldest_pending_at"] = self.oldest_pending_at.isoformat()
        return data


def stale_before() -> datetime:
    """Claims older than this were left by a dead sender."""
    return timezone.now() - timedelta(seconds=int(pluginlab_settings.EVENT_SENDING_STALE_SECONDS))


def outbox_health() -> OutboxHealth:
    """The outbox in one aggregate query, with a warning per problem found."""
    figures = CustomEvent.objects.aggregate(
        pending=Count("pk", filter=Q(status=Status.PENDING)),
        sending=Count("pk", filter=Q(status=Status.SENDING)),
        stuck=Count("pk", filter=Q(status=Status.SENDING, claimed_at__lt=stale_before())),
        failed=Count("pk", filter=Q(status=Status.FAILED)),
        oldest_pending=Min("created_at", filter=Q(status=Status.PENDING)),
    )
    stale = int(pluginlab_settings.EVENT_SENDING_STALE_SECONDS)
    warnings = []
    if figures["stuck"]:
        warnings.append(
            f"{figures['stuck']} custom event(s) have been 'sending' for over {stale} s: "
            "their sender died mid-send and PluginLab may or may not have counted them. "
            "Check them in the admin (Custom events, status Sending) and resend the ones "
            "PluginLab did not record."
        )
    oldest = figures["oldest_pending"]
    if oldest is not None and oldest < timezone.now() - timedelta(seconds=max(stale, 60)):
        warnings.append(
            f"{figures['pending']} custom event(s) are waiting to be sent, the oldest since "
            f"{oldest:%Y-%m-%d %H:%M} UTC: is a Celery worker (and beat) running, and is "
            "PluginLab's event API reachable? `manage.py pluginlab_events send-pending` "
            "sends them now."
        )
    return OutboxHealth(
        pending=figures["pending"],
        sending=figures["sending"],
        stuck_sending=figures["stuck"],
        failed=figures["failed"],
        oldest_pending_at=oldest,
        stale_after_seconds=stale,
        warnings=warnings,
    )


def resend(queryset: QuerySet[CustomEvent]) -> int:
    """Put ``sending`` (stuck) and ``failed`` events of ``queryset`` back to
    ``pending``, for the next sender. The admin's decision, never automatic:
    a stuck event may already be counted by PluginLab."""
    return queryset.filter(status__in=(Status.SENDING, Status.FAILED)).update(
        status=Status.PENDING, claimed_at=None
    )


# Sending ----------------------------------------------------------------


def send_pending(*, limit: int | None = None) -> SendSummary:
    """Send pending events until none is left (or ``limit`` were tried).

    Raises ``ImproperlyConfigured`` when PluginLab credentials are not set
    (before claiming anything). Never raises for PluginLab's answers: they
    are in the summary and on the rows.
    """
    client = get_pluginlab_client()
    summary = SendSummary()
    with sender_lock() as acquired:
        if not acquired:
            summary.busy = True
        else:
            _run(client, summary, limit)
    summary.still_pending = CustomEvent.objects.filter(status=Status.PENDING).count()
    return summary


def _run(client: PluginLabClient, summary: SendSummary, limit: int | None) -> None:
    stop = threading.Event()
    threads = _threads()
    tried = 0
    while not stop.is_set() and (limit is None or tried < limit):
        size = BATCH_SIZE if limit is None else min(BATCH_SIZE, limit - tried)
        batch = list(
            CustomEvent.objects.filter(status=Status.PENDING)
            .order_by("pk")
            .values_list(*_FIELDS)[:size]
        )
        if not batch:
            return
        tried += len(batch)
        by_member: dict[str, list[tuple]] = {}
        for row in batch:
            by_member.setdefault(row[1], []).append(row)
        if threads <= 1 or len(by_member) == 1:
            _send_groups(client, list(by_member.values()), summary, stop, in_thread=False)
            continue
        shares: list[list[list[tuple]]] = [[] for _ in range(threads)]
        for i, group in enumerate(by_member.values()):
            shares[i % threads].append(group)
        with ThreadPoolExecutor(threads, thread_name_prefix="pluginlab-events") as pool:
            for future in [
                pool.submit(_send_groups, client, share, summary, stop, in_thread=True)
                for share in shares
                if share
            ]:
                future.result()


def _threads() -> int:
    if connection.vendor == "sqlite" or connection.in_atomic_block:
        return 1
    return max(1, int(pluginlab_settings.EVENT_SEND_CONCURRENCY))


_summary_lock = threading.Lock()


def _send_groups(
    client: PluginLabClient,
    groups: list[list[tuple]],
    summary: SendSummary,
    stop: threading.Event,
    *,
    in_thread: bool,
) -> None:
    try:
        for group in groups:
            for row in group:
                if stop.is_set():
                    return
                outcome = _send_one(client, row)
                with _summary_lock:
                    if outcome == Status.SENT:
                        summary.sent += 1
                    elif outcome == Status.FAILED:
                        summary.failed += 1
                    elif outcome is not None:  # the reason PluginLab is unavailable
                        summary.unavailable = summary.unavailable or outcome
                        stop.set()
                        return
    finally:
        if in_thread:
            connections.close_all()


def _send_one(client: PluginLabClient, row: tuple) -> str | None:
    """Claim, POST, record. Returns SENT, FAILED, None (someone else had
    claimed it), or the text of why PluginLab is unavailable."""
    pk, member_id, source, in_quota, country, subdivision = row
    claim = timezone.now()
    if not _execute("claim", claim, pk):
        return None
    try:
        client.create_custom_event(
            source,
            member_id=member_id or None,
            is_in_quota=in_quota if member_id else None,
            location=EventLocation(country, subdivision or None) if country else None,
        )
    except RemoteUnavailable as exc:
        _execute("record", Status.PENDING, str(exc)[:2000], pk, claim)
        return str(exc) or "PluginLab is unavailable"
    except PluginLabError as exc:
        if exc.status in (401, 403):  # our credentials, not this event
            _execute("record", Status.PENDING, str(exc)[:2000], pk, claim)
            return str(exc)
        _execute("record", Status.FAILED, str(exc)[:2000], pk, claim)
        logger.warning("PluginLab refused custom event pk=%s: %s", pk, exc)
        return Status.FAILED
    _execute("sent", timezone.now(), pk, claim)
    return Status.SENT


#: The sender's three statements, ``%s`` for every value. Plain SQL: each
#: event costs two of them, and building the same UPDATE with the ORM costs
#: several times the statement itself (most of a send's CPU, measured).
_STATEMENTS = {
    # pending -> sending; claimed_at is the claim's identity.
    "claim": "UPDATE {table} SET status = '{sending}', claimed_at = %s, "
    "attempts = attempts + 1 WHERE id = %s AND status = '{pending}'",
    # The outcome, only while our claim holds.
    "sent": "UPDATE {table} SET status = '{sent}', sent_at = %s, error = '' "
    "WHERE id = %s AND status = '{sending}' AND claimed_at = %s",
    "record": "UPDATE {table} SET status = %s, error = %s "
    "WHERE id = %s AND status = '{sending}' AND claimed_at = %s",
}


def _execute(name: str, *values: Any) -> int:
    """Run one of ``_STATEMENTS``; the number of rows it changed."""
    conn = connections[router.db_for_write(CustomEvent)]
    sql = _STATEMENTS[name].format(
        table=conn.ops.quote_name(CustomEvent._meta.db_table),
        pending=Status.PENDING,
        sending=Status.SENDING,
        sent=Status.SENT,
    )
    with conn.cursor() as cursor:
        cursor.execute(sql, adapt_datetimes(conn, values))
        return cursor.rowcount


@contextlib.contextmanager
def sender_lock() -> Iterator[bool]:
    """Yield whether this process may send (one sender at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        return
    cache = caches[pluginlab_settings.CACHE_ALIAS]
    token = secrets.token_hex(8)
    timeout = int(pluginlab_settings.EVENT_SENDING_STALE_SECONDS)
    acquired = cache.add(CACHE_LOCK_KEY, token, timeout)
    try:
        yield acquired
    finally:
        if acquired and cache.get(CACHE_LOCK_KEY) == token:
            cache.delete(CACHE_LOCK_KEY)


# After commit -------------------------------------------------------------

_next_kick = 0.0
_kick_lock = threading.Lock()
KICK_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
}


def kick_sender() -> None:
    """Make a sender run soon (``transaction.on_commit`` after recording uses).

    Eager Celery: the send task runs now. Otherwise it is enqueued with a
    countdown of ``EVENT_KICK_DELAY_SECONDS``, at most once per that window
    per process: a use committed within the window is committed before that
    task starts, so it is sent with the others. A broker failure is logged,
    never raised, and not retried within the window: the row is committed
    and the periodic task will send it.
    """
    global _next_kick
    from ..tasks.events import send_pending_events

    if send_pending_events.app.conf.task_always_eager:
        send_pending_events.apply()
        return
    delay = float(pluginlab_settings.EVENT_KICK_DELAY_SECONDS)
    now = time.monotonic()
    with _kick_lock:
        if now < _next_kick:
            return
        _next_kick = now + delay
    try:
        # Fail fast: a request must not wait on a broker that is down (this
        # process tries again after the window; the periodic task catches up).
        send_pending_events.apply_async(countdown=delay, retry_policy=KICK_RETRY_POLICY)
    except Exception:
        logger.warning(
            "Could not queue the custom event sender; the periodic task will send the events",
            exc_info=True,
        )
