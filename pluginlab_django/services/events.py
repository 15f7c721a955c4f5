"""Custom usage events: validated, sent to PluginLab, and always logged in
``CustomEvent`` with their outcome."""

from __future__ import annotations

import re
from typing import Any

from ..clients import RemoteError, get_pluginlab_client
from ..clients.types import EventLocation
from ..models import CustomEvent, Member

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
    log.status = CustomEvent.Status.SENT
    log.save()
    return log
