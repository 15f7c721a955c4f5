"""Celery tasks for syncing from PluginLab and Plugipay.

Thin wrappers over ``pluginlab_django.sync``: no business logic here.

- ``acks_late``: a task whose worker dies is redelivered. Every task is
  safe to run twice: member and identity syncs are upserts, a full member
  sync is guarded by the database lock (a second one is skipped), and quota
  chunks skip members already snapshotted since the fan-out was dispatched.
- A run that failed because a service was unreachable (``RemoteUnavailable``,
  after the HTTP transport's own retries) is retried with exponential
  backoff (not when tasks run eagerly: a retry would only repeat at once);
  a retried full member sync resumes from its cursor.
- A full member sync interrupted by a worker shutdown (``worker_shutting_down``
  with the solo/threads pools; SIGTERM or SIGINT delivered to a prefork
  child, as ``docker stop`` or systemd do to the whole group) stops after the
  page being stored, records its run ``failed`` ("interrupted") with the
  cursor, releases the lock, and is re-queued to resume from that cursor.
  A worker killed outright (SIGKILL) leaves the run to the heartbeat
  takeover (``SYNC_HEARTBEAT_TIMEOUT``) and the message to ``acks_late``.
- Identity and quota syncs of every member fan out: one task per
  ``SYNC_CHUNK_SIZE`` member ids, so several workers share the work.

Task names are stable strings (``pluginlab_django.tasks.<function>``) for
``CELERY_BEAT_SCHEDULE`` (see ``pluginlab_django.schedules``).
"""

from __future__ import annotations

import logging
import random
import signal
from datetime import datetime
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_shutting_down
from django.utils import timezone

from .. import sync
from ..clients.exceptions import RemoteUnavailable
from ..conf import pluginlab_settings
from ..models import SyncRun
from ..sync.interrupts import InterruptGuard, interrupt_all

__all__ = [
    "snapshot_quotas_task",
    "sync_api_keys_task",
    "sync_identities_task",
    "sync_member_task",
    "sync_members_task",
]

logger = logging.getLogger("pluginlab_django.sync")

#: Seconds before an interrupted full member sync resumes (on another worker).
INTERRUPTED_RETRY_SECONDS = 5

#: Retry delays grow as 30 s, 60 s, 120 s, ... capped at an hour, with jitter.
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
TASK_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "max_retries": 6}


def retry_countdown(retries: int) -> float:
    delay = min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)
    return delay * random.uniform(0.75, 1.25)


def retry_unavailable(task: Any, exc: RemoteUnavailable) -> None:
    """Retry ``task`` later with backoff (raises ``Retry``).

    Does nothing when the task runs eagerly (a retry would only repeat at
    once, after the transport's own retries) or has no retries left: the
    caller then reports the failure.
    """
    if task.request.is_eager or task.request.retries >= task.max_retries:
        return
    raise task.retry(exc=exc, countdown=retry_countdown(task.request.retries))


def run_summary(task: Any, run: SyncRun) -> dict[str, Any]:
    """A JSON-able outcome; a run that failed on ``RemoteUnavailable`` is retried."""
    if run.status == SyncRun.Status.FAILED and isinstance(run.exception, RemoteUnavailable):
        retry_unavailable(task, run.exception)
    return {
        "sync_run": run.pk,
        "kind": run.kind,
        "status": run.status,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "marked_deleted": run.marked_deleted,
        "failed": run.failed,
        "pages": run.pages,
        "error": run.error,
    }


