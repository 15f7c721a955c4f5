"""Mirrored member rows written straight to the database (no remote), for
tests that need a member row as a sync would have left it, or many members
quickly (admin, dashboard)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from pluginlab_django.models import Member, QuotaSnapshot


def mirror(remote_id: str, **fields) -> Member:
    """A mirrored member row, as a sync would have left it."""
    return Member.objects.create(remote_id=remote_id, email=f"{remote_id}@example.com", **fields)


def make_members(count: int, *, over_every: int = 3) -> list[Member]:
    """Rows straight in the mirror (no remote), each with a latest snapshot."""
    now = timezone.now()
    members = Member.objects.bulk_create(
        Member(
            remote_id=f"mem_{i:040x}",
            email=f"user{i}@example.com",
            name=f"User {i}",
            sign_in_method="google" if i % 2 else "email-and-password",
            is_verified=bool(i % 2),
            plan_id="plan_pro" if i % 4 == 0 else "",
            remote_created_at=now - timedelta(days=i),
        )
        for i in range(count)
    )
    snapshots = QuotaSnapshot.objects.bulk_create(
        QuotaSnapshot(
            member=m,
            usage_count=120 if i % over_every == 0 else 10,
            usage_limit=100,
            is_over_limit=i % over_every == 0,
            interval="month",
        )
        for i, m in enumerate(members)
    )
    for member, snapshot in zip(members, snapshots, strict=True):
        member.latest_quota = snapshot
    Member.objects.bulk_update(members, ["latest_quota"])
    return members


def mirrored_member_with(sandbox, method: str, *, revoked: bool = False) -> Member:
    """The first sandbox member signed in with ``method`` (whose refresh token
    is revoked or not), mirrored with its identities."""
    from pluginlab_django import sync

    revoked_ids = set(sandbox.revoked_refresh_member_ids())
    for member_id in sandbox.member_ids():
        if sandbox.get_member(member_id)["auth"]["signInMethod"] != method:
            continue
        if (member_id in revoked_ids) == revoked:
            row = sync.sync_member(member_id)
            sync.sync_identities([member_id])
            return row
    raise AssertionError(f"the sandbox has no {method} member (revoked={revoked})")
