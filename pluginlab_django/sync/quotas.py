"""Quota usage → ``QuotaSnapshot`` rows (history kept) and ``Member.latest_quota``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import signals
from ..clients import get_pluginlab_client
from ..clients import types as remote
from ..models import Member, QuotaSnapshot, SyncRun
from .per_member import MemberFailed, MemberOutcome, run_per_member
from .runs import Progress

__all__ = ["snapshot_quotas", "store_quota"]


def store_quota(member: Member, usage: remote.QuotaUsage) -> QuotaSnapshot:
    """Record a snapshot and point ``member.latest_quota`` at it.

    The pointer only moves forward in time, so two snapshots racing for one
    member leave it on the newer one.
    """
    with transaction.atomic():
        snapshot = QuotaSnapshot.objects.create(
            member=member,
            taken_at=timezone.now(),
            interval=usage.interval[:32],
            usage_count=max(usage.usage_count, 0),
            usage_limit=max(usage.usage_limit, 0),
            is_over_limit=usage.is_over_limit,
            is_unlimited=usage.is_unlimited,
            reset_in_days=usage.reset_in_days,
        )
        Member.objects.filter(pk=member.pk).filter(
            Q(latest_quota__isnull=True) | Q(latest_quota__taken_at__lte=snapshot.taken_at)
        ).update(latest_quota=snapshot)
    member.latest_quota = snapshot
    signals.quota_snapshot_taken.send(sender=QuotaSnapshot, member=member, snapshot=snapshot)
    return snapshot


def snapshot_quotas(
    member_ids: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
    skip_taken_since: datetime | None = None,
) -> SyncRun:
    """Take a quota snapshot of ``member_ids`` (default: every active member).

    ``skip_taken_since``: members whose latest snapshot is at least this
    recent are skipped (counted ``unchanged``). The fanned-out Celery tasks
    pass their dispatch time, so a retried or redelivered chunk does not
    snapshot the same members twice.

    Records failures in the returned ``SyncRun`` instead of raising.
    """
    client = get_pluginlab_client()
    member_ids = None if member_ids is None else list(member_ids)

    def is_fresh(member: Member) -> bool:
        return skip_taken_since is not None and (
            QuotaSnapshot.objects.filter(member=member, taken_at__gte=skip_taken_since).exists()
        )

    def handle(member: Member) -> MemberOutcome:
        if is_fresh(member):
            return MemberOutcome(unchanged=1)
        usage = client.get_quota_usage(member.remote_id)
        if usage is None:
            raise MemberFailed("PluginLab has no quota for this member (404)")
        store_quota(member, usage)
        return MemberOutcome(created=1)

    return run_per_member(SyncRun.Kind.QUOTAS, member_ids, handle, progress)
