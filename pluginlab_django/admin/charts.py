"""Bar charts drawn server-side as inline SVG: no JavaScript, no CDN, so the
dashboard works offline and renders in any browser."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

BAR_COLOUR = "#417690"  # the admin's own blue
ALERT_COLOUR = "#ba2121"


def horizontal_bars(
    items: Sequence[tuple[str, int]],
    *,
    title: str,
    width: int = 420,
    bar_height: int = 18,
    alert: Sequence[str] = (),
) -> SafeString:
    """One labelled bar per item; labels in ``alert`` are drawn in red."""
    label_width, gap = 150, 6
    peak = max((value for _label, value in items), default=0) or 1
    height = max(1, len(items)) * (bar_height + gap)
    rows = format_html_join(
        "",
        '<g transform="translate(0,{})"><text x="0" y="{}" class="pl-label">{}</text>'
        '<rect x="{}" y="0" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>'
        '<text x="{}" y="{}" class="pl-value">{}</text></g>',
        (
            (
                index * (bar_height + gap),
                bar_height - 5,
                label,
                label_width,
                bar_width := round((width - label_width - 60) * value / peak),
                bar_height,
                ALERT_COLOUR if label in alert else BAR_COLOUR,
                label,
                value,
                label_width + bar_width + 4,
                bar_height - 5,
                value,
            )
            for index, (label, value) in enumerate(items)
        ),
    )
    return _svg(title, width, height, rows)


def columns(
    items: Sequence[tuple[str, int]], *, title: str, width: int = 640, height: int = 160
) -> SafeString:
    """A column per item (e.g. sign-ups per week), labels under every fourth."""
    count = max(1, len(items))
    peak = max((value for _label, value in items), default=0) or 1
    slot = width / count
    plot = height - 20
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>{}',
        (
            (
                _num(index * slot + 1),
                _num(plot - (bar := plot * value / peak)),
                _num(max(1.0, slot - 2)),
                _num(bar),
                BAR_COLOUR,
                label,
                value,
                format_html(
                    '<text x="{}" y="{}" class="pl-label">{}</text>',
                    _num(index * slot),
                    height - 4,
                    label,
                )
                if index % 4 == 0
                else "",
            )
            for index, (label, value) in enumerate(items)
        ),
    )
    return _svg(title, width, height, bars)


def _num(value: float) -> str:
    """SVG coordinates with one decimal (format_html escapes its arguments,
    so numbers are formatted before they reach it)."""
    return f"{value:.1f}"


def _svg(title: str, width: int, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="pl-chart" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        title,
        width,
        height,
        width,
        height,
        body,
    )
