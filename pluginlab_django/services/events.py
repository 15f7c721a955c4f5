"""Custom usage events, validated and logged in ``CustomEvent``.

Two ways in:

* ``record_usage``: the metering path (views, tasks, any code). Writes a
  ``pending`` row in the caller's transaction and makes no network call; the
  outbox (``services.outbox``) sends it after commit. A PluginLab outage
  delays the event, it never fails the caller.
* ``send_custom_event``: the admin's "send now", synchronous, logged with
  its outcome.

``outbox_health()`` (re-exported from ``services.outbox``) is what the
dashboard and ``pluginlab_doctor`` report.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from ..clients import RemoteError, get_pluginlab_client
from ..clients.types import EventLocation
from ..models import CustomEvent, Member
from .outbox import OutboxHealth, kick_sender, outbox_health

__all__ = [
    "EVENT_SOURCE_MAX_LENGTH",
    "CustomEventInvalid",
    "OutboxHealth",
    "clean_custom_event",
    "outbox_health",
    "record_usage",
    "send_custom_event",
]

EVENT_SOURCE_MAX_LENGTH = 10
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SUBDIVISION = re.compile(r"^(?:[A-Z]{2}-)?[A-Z0-9]{1,3}$")


class CustomEventInvalid(ValueError):
    """The event was refused before sending; the message says which field."""


def clean_custom_event(
    event_source: str, country_code: str = "", subdivision_code: str = ""
) -> tuple[str, str, str]:
    """Normalise and validate the fields the way PluginLab does."""
    event_source = (event_source or "").strip()
    if not event_source:
        raise CustomEventInvalid("The event source is required.")
    if len(event_source) > EVENT_SOURCE_MAX_LENGTH:
        raise CustomEventInvalid(
            f"The event source has at most {EVENT_SOURCE_MAX_LENGTH} characters."
        )
    country_code = (country_code or "").strip().upper()
    subdivision_code = (subdivision_code or "").strip().upper()
    if country_code and not _COUNTRY.match(country_code):
        raise CustomEventInvalid("The country code is two letters (ISO 3166-1 alpha-2), e.g. US.")
    if subdivision_code and not country_code:
        raise CustomEventInvalid("A subdivision code needs a country code.")
    if subdivision_code and not _SUBDIVISION.match(subdivision_code):
        raise CustomEventInvalid("The subdivision code looks like CA or US-CA (ISO 3166-2).")
    return event_source, country_code, subdivision_code


def send_custom_event(
    *,
    event_source: str,
    member: Member | None = None,
    member_id: str = "",
    is_in_quota: bool = True,
    country_code: str = "",
    subdivision_code: str = "",
    sent_by: Any = None,
) -> CustomEvent:
    """Send one custom event and log it.

    Raises ``CustomEventInvalid`` before sending anything, or the client's
    ``RemoteError`` after logging the failed event (its ``custom_event``
    attribute is the log row).
    """
    event_source, country_code, subdivision_code = clean_custom_event(
        event_source, country_code, subdivision_code
    )
    member_id = member_id or (member.remote_id if member else "")
    location = EventLocation(country_code, subdivision_code or None) if country_code else None
    log = CustomEvent(
        member=member,
        member_remote_id=member_id,
        event_source=event_source,
        is_in_quota=bool(is_in_quota and member_id),
        country_code=country_code,
        subdivision_code=subdivision_code,
        sent_by=sent_by if getattr(sent_by, "pk", None) else None,
    )
    try:
        get_pluginlab_client().create_custom_event(
            event_source,
            member_id=member_id or None,
            is_in_quota=is_in_quota if member_id else None,
            location=location,
        )
    except RemoteError as exc:
        log.status, log.error = CustomEvent.Status.FAILED, str(exc)
        log.save()
        exc.custom_event = log
        raise
    log.status, log.sent_at = CustomEvent.Status.SENT, timezone.now()
    log.save()
    return log


def record_usage(
    member_or_id: Member | str,
    event_source: str,
    *,
    is_in_quota: bool = True,
    country_code: str = "",
    subdivision_code: str = "",
) -> CustomEvent:
    """Record one use of ``member_or_id`` (a ``Member`` or a PluginLab member id).

    Writes a ``pending`` ``CustomEvent`` in the current transaction (so a
    rolled-back request records nothing) and sends it after commit. Counts
    at once in the member's quota as ``IsWithinQuota``/``MeteredQuota`` see
    it. Raises ``CustomEventInvalid`` for a bad field, or for a member that
    PluginLab deleted (it would only be refused).
    """
    event_source, country_code, subdivision_code = clean_custom_event(
        event_source, country_code, subdivision_code
    )
    if isinstance(member_or_id, Member):
        member: Member | None = member_or_id
        member_id = member_or_id.remote_id
    elif isinstance(member_or_id, str) and member_or_id.strip():
        member_id = member_or_id.strip()
        member = (
            Member.objects.filter(remote_id=member_id).only("pk", "deleted_remotely_at").first()
        )
    else:
        raise CustomEventInvalid("A member (or a PluginLab member id) is required.")
    if member is not None and member.deleted_remotely_at is not None:
        raise CustomEventInvalid("This member was deleted in PluginLab: no use is recorded.")
    return record_event(
        member_pk=member.pk if member is not None else None,
        member_id=member_id,
        event_source=event_source,
        is_in_quota=is_in_quota,
        country_code=country_code,
        subdivision_code=subdivision_code,
    )


def record_event(
    *,
    member_pk: int | None,
    member_id: str,
    event_source: str,
    is_in_quota: bool = True,
    country_code: str = "",
    subdivision_code: str = "",
) -> CustomEvent:
    """The outbox write itself, for callers that validated the fields and
    know the member's row (the metering adapters): one INSERT, no query."""
    event = CustomEvent(
        member_id=member_pk,
        member_remote_id=member_id,
        event_source=event_source,
        is_in_quota=bool(is_in_quota),
        country_code=country_code,
        subdivision_code=subdivision_code,
        status=CustomEvent.Status.PENDING,
    )
    _insert(event)
    transaction.on_commit(kick_sender)
    return event


_INSERT_COLUMNS = (
    "member_id",
    "member_remote_id",
    "event_source",
    "is_in_quota",
    "country_code",
    "subdivision_code",
    "created_at",
    "status",
    "error",
    "attempts",
)


def _insert(event: CustomEvent) -> None:
    """``event.save()`` in one plain INSERT … RETURNING: it runs on every
    metered request, and the ORM's save machinery (signals, field loops,
    SQL compilation) costs several times the statement itself. No signal
    listens to CustomEvent saves; where RETURNING is not supported the ORM
    does it."""
    connection = connections[router.db_for_write(CustomEvent)]
    if not connection.features.can_return_columns_from_insert:
        event.save(force_insert=True)
        return
    sql = _INSERT_SQL.get(connection.alias)
    if sql is None:
        quote = connection.ops.quote_name
        table = quote(CustomEvent._meta.db_table)
        columns = ", ".join(quote(c) for c in _INSERT_COLUMNS)
        params = ", ".join(["%s"] * len(_INSERT_COLUMNS))
        # Names from the model; every value is a parameter.
        sql = f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING {quote('id')}"  # noqa: S608
        _INSERT_SQL[connection.alias] = sql
    values = [
        event.member_id,
        event.member_remote_id,
        event.event_source,
        event.is_in_quota,
        event.country_code,
        event.subdivision_code,
        connection.ops.adapt_datetimefield_value(event.created_at),
        event.status,
        event.error,
        event.attempts,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias


_INSERT_SQL: dict[str, str] = {}
