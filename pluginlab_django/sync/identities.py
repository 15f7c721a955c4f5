"""Identities: a member's OAuth identities → ``Identity`` rows.

Identities are a pure mirror of PluginLab: after a sync a member has exactly
the providers PluginLab lists. A provider no longer listed (the member
unlinked it) is **deleted** locally — keeping its tokens would keep
credentials PluginLab itself dropped. It is not silent: each removal is
logged (member id and provider, never a token), counted in the run's
``marked_deleted``, and passed to ``identities_synced`` as ``removed``.

Tokens are encrypted by the model field; values are compared decrypted, so
an unchanged identity is not rewritten (Fernet output differs every time).
``key_fingerprint`` is compared too: a row under an older key, or one no
configured key can decrypt (it reads as empty), is rewritten under the first
key — the sync repairs what a lost key broke.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..clients import get_pluginlab_client
from ..clients import types as remote
from ..db_locks import retry_if_locked
from ..fields import current_fingerprint
from ..models import Identity, Member, SyncRun
from .per_member import MemberOutcome, run_per_member
from .row_upsert import Outcome, RowWrite, upsert_row
from .runs import Progress

__all__ = ["store_identities", "sync_identities"]

logger = logging.getLogger("pluginlab_django.sync")


def identity_row_values(identity: remote.Identity) -> dict[str, Any]:
    """The row's fields for ``identity``. ``key_fingerprint`` is the key the
    tokens will be written under: a row under an older (or lost) key compares
    as changed, so a sync rewrites it under the current key."""
    has_token = bool(identity.access_token or identity.refresh_token)
    return {
        "provider_user_id": identity.provider_user_id[:255],
        "access_token": identity.access_token,
        "access_token_expires_at": remote.ms_to_datetime(identity.access_token_expires_at_ms),
        "refresh_token": identity.refresh_token,
        "refresh_token_expires_at": remote.ms_to_datetime(identity.refresh_token_expires_at_ms),
        "last_used_at": remote.ms_to_datetime(identity.last_used_at_ms),
        "key_fingerprint": current_fingerprint() if has_token else "",
    }


def store_identities(member: Member, identities: Mapping[str, remote.Identity]) -> list[Identity]:
    """Upsert ``member``'s identities by provider; delete providers no longer listed."""
    rows, _outcome = _store_identities(member, identities)
    return rows


@retry_if_locked  # SQLite: a concurrent writer took the lock (db_locks)
def _store_identities(
    member: Member, identities: Mapping[str, remote.Identity]
) -> tuple[list[Identity], MemberOutcome]:
    now = timezone.now()
    outcome = MemberOutcome()
    rows: list[Identity] = []
    with transaction.atomic():
        existing = {
            row.provider: row for row in Identity.objects.select_for_update().filter(member=member)
        }
        for provider, identity in identities.items():
            existing.pop(provider, None)
            write = _upsert_identity(member, provider, identity_row_values(identity), now)
            if write.outcome is Outcome.CREATED:
                outcome.created += 1
            elif write.outcome is Outcome.UPDATED:
                outcome.updated += 1
            else:
                outcome.unchanged += 1
            rows.append(write.row)
        removed = sorted(existing)
        if removed:
            Identity.objects.filter(member=member, provider__in=removed).delete()
            outcome.removed = len(removed)
            for provider in removed:
                logger.info(
                    "Identity %s of member %s is no longer listed by PluginLab; deleted",
                    provider,
                    member.remote_id,
                )
    signals.identities_synced.send(sender=Identity, member=member, identities=rows, removed=removed)
    return rows, outcome


def _upsert_identity(
    member: Member, provider: str, values: dict[str, Any], now: datetime
) -> RowWrite[Identity]:
    """The shared per-row upsert, keyed by (member, provider)."""
    return upsert_row(
        Identity,
        {"member": member, "provider": provider},
        values,
        touch={"last_synced_at": now},
        also=_reauth_cleared,
    )


def _reauth_cleared(row: Identity, changed: Sequence[str]) -> dict[str, Any]:
    """A new refresh token means the member signed in again."""
    if "refresh_token" in changed and row.needs_reauth:
        return {"needs_reauth": False}
    return {}


def sync_identities(
    member_ids: Iterable[str] | None = None, *, progress: Progress | None = None
) -> SyncRun:
    """Mirror the identities of ``member_ids`` (default: every active member).

    Records failures in the returned ``SyncRun`` instead of raising.
    """
    client = get_pluginlab_client()

    def handle(member: Member) -> MemberOutcome:
        identities = client.get_member_identities(member.remote_id)
        return _store_identities(member, identities)[1]

    return run_per_member(SyncRun.Kind.IDENTITIES, member_ids, handle, progress)


@retry_if_locked  # SQLite: a concurrent writer took the lock (db_locks)
def store_identity(
    member: Member, identity: remote.Identity, *, refreshed: bool = False
) -> Identity:
    """Upsert one identity (e.g. a refresh's answer) without touching the others.

    ``refreshed`` records a successful refresh: ``refreshed_at`` is set and
    ``needs_reauth`` cleared, since the provider accepted the refresh token.
    """
    now = timezone.now()
    values = identity_row_values(identity)
    if refreshed:
        values.update(refreshed_at=now, needs_reauth=False)
    return _upsert_identity(member, identity.provider, values, now).row
