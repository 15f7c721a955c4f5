"""A context manager that records every send of one Django signal, for tests
that check what was announced (and, with ``raises``, that a broken receiver
cannot undo an outcome)."""

from __future__ import annotations

import threading
from typing import Any

from django.dispatch import Signal


class SignalRecorder:
    """Records ``{"sender": ..., **kwargs}`` per send while connected.

    Thread-safe (the live server is threaded); ``raises`` makes it a broken
    receiver that raises after recording.
    """

    def __init__(self, signal: Signal, raises: Exception | None = None) -> None:
        self.__qualname__ = "SignalRecorder"  # send_robust logs receivers by qualname
        self.signal = signal
        self.raises = raises
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append({"sender": sender, **kwargs})
        if self.raises is not None:
            raise self.raises

    def __enter__(self) -> SignalRecorder:
        self.signal.connect(self, weak=False, dispatch_uid=id(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.signal.disconnect(dispatch_uid=id(self))
