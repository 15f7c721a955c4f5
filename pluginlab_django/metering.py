"""Usage metering: a fresh quota check, and one recorded use per successful call.

The DRF permission ``permissions.MeteredQuota`` and the plain-view decorator
``decorators.metered`` are thin adapters over the two functions here:

* ``check_quota(member_id)``: may this member make one more call? The
  latest ``QuotaSnapshot``'s ``usageCount`` plus the uses recorded here and
  not yet in that snapshot: every ``pending`` or ``sending`` event, and the
  events PluginLab acknowledged after the snapshot was taken. So a member
  with limit 100 and 99 used gets exactly one more call, whatever the sync
  schedule; a new snapshot (a sync, or a ``quota.*`` webhook) supersedes
  the local count because only events sent after it still count. One query.
* ``record_use(check, event_source, ...)``: the outbox INSERT for a call that
  succeeded; no network call (``services.events.record_event``).

**The bound under concurrency.** The check and the record are not one
atomic step (holding a lock on the member for the whole view would
serialise their calls): calls running at once all pass the check before
any of them records. A member therefore never exceeds the limit by more
than the number of their calls in flight at the same moment, minus one:
with K concurrent calls and one use left, at most K are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from .conf import pluginlab_settings
from .models import CustomEvent, Member
from .services.events import clean_custom_event, record_event

__all__ = ["MeterSpec", "QuotaCheck", "check_quota", "record_use"]

#: The 403 messages (``IsWithinQuota`` uses the same ones).
QUOTA_EXCEEDED_MESSAGE = "The quota of your plan is used up."
MEMBER_DELETED_MESSAGE = "This PluginLab account was deleted."


@dataclass(frozen=True)
class QuotaCheck:
    """The answer of ``check_quota``."""

    allowed: bool
    #: "ok", "no_snapshot" (allowed or not per QUOTA_WHEN_NO_SNAPSHOT),
    #: "quota_exceeded", "member_deleted".
    code: str
    member_id: str
    member_pk: int | None = None
    used: int | None = None  # snapshot usageCount + local uses since
    limit: int | None = None
    unlimited: bool = False

    @property
    def message(self) -> str:
        return MEMBER_DELETED_MESSAGE if self.code == "member_deleted" else QUOTA_EXCEEDED_MESSAGE

    @property
    def remaining(self) -> int | None:
        if self.unlimited or self.limit is None or self.used is None:
            return None
        return max(self.limit - self.used, 0)


@dataclass(frozen=True)
class MeterSpec:
    """What to record for each successful call of a metered view."""

    event_source: str
    is_in_quota: bool = True
    country_code: str = ""
    subdivision_code: str = ""

    @classmethod
    def build(cls, event_source: str, is_in_quota: bool = True, **location: str) -> MeterSpec:
        """Validated once, when the view is defined (a bad source fails at import)."""
        source, country, subdivision = clean_custom_event(
            event_source, location.get("country_code", ""), location.get("subdivision_code", "")
        )
        return cls(source, bool(is_in_quota), country, subdivision)


def _local_uses() -> Subquery:
    """Uses of the outer member not yet in its latest snapshot."""
    counted = Q(status__in=(CustomEvent.Status.PENDING, CustomEvent.Status.SENDING)) | Q(
        status=CustomEvent.Status.SENT, sent_at__gt=OuterRef("latest_quota__taken_at")
    )
    uses = (
        CustomEvent.objects.filter(
            counted, member_remote_id=OuterRef("remote_id"), is_in_quota=True
        )
        .order_by()
        .values("member_remote_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(uses, output_field=IntegerField()), Value(0))


def check_quota(member_id: str) -> QuotaCheck:
    """May ``member_id`` make one more call? (One query; see the module doc.)"""
    row = (
        Member.objects.filter(remote_id=member_id)
        .annotate(local_uses=_local_uses())
        .values_list(
            "pk",
            "deleted_remotely_at",
            "latest_quota_id",
            "latest_quota__usage_count",
            "latest_quota__usage_limit",
            "latest_quota__is_over_limit",
            "latest_quota__is_unlimited",
            "local_uses",
        )
        .first()
    )
    if row is None:
        return _no_snapshot(member_id, None)
    pk, deleted_at, snapshot_pk, count, limit, over, unlimited, local = row
    if deleted_at is not None:
        return QuotaCheck(False, "member_deleted", member_id, pk)
    if snapshot_pk is None:
        return _no_snapshot(member_id, pk)
    used = count + local
    if unlimited:
        return QuotaCheck(True, "ok", member_id, pk, used, limit, unlimited=True)
    allowed = not over and used < limit
    return QuotaCheck(allowed, "ok" if allowed else "quota_exceeded", member_id, pk, used, limit)


def _no_snapshot(member_id: str, pk: int | None) -> QuotaCheck:
    allowed = pluginlab_settings.QUOTA_WHEN_NO_SNAPSHOT == "allow"
    return QuotaCheck(allowed, "no_snapshot", member_id, pk)


def record_use(check: QuotaCheck, spec: MeterSpec) -> Any:
    """Record one use for a call ``check`` allowed and that succeeded."""
    return record_event(
        member_pk=check.member_pk,
        member_id=check.member_id,
        event_source=spec.event_source,
        is_in_quota=spec.is_in_quota,
        country_code=spec.country_code,
        subdivision_code=spec.subdivision_code,
    )


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300
