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

from django.db import connections, router

from .conf import pluginlab_settings
from .models import CustomEvent, Member, QuotaSnapshot
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


def _quota_sql() -> str:
    """The check's one statement. Plain SQL (PostgreSQL and SQLite alike)
    because it runs on every metered request: the ORM would rebuild the same
    correlated subqueries each time at several times the cost. Two counts,
    each a range of the ``pluginlab_event_quota`` index."""
    member, snapshot, event = (m._meta for m in (Member, QuotaSnapshot, CustomEvent))
    # Table names come from the models; every value is a parameter.
    return f"""
        SELECT m.id, m.deleted_remotely_at, q.id, q.usage_count, q.usage_limit,
               q.is_over_limit, q.is_unlimited,
               (SELECT COUNT(*) FROM {event.db_table} e
                 WHERE e.member_remote_id = m.remote_id AND e.is_in_quota = %s
                   AND e.status IN (%s, %s))
             + (SELECT COUNT(*) FROM {event.db_table} e
                 WHERE e.member_remote_id = m.remote_id AND e.is_in_quota = %s
                   AND e.status = %s AND e.sent_at > q.taken_at)
          FROM {member.db_table} m
          LEFT JOIN {snapshot.db_table} q ON q.id = m.latest_quota_id
         WHERE m.remote_id = %s
    """  # noqa: S608


_SQL: dict[str, str] = {}


def check_quota(member_id: str) -> QuotaCheck:
    """May ``member_id`` make one more call? (One query; see the module doc.)"""
    sql = _SQL.get("quota") or _SQL.setdefault("quota", _quota_sql())
    status = CustomEvent.Status
    with connections[router.db_for_read(Member)].cursor() as cursor:
        cursor.execute(sql, [True, status.PENDING, status.SENDING, True, status.SENT, member_id])
        row = cursor.fetchone()
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
