"""Retrying SQLite's "database is locked" on the app's own write paths.

SQLite lets one writer at a time. A busy timeout makes a second writer wait,
but a transaction that read first and then writes cannot wait (SQLite
refuses the lock upgrade at once to avoid a deadlock): that is the
"database is locked" an admin refresh hits while a webhook writes the same
moment. ``transaction_mode="IMMEDIATE"`` (Django >= 5.1) cures it for good;
on older Django, or without that setting, :func:`retry_if_locked` repeats the
whole short unit of work a few times, with a growing pause, then raises
:class:`DatabaseLocked` with a sentence the caller can show (an admin
message, a 503), never a 500 page.

Only a unit of work that runs in autocommit is retried: inside a caller's
transaction the lost statement cannot be replayed alone, so the error goes
up unchanged to whoever owns that transaction.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

__all__ = ["DEFAULT_ATTEMPTS", "DatabaseLocked", "is_database_locked", "retry_if_locked"]

T = TypeVar("T")

#: Attempts in all (the first one included).
DEFAULT_ATTEMPTS = 6
#: Seconds before the second attempt; doubled each time (0.05, 0.1, 0.2 … ≈ 1.5 s in all).
DEFAULT_FIRST_PAUSE = 0.05

_LOCKED_MESSAGES = ("database is locked", "database table is locked", "database is busy")


class DatabaseLocked(OperationalError):
    """The database stayed locked through every attempt (a clear, showable error)."""

    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"The database was busy (locked by another writer) through {attempts} attempts; "
            "nothing was lost, please retry."
        )
        self.attempts = attempts


def is_database_locked(exc: BaseException) -> bool:
    """True for SQLite's lock errors (the only ones worth repeating at once)."""
    if isinstance(exc, DatabaseLocked) or not isinstance(exc, OperationalError):
        return False
    text = str(exc).lower()
    return any(message in text for message in _LOCKED_MESSAGES)


def retry_if_locked(
    func: Callable[..., T] | None = None,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    first_pause: float = DEFAULT_FIRST_PAUSE,
    using: str = DEFAULT_DB_ALIAS,
) -> Any:
    """Decorator (with or without arguments): repeat ``func`` while SQLite is locked.

    ``func`` must be a short unit of work that is safe to repeat (its own
    transactions; remote calls idempotent). Raises :class:`DatabaseLocked`
    after the last attempt.
    """

    def decorator(inner: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(inner)
        def wrapped(*args: Any, **kwargs: Any) -> T:
            pause = first_pause
            for attempt in range(1, attempts + 1):
                try:
                    return inner(*args, **kwargs)
                except OperationalError as exc:
                    if not is_database_locked(exc) or connections[using].in_atomic_block:
                        raise
                    if attempt == attempts:
                        raise DatabaseLocked(attempts) from exc
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause *= 2
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapped

    if func is not None:
        return decorator(func)
    return decorator
