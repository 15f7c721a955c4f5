"""Parameters for the plain SQL statements on hot paths.

Outbox claims, webhook claims and their outcome UPDATEs are written as plain
SQL (the ORM costs several times the statement there). Django's cursor
passes parameters to the driver as they are, so a ``datetime`` must first be
adapted the way the ORM adapts a ``DateTimeField`` value (SQLite stores text,
in the connection's time zone handling): done here, once, for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["adapt_datetimes"]


def adapt_datetimes(connection: BaseDatabaseWrapper, values: Iterable[Any]) -> list[Any]:
    """``values`` with every ``datetime`` adapted for ``connection``."""
    adapt = connection.ops.adapt_datetimefield_value
    return [adapt(value) if isinstance(value, datetime) else value for value in values]
