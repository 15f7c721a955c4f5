"""Small HTML fragments the admin pages share: usage bars, masked secrets, datetimes."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..models import QuotaSnapshot


def usage_bar(snapshot: QuotaSnapshot | None) -> SafeString | str:
    """``count/limit`` with a small bar; red when over the limit."""
    if snapshot is None:
        return "–"
    if snapshot.is_unlimited:
        return format_html('<span class="pl-usage">{} / ∞</span>', snapshot.usage_count)
    ratio = snapshot.usage_ratio or 0.0
    state = "over" if snapshot.is_over_limit else ("high" if ratio >= 0.8 else "ok")
    return format_html(
        '<span class="pl-usage pl-usage-{}" title="{}% of {}">'
        '<span class="pl-usage-bar"><span style="width:{}%"></span></span> {} / {}</span>',
        state,
        round(ratio * 100),
        snapshot.interval or "the interval",
        min(100, round(ratio * 100)),
        snapshot.usage_count,
        snapshot.usage_limit,
    )


def mask_secret(value: str | None) -> str:
    """Enough of a token to recognise it, never enough to use it."""
    if not value:
        return "–"
    if len(value) <= 10:
        return "•" * 6
    return f"{value[:4]}…{value[-3:]}"


def local_datetime(value: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM`` in the site's ``TIME_ZONE``, like Django's own columns.

    Stored datetimes are UTC; ``strftime`` on them alone would show UTC
    next to Django's localised "Last synced" column.
    """
    if value is None:
        return "–"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M")


def expiry(value: datetime | None) -> SafeString | str:
    if value is None:
        return "–"
    if value <= timezone.now():
        return format_html('<span class="pl-expired">{} (expired)</span>', local_datetime(value))
    return local_datetime(value)


#: The app's stylesheet, for every model admin's ``Media``.
ADMIN_CSS = {"all": ("pluginlab_django/admin.css",)}


def compact_datetime(value: datetime | None) -> SafeString | str:
    """A changelist cell: the local date, then the time, wrapping between the
    two (never inside either) so narrow columns stay readable."""
    if value is None:
        return "–"
    day, time = local_datetime(value).split(" ")
    return format_html('<span class="pl-when">{}</span> <span class="pl-when">{}</span>', day, time)


def counts(pairs: list[tuple[str, int]]) -> SafeString:
    """``50 new · 2 updated · …`` in one cell, wrapping between the pairs."""
    return format_html_join(
        " ", '<span class="pl-counts">{} {}</span>', ((n, label) for label, n in pairs)
    )


def email_and_name(email: str, name: str) -> SafeString:
    """The member cell of a changelist: the email, the name under it."""
    if not name:
        return format_html("{}", email)
    return format_html('{}<br><span class="pl-quiet">{}</span>', email, name)
