"""The one per-row upsert: lock → create in a savepoint → diff → save.

Identities and API key records are written one row at a time (a member has
a handful of identities; Plugipay lists a few dozen keys), so they do not
need the members' bulk statement; they need the same race-safe steps every
time, and those live here once:

1. ``SELECT ... FOR UPDATE`` the row by its natural key (a no-op lock on
   SQLite, which serialises writers anyway);
2. none: ``INSERT`` inside a savepoint; an ``IntegrityError`` means another
   writer created it meanwhile, so re-lock that row and go on as an update;
3. compare each value with the stored one and save only the changed fields
   (plus ``touch``, e.g. ``last_synced_at``); nothing changed: no write.

The outcome is returned as a ``RowWrite``, never attached to the instance.
Call it inside ``transaction.atomic()`` when several rows must change
together; it opens its own atomic block otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from django.db import IntegrityError, models, transaction

M = TypeVar("M", bound=models.Model)

__all__ = ["Outcome", "RowWrite", "upsert_row"]


class Outcome(str, Enum):
    """What a write did to one row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class RowWrite(Generic[M]):
    """The row as stored after the write, what happened, and which fields changed."""

    row: M
    outcome: Outcome
    changed: tuple[str, ...] = ()

    @property
    def created(self) -> bool:
        return self.outcome is Outcome.CREATED

    @property
    def written(self) -> bool:
        return self.outcome is not Outcome.UNCHANGED


#: ``also(row, changed)`` → extra field values to save along with a change.
AlsoHook = Callable[[Any, Sequence[str]], Mapping[str, Any]]


def upsert_row(
    model: type[M],
    lookup: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    touch: Mapping[str, Any] | None = None,
    also: AlsoHook | None = None,
) -> RowWrite[M]:
    """Insert or update the ``model`` row found by ``lookup`` with ``values``.

    ``touch``: values saved on create and with any change, but not compared
    (a sync timestamp). ``also``: extra values to save when something changed
    (e.g. clearing ``needs_reauth`` when the refresh token changed).
    """
    touch = dict(touch or {})
    manager = model._default_manager
    with transaction.atomic(using=manager.db):
        row = manager.select_for_update().filter(**lookup).first()
        if row is None:
            try:
                with transaction.atomic(using=manager.db):
                    row = manager.create(**lookup, **values, **touch)
                return RowWrite(row, Outcome.CREATED, tuple(values))
            except IntegrityError:  # created concurrently: update that row instead
                row = manager.select_for_update().get(**lookup)
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        if not changed:
            return RowWrite(row, Outcome.UNCHANGED)
        extra = dict(also(row, changed)) if also is not None else {}
        updates = {**{name: values[name] for name in changed}, **extra, **touch}
        for name, value in updates.items():
            setattr(row, name, value)
        row.save(update_fields=list(updates))
        return RowWrite(row, Outcome.UPDATED, tuple(dict.fromkeys([*changed, *extra])))
