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

A run that is alive proves it: every page's progress UPDATE also refreshes
``heartbeat_at``. Ctrl-C and SIGTERM end a run cleanly (see
``sync.interrupts``), releasing the lock at once. A process that could not
clean up (SIGKILL, a dead machine) leaves its run ``running``; once its
heartbeat (or, before the first one, its start) is older than
``SYNC_HEARTBEAT_TIMEOUT`` seconds — or it started more than
``SYNC_LOCK_TIMEOUT`` seconds ago, whatever its heartbeat — the next sync
takes it over: the abandoned run is marked failed (keeping its cursor, so
``resume`` can continue from it) and a new run starts. Should the abandoned
process still be alive after all, its next progress or outcome write finds
its run no longer ``running`` and stops (``SyncRunTakenOver``): two runs
never write progress under one lock.
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
    "SyncRunTakenOver",
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


class SyncRunTakenOver(RuntimeError):
    """This run's lock was taken over (its heartbeat looked dead): stop writing."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        super().__init__(
            f"Sync run {run.pk} was taken over by another sync (its heartbeat was older "
            "than SYNC_HEARTBEAT_TIMEOUT); stopped."
        )


def start_run(kind: str, **fields: Any) -> SyncRun:
    """Record a running run of a kind that may run concurrently (chunks)."""
    now = timezone.now()
    fields.setdefault("started_at", now)
    fields.setdefault("heartbeat_at", now)
    run = SyncRun.objects.create(kind=kind, status=Status.RUNNING, **fields)
    run.exception = None
    return run


def start_exclusive_run(kind: str, **fields: Any) -> SyncRun:
    """Record a running run, or raise ``SyncAlreadyRunning`` if one holds the lock.

    The INSERT is the lock attempt: the partial unique constraint makes it
    fail while another run of ``kind`` is ``running``.
    """
    error: IntegrityError | None = None
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return start_run(kind, **fields)
        except IntegrityError as exc:
            error = exc
            holder = SyncRun.objects.filter(kind=kind, status=Status.RUNNING).first()
            if holder is None:
                continue  # it finished in between: try again
            reason = abandonment(holder)
            if reason is None:
                raise SyncAlreadyRunning(holder) from None
            # Conditional: of several takers only one marks it; all retry.
            taken = SyncRun.objects.filter(
                pk=holder.pk, status=Status.RUNNING, heartbeat_at=holder.heartbeat_at
            ).update(
                status=Status.FAILED,
                finished_at=timezone.now(),
                error=f"Abandoned: {reason}; taken over.",
            )
            if taken:
                logger.warning("Sync run %s was abandoned; taking over its lock", holder.pk)
    # Refused on every attempt: name the run holding the lock now, if any.
    holder = SyncRun.objects.filter(kind=kind, status=Status.RUNNING).first()
    if holder is not None:
        raise SyncAlreadyRunning(holder)
    # No run holds the lock, so the INSERT failed for another reason: the
    # database's own error says which.
    assert error is not None
    raise error


def abandonment(run: SyncRun) -> str | None:
    """Why a ``running`` run's process is presumed dead, or None if it is not:
    no heartbeat for ``SYNC_HEARTBEAT_TIMEOUT`` seconds, or running for
    ``SYNC_LOCK_TIMEOUT``."""
    now = timezone.now()
    last_sign_of_life = run.heartbeat_at or run.started_at
    if last_sign_of_life < now - timedelta(seconds=pluginlab_settings.SYNC_HEARTBEAT_TIMEOUT):
        return (
            "no heartbeat for SYNC_HEARTBEAT_TIMEOUT seconds (the process was killed "
            "or its machine died)"
        )
    if run.started_at < now - timedelta(seconds=pluginlab_settings.SYNC_LOCK_TIMEOUT):
        return "still running after SYNC_LOCK_TIMEOUT"
    return None


#: What ``save_progress`` writes: the counters, the cursor and the heartbeat.
PROGRESS_FIELDS = (
    "created",
    "updated",
    "unchanged",
    "marked_deleted",
    "failed",
    "pages",
    "cursor",
    "heartbeat_at",
)


def save_progress(run: SyncRun) -> None:
    """Persist the counters, cursor and heartbeat (one UPDATE; part of each
    page's transaction, so the heartbeat costs no extra statement).

    Conditional on the run still being ``running``: raises
    ``SyncRunTakenOver`` when another sync took its lock over meanwhile.
    """
    run.heartbeat_at = timezone.now()
    values = {name: getattr(run, name) for name in PROGRESS_FIELDS}
    if not SyncRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(**values):
        raise SyncRunTakenOver(run)


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
    hiccup) must not leave a run "running" until its heartbeat times out."""
    for delay in OUTCOME_SAVE_RETRY_DELAYS:
        try:
            _write_outcome(run)
            return
        except OperationalError:
            logger.warning("Could not record the outcome of sync run %s; retrying", run.pk)
            time.sleep(delay)
    _write_outcome(run)


def _write_outcome(run: SyncRun) -> None:
    """One UPDATE, only while the run is still ``running``: a run taken over
    meanwhile keeps the failure its taker recorded (and the taker's lock)."""
    values = {
        field.attname: getattr(run, field.attname)
        for field in SyncRun._meta.concrete_fields
        if not field.primary_key
    }
    if not SyncRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(**values):
        logger.warning("Sync run %s was taken over before it ended; outcome not recorded", run.pk)
        run.refresh_from_db(fields=["status", "finished_at", "error"])


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
