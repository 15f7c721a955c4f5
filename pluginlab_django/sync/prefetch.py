"""Fetch the next page while the current one is being written."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()

#: Seconds a closed ``prefetched`` waits for its producer thread to end.
JOIN_TIMEOUT = 2.0


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterable[T], *, depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order while a thread produces up to ``depth`` ahead.

    A member sync alternates between waiting for PluginLab (HTTP) and for
    the database; overlapping the two nearly halves its wall time. Memory
    stays bounded (``depth + 1`` pages). An exception raised while producing
    is raised here, after the items produced before it, so a failing page
    still leaves the run's cursor on the last stored page. The producer only
    does HTTP, never touches the database (so it holds no connection).
    Closing the generator early stops the producer at its next item and
    waits up to ``JOIN_TIMEOUT`` seconds for it to end; a producer still in
    a request then ends when the request does, without producing more.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:
            put(_Failure(exc))
        else:
            put(_DONE)

    thread = threading.Thread(target=produce, name="pluginlab-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(JOIN_TIMEOUT)
