"""``SyncRun`` bookkeeping, and the lock that keeps full member syncs apart.

Every bulk sync records one ``SyncRun``: started, counts, pages, cursor,
status, error, finished. Bulk syncs **record** their failures instead of
raising them, so callers (the command, the tasks, the webhook handling) all
read the outcome in one place; the exception that ended a failed run is kept
on the instance as ``run.exception`` (not stored) for callers that decide
whether to retry.

The full-member-sync lock is the running ``SyncRun`` itself. A partial unique
constraint (``kind='members' AND status='running'``, see the model) lets the
database refuse a second running members run, so the lock

- works across threads, processes and hosts on every backend Django supports
  partial unique indexes on (PostgreSQL, SQLite, ...) — a cache lock would
  not, with the default per-process ``LocMemCache``;
- cannot disagree with what the admin shows: "a members sync is running" and
  "the lock is held" are the same row;
- is released by the same write that records the outcome.

A process killed mid-run leaves its run ``running``; after
``SYNC_LOCK_TIMEOUT`` seconds from its start the next sync takes it over:
the abandoned run is marked failed (keeping its cursor, so ``resume`` can
continue from it) and a new run starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from .. import signals
from ..conf import pluginlab_settings
from ..models import SyncRun

__all__ = [
    "Progress",
    "SyncAlreadyRunning",
    "describe_error",
    "fail_run",
    "finish_run",
    "save_progress",
    "start_exclusive_run",
    "start_run",
]

logger = logging.getLogger("pluginlab_django.sync")

#: ``progress(done, total)``: called after each page or member; ``total`` is
#: ``None`` when unknown. Keeps tqdm (or any UI) out of the sync code.
Progress = Callable[[int, "int | None"], None]

#: Pauses between attempts to record a run's outcome (then a last attempt).
OUTCOME_SAVE_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0)

#: Longest ``SyncRun.error`` kept; the first per-member errors are enough.
MAX_ERROR_LENGTH = 2000

Status = SyncRun.Status


class SyncAlreadyRunning(RuntimeError):
    """Another run of this kind holds the lock; nothing was started."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        super().__init__(
            f"A {run.kind} sync is already running (sync run {run.pk}, "
            f"started {run.started_at:%Y-%m-%d %H:%M:%S %Z})."
        )


def start_run(kind: str, **fields: Any) -> SyncRun:
    """Record a running run of a kind that may run concurrently (chunks)."""
    run = SyncRun.objects.create(kind=kind, status=Status.RUNNING, **fields)
    run.exception = None
    return run


def start_exclusive_run(kind: str, **fields: Any) -> SyncRun:
    """Record a running run, or raise ``SyncAlreadyRunning`` if one holds the lock.

    The INSERT is the lock attempt: the partial unique constraint makes it
    fail while another run of ``kind`` is ``running``.
    """
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return start_run(kind, **fields)
        except IntegrityError:
            holder = SyncRun.objects.filter(kind=kind, status=Status.RUNNING).first()
            if holder is None:
                continue  # it finished in between: try again
            stale_before = timezone.now() - timedelta(seconds=pluginlab_settings.SYNC_LOCK_TIMEOUT)
            if holder.started_at > stale_before:
                raise SyncAlreadyRunning(holder) from None
            # Conditional: of several takers only one marks it; all retry.
            taken = SyncRun.objects.filter(pk=holder.pk, status=Status.RUNNING).update(
                status=Status.FAILED,
                finished_at=timezone.now(),
                error="Abandoned: still running after SYNC_LOCK_TIMEOUT; taken over.",
            )
            if taken:
                logger.warning("Sync run %s was abandoned; taking over its lock", holder.pk)
    raise SyncAlreadyRunning(holder)


def save_progress(run: SyncRun) -> None:
    """Persist the counters and cursor (one UPDATE; part of each page's transaction)."""
    run.save(
        update_fields=[
            "created",
            "updated",
            "unchanged",
            "marked_deleted",
            "failed",
            "pages",
            "cursor",
        ]
    )


def finish_run(run: SyncRun) -> SyncRun:
    """Mark ``run`` succeeded (releasing the lock) and send ``sync_finished``."""
    run.status = Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.error = run.error[:MAX_ERROR_LENGTH]
    _save_outcome(run)
    _send_finished(run)
    return run


def fail_run(run: SyncRun, exc: BaseException, *, detail: str = "") -> SyncRun:
    """Mark ``run`` failed with a secret-free description of ``exc`` (and ``detail``)."""
    run.status = Status.FAILED
    run.finished_at = timezone.now()
    run.error = "\n".join(filter(None, [describe_error(exc), detail]))[:MAX_ERROR_LENGTH]
    run.exception = exc
    _save_outcome(run)
    logger.warning("%s sync run %s failed: %s", run.kind, run.pk, describe_error(exc))
    _send_finished(run)
    return run


def _save_outcome(run: SyncRun) -> None:
    """Save the final status, retrying briefly: this write releases the lock,
    and a transient refusal (a busy SQLite, a PostgreSQL serialization
    hiccup) must not leave a run "running" until ``SYNC_LOCK_TIMEOUT``."""
    for delay in OUTCOME_SAVE_RETRY_DELAYS:
        try:
            run.save()
            return
        except OperationalError:
            logger.warning("Could not record the outcome of sync run %s; retrying", run.pk)
            time.sleep(delay)
    run.save()


def describe_error(exc: BaseException) -> str:
    """``"<ExceptionClass>: <message>"``, bounded.

    Client exceptions never carry a secret, token or body (see
    ``clients.exceptions``); other exceptions are described the same way.
    """
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_LENGTH]


def _send_finished(run: SyncRun) -> None:
    # A receiver's failure must not turn a recorded outcome into an exception.
    for receiver, result in signals.sync_finished.send_robust(sender=SyncRun, run=run):
        if isinstance(result, Exception):
            logger.error("Receiver %r of sync_finished raised %s", receiver, type(result).__name__)
