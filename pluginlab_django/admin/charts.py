"""Bar charts drawn server-side as inline SVG: no JavaScript, no CDN, so the
dashboard works offline and renders in any browser. Each chart has a value
axis: round tick values (0, 5, 10, …) with their numbers and light grid lines."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

BAR_COLOUR = "#417690"  # the admin's own blue
ALERT_COLOUR = "#ba2121"
AXIS_HEIGHT = 18  # room under horizontal bars for the value axis
AXIS_WIDTH = 34  # room left of columns for the value axis


def nice_ticks(peak: int, most: int = 5) -> list[int]:
    """Round, evenly spaced integer ticks from 0 to at least ``peak``, at most
    ``most`` + 1 of them: 0 1 2 3, 0 5 10 15 20, 0 200 400 …"""
    if peak <= 0:
        return [0, 1]
    raw = max(1.0, peak / most)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = int(step)
    top = math.ceil(peak / step) * step
    return list(range(0, top + 1, step))


def horizontal_bars(
    items: Sequence[tuple[str, int]],
    *,
    title: str,
    width: int = 420,
    bar_height: int = 18,
    alert: Sequence[str] = (),
) -> SafeString:
    """One labelled bar per item, a value axis underneath; labels in
    ``alert`` are drawn in red."""
    label_width, gap, right = 150, 6, 40
    ticks = nice_ticks(max((value for _label, value in items), default=0))
    scale = (width - label_width - right) / ticks[-1]
    plot_height = max(1, len(items)) * (bar_height + gap)
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
                bar_width := round(scale * value),
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
    axis = _join_named(
        '<line x1="{x}" y1="0" x2="{x}" y2="{bottom}"></line>'
        '<text x="{x}" y="{label_y}" text-anchor="middle">{value}</text>',
        (
            {
                "x": _num(label_width + scale * tick),
                "bottom": plot_height,
                "label_y": plot_height + AXIS_HEIGHT - 5,
                "value": tick,
            }
            for tick in ticks
        ),
    )
    body = format_html('<g class="pl-axis pl-axis-x">{}</g>{}', axis, rows)
    return _svg(title, width, plot_height + AXIS_HEIGHT, body)


def columns(
    items: Sequence[tuple[str, int]], *, title: str, width: int = 640, height: int = 160
) -> SafeString:
    """A column per item (e.g. sign-ups per week), labels under every fourth,
    a value axis on the left."""
    count = max(1, len(items))
    ticks = nice_ticks(max((value for _label, value in items), default=0), most=4)
    slot = (width - AXIS_WIDTH) / count
    plot = height - 20
    scale = (plot - 6) / ticks[-1]  # room at the top for the highest tick's number
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>{}',
        (
            (
                _num(AXIS_WIDTH + index * slot + 1),
                _num(plot - (bar := scale * value)),
                _num(max(1.0, slot - 2)),
                _num(bar),
                BAR_COLOUR,
                label,
                value,
                format_html(
                    '<text x="{}" y="{}" class="pl-label">{}</text>',
                    _num(AXIS_WIDTH + index * slot),
                    height - 4,
                    label,
                )
                if index % 4 == 0
                else "",
            )
            for index, (label, value) in enumerate(items)
        ),
    )
    axis = _join_named(
        '<line x1="{left}" y1="{y}" x2="{right}" y2="{y}"></line>'
        '<text x="{label_x}" y="{text_y}" text-anchor="end">{value}</text>',
        (
            {
                "left": AXIS_WIDTH - 3,
                "right": width,
                "y": _num(plot - scale * tick),
                "label_x": AXIS_WIDTH - 5,
                "text_y": _num(plot - scale * tick + 3),
                "value": tick,
            }
            for tick in ticks
        ),
    )
    body = format_html('<g class="pl-axis pl-axis-y">{}</g>{}', axis, bars)
    return _svg(title, width, height, body)


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


def _join_named(format_string: str, items: Iterable[dict[str, object]]) -> SafeString:
    """``format_html_join`` with named placeholders (which Django before 5.0
    does not accept there): each item's values escaped by ``format_html``."""
    return mark_safe("".join(format_html(format_string, **item) for item in items))  # noqa: S308
