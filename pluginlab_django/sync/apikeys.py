"""Plugipay API key records → ``ApiKey`` rows, upserted by record id.

The secret is never stored: ``store_api_key`` does not read ``key.secret``.
Plugipay lists revoked keys too, so a record missing from a complete list
is one Plugipay no longer has: ``sync_api_keys`` marks it gone (``gone_at``),
never active, and clears the mark if the record is listed again.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .. import signals
from ..clients import get_plugipay_client
from ..clients import types as remote
from ..models import ApiKey, SyncRun
from .row_upsert import Outcome, upsert_row
from .runs import fail_run, finish_run, start_run

__all__ = ["mark_unlisted_api_keys_gone", "store_api_key", "sync_api_keys"]

CREATED, UPDATED, UNCHANGED = Outcome.CREATED.value, Outcome.UPDATED.value, Outcome.UNCHANGED.value


def api_key_row_values(key: remote.ApiKey) -> dict[str, Any]:
    return {
        "account_id": key.account_id[:64],
        "key_id": key.key_id[:128],
        "description": (key.description or "")[:255],
        "scope": key.scope,
        "mode": ApiKey.mode_for(key.key_id),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def store_api_key(key: remote.ApiKey) -> ApiKey:
    """Upsert one key record by its ``apk_…`` id (never its secret)."""
    return _store_api_key(key)[0]


def _store_api_key(key: remote.ApiKey) -> tuple[ApiKey, str]:
    write = upsert_row(
        ApiKey,
        {"record_id": key.id},
        api_key_row_values(key),
        touch={"last_synced_at": timezone.now()},
    )
    return write.row, write.outcome.value


def sync_api_keys() -> SyncRun:
    """Mirror every Plugipay key record; records failures instead of raising."""
    run = start_run(SyncRun.Kind.API_KEYS, complete=True)
    try:
        listed = get_plugipay_client().list_api_keys()
        for key in listed:
            _row, outcome = _store_api_key(key)
            if outcome == CREATED:
                run.created += 1
            elif outcome == UPDATED:
                run.updated += 1
            else:
                run.unchanged += 1
        run.marked_deleted = mark_unlisted_api_keys_gone({key.id for key in listed})
        run.pages = 1
    except Exception as exc:
        return fail_run(run, exc)
    signals.api_keys_synced.send(sender=ApiKey, created=run.created, updated=run.updated)
    return finish_run(run)


def mark_unlisted_api_keys_gone(listed_record_ids: set[str]) -> int:
    """Mark rows whose record Plugipay's complete list no longer holds as gone;
    un-mark rows listed again. Returns how many were newly marked.

    An empty list is not trusted (it always holds at least the calling key):
    nothing is marked from it.
    """
    if not listed_record_ids:
        return 0
    ApiKey.objects.filter(record_id__in=listed_record_ids, gone_at__isnull=False).update(
        gone_at=None
    )
    return (
        ApiKey.objects.filter(gone_at__isnull=True)
        .exclude(record_id__in=listed_record_ids)
        .update(gone_at=timezone.now(), revoke_scheduled_at=None)
    )