@shared_task(name="pluginlab_django.tasks.sync_members_task", **TASK_OPTIONS)
def sync_members_task(self: Task, resume: bool = False) -> dict[str, Any]:
    """Mirror every member. A retry resumes from the failed run's cursor;
    while another full member sync runs this one is skipped, not queued."""
    try:
        with InterruptGuard(install_handlers=_signals_are_ours()) as guard:
            run = sync.sync_members(
                resume=resume or self.request.retries > 0, progress=guard.progress()
            )
    except sync.SyncAlreadyRunning as exc:
        logger.info("Skipped: %s", exc)
        return {"skipped": True, "running_sync_run": exc.run.pk}
    if guard.interrupted and run.status == SyncRun.Status.FAILED and not self.request.is_eager:
        # Published before this message is acked: the sync resumes elsewhere.
        raise self.retry(
            kwargs={"resume": True}, countdown=INTERRUPTED_RETRY_SECONDS, max_retries=None
        )
    return run_summary(self, run)


def _signals_are_ours() -> bool:
    """Whether this task may handle SIGTERM itself (for the sync's duration):
    where the default is to die at once — a prefork child (billiard's
    handler exits on the spot) or an eager call — but never over the worker's
    own shutdown handlers (solo pool), which ``worker_shutting_down`` covers."""
    current = signal.getsignal(signal.SIGTERM)
    if current in (signal.SIG_DFL, None):
        return True
    try:
        from billiard.common import _shutdown_cleanup
    except ImportError:  # pragma: no cover - billiard comes with Celery
        return False
    return current is _shutdown_cleanup


@worker_shutting_down.connect
def _interrupt_running_syncs(sig: Any = None, how: Any = None, **kwargs: Any) -> None:
    """A warm shutdown stops this process's full member syncs at their next page."""
    if interrupt_all(signal.SIGTERM):
        logger.warning("Worker shutting down (%s): interrupting the running member sync", how)


@shared_task(name="pluginlab_django.tasks.sync_member_task", **TASK_OPTIONS)
def sync_member_task(self: Task, member_id: str) -> int | None:
    """Refresh one member (a 404 marks it deleted remotely); returns the row pk."""
    try:
        row = sync.sync_member(member_id)
    except RemoteUnavailable as exc:
        retry_unavailable(self, exc)
        raise
    return row.pk if row is not None else None


@shared_task(name="pluginlab_django.tasks.sync_identities_task", **TASK_OPTIONS)
def sync_identities_task(self: Task, member_ids: list[str] | None = None) -> dict[str, Any]:
    """Without ids: fan out over every active member. With ids: sync them."""
    if member_ids is None:
        return fan_out(sync_identities_task)
    return run_summary(self, sync.sync_identities(member_ids))


@shared_task(name="pluginlab_django.tasks.snapshot_quotas_task", **TASK_OPTIONS)
def snapshot_quotas_task(
    self: Task, member_ids: list[str] | None = None, dispatched_at: str | None = None
) -> dict[str, Any]:
    """Without ids: fan out over every active member. With ids: snapshot them,
    skipping members already snapshotted since ``dispatched_at`` (retries)."""
    if member_ids is None:
        return fan_out(snapshot_quotas_task, dispatched_at=timezone.now().isoformat())
    since = datetime.fromisoformat(dispatched_at) if dispatched_at else None
    return run_summary(self, sync.snapshot_quotas(member_ids, skip_taken_since=since))


@shared_task(name="pluginlab_django.tasks.sync_api_keys_task", **TASK_OPTIONS)
def sync_api_keys_task(self: Task) -> dict[str, Any]:
    return run_summary(self, sync.sync_api_keys())


def fan_out(task: Any, **kwargs: Any) -> dict[str, Any]:
    """Enqueue ``task`` once per ``SYNC_CHUNK_SIZE`` active member ids.

    Independent tasks rather than a chord: no result backend is needed, and
    one failing chunk retries alone.
    """
    chunk_size = max(1, int(pluginlab_settings.SYNC_CHUNK_SIZE))
    chunks = members = 0
    for member_ids in sync.active_member_id_chunks(chunk_size):
        task.apply_async(kwargs={"member_ids": member_ids, **kwargs})
        chunks += 1
        members += len(member_ids)
    logger.info("Fanned out %s over %s members in %s tasks", task.name, members, chunks)
    return {"fanned_out": task.name, "chunks": chunks, "members": members}
