"""Celery tasks keeping identity access tokens fresh ahead of use.

Opt-in: ``pluginlab_django.schedules.IDENTITY_TOKEN_REFRESH_SCHEDULE`` is a
separate beat entry (not in ``DEFAULT_BEAT_SCHEDULE``), because refreshing
costs PluginLab and provider calls that many sites never need: they call
``get_access_token`` when they use a token, and it refreshes on demand.

Without ids the task fans out: one task per ``SYNC_CHUNK_SIZE`` identities
whose token expires within ``IDENTITY_REFRESH_WINDOW_SECONDS`` (refreshable
providers, a refresh token stored, not marked ``needs_reauth``). Each chunk
refreshes through ``services.identities`` — the same single-flight claim as
``get_access_token`` and the admin action — so a chunk run twice (acks_late
redelivery) or racing a web request refreshes each token once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from ..clients.exceptions import RemoteError, RemoteUnavailable
from ..conf import pluginlab_settings
from ..services import identities as identity_service
from .sync import TASK_OPTIONS, retry_unavailable

__all__ = ["refresh_identity_tokens_task"]

logger = logging.getLogger("pluginlab_django.sync")


@shared_task(name="pluginlab_django.tasks.refresh_identity_tokens_task", **TASK_OPTIONS)
def refresh_identity_tokens_task(
    self: Task, identity_ids: list[int] | None = None, within_seconds: int | None = None
) -> dict[str, Any]:
    """Refresh access tokens expiring within the window (see the module)."""
    window = int(
        pluginlab_settings.IDENTITY_REFRESH_WINDOW_SECONDS
        if within_seconds is None
        else within_seconds
    )
    if identity_ids is None:
        return _fan_out(window)
    outcome = {"refreshed": 0, "still_valid": 0, "needs_reauth": 0, "failed": 0}
    unavailable: RemoteUnavailable | None = None
    for identity_id in identity_ids:
        try:
            refreshed = identity_service.refresh_if_expiring(identity_id, within_seconds=window)
        except identity_service.IdentityNotFound:
            continue  # unlinked meanwhile
        except identity_service.ReauthenticationRequired:
            outcome["needs_reauth"] += 1
        except RemoteError as exc:
            outcome["failed"] += 1
            logger.warning("Refreshing identity %s failed: %s", identity_id, exc)
            if isinstance(exc, RemoteUnavailable):
                unavailable = exc
        else:
            outcome["refreshed" if refreshed else "still_valid"] += 1
    if unavailable is not None:
        # Done ones are still valid on a retry, so they are not refreshed twice.
        retry_unavailable(self, unavailable)
    return outcome


def _fan_out(window: int) -> dict[str, Any]:
    ids = identity_service.expiring_identity_ids(window)
    chunk_size = max(1, int(pluginlab_settings.SYNC_CHUNK_SIZE))
    chunks = 0
    for start in range(0, len(ids), chunk_size):
        refresh_identity_tokens_task.apply_async(
            kwargs={"identity_ids": ids[start : start + chunk_size], "within_seconds": window}
        )
        chunks += 1
    logger.info("Fanned out token refreshes of %s identities in %s tasks", len(ids), chunks)
    name = refresh_identity_tokens_task.name
    return {"fanned_out": name, "chunks": chunks, "identities": len(ids)}
