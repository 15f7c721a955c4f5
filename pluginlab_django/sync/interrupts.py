"""Ctrl-C and SIGTERM during a bulk sync: stop at the next page, record it, release the lock.

Python's default reaction to SIGINT (``KeyboardInterrupt``, not an
``Exception``) skips the sync's failure recording, and SIGTERM kills the
process outright: either way the run stayed ``running`` and held the lock.
Raising from the signal handler at an arbitrary point is no better: it can
land inside a database driver call and leave the connection unusable for
the very write that releases the lock.

So an ``InterruptGuard`` only *notes* the signal, and the sync stops at its
next safe point — right after a page's transaction committed (the guard
wraps the ``progress`` callback). There ``SyncInterrupted`` (an
``Exception``) is raised once; the sync records the run ``failed``
("interrupted") with the cursor of the last stored page, which releases the
lock, and ``--resume`` continues from there. Every later signal (a
supervisor and the process group often both deliver one) is only logged,
so it cannot cut that cleanup short. The guard restores the previous
handlers when it exits.

A Celery worker's warm shutdown (``worker_shutting_down``) interrupts the
guards of its process the same way.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from .runs import Progress

__all__ = ["INTERRUPT_SIGNALS", "InterruptGuard", "SyncInterrupted", "interrupt_all", "signal_name"]

logger = logging.getLogger("pluginlab_django.sync")

INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Guards active in this process (interrupted together on a worker shutdown).
_active: set[InterruptGuard] = set()
_active_lock = threading.Lock()


class SyncInterrupted(Exception):
    """A sync stopped on a signal after its last stored page (resumable)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(
            f"Interrupted by {signal_name(signum)}; the cursor of the last stored page "
            "is saved: resume with `pluginlab_sync members --resume`."
        )


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class InterruptGuard:
    """Note SIGINT/SIGTERM while a sync runs; raise ``SyncInterrupted`` at safe points.

    ``install_handlers=False`` (or outside the main thread, where Python
    allows no handlers) leaves signal handling alone: only ``interrupt()``
    (a worker shutdown) then stops the sync.
    """

    def __init__(self, *, install_handlers: bool = True) -> None:
        self.install_handlers = install_handlers
        self.signum: int | None = None
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptGuard:
        if self.install_handlers and threading.current_thread() is threading.main_thread():
            for signum in INTERRUPT_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        with _active_lock:
            _active.add(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        with _active_lock:
            _active.discard(self)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @property
    def interrupted(self) -> bool:
        return self.signum is not None

    def interrupt(self, signum: int = signal.SIGTERM) -> None:
        """Ask the sync to stop at its next safe point (first request wins)."""
        if self.signum is None:
            self.signum = signum
            logger.warning(
                "%s received: the sync stops after the page being stored", signal_name(signum)
            )
        else:
            logger.warning("%s received again: already stopping", signal_name(signum))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.interrupt(signum)

    def check(self) -> None:
        """Raise ``SyncInterrupted`` once, if a signal arrived."""
        if self.signum is not None and not self.raised:
            self.raised = True
            raise SyncInterrupted(self.signum)

    def progress(self, inner: Progress | None = None) -> Progress:
        """A ``progress`` callback that calls ``inner`` then ``check()``:
        a sync calls it after each stored page, which is the safe point."""

        def progress(done: int, total: int | None) -> None:
            if inner is not None:
                inner(done, total)
            self.check()

        return progress

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + number."""
        return 128 + (self.signum or 0)


def interrupt_all(signum: int = signal.SIGTERM) -> int:
    """Interrupt every active guard of this process; return how many."""
    with _active_lock:
        guards = list(_active)
    for guard in guards:
        guard.interrupt(signum)
    return len(guards)
