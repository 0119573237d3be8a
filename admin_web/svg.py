"""Server-side SVG bar charts (no JavaScript, no external library). Labels are escaped.

Readable on a phone: the charts are drawn on a narrow canvas (360 units wide) so that their 13-unit
text is at least 12 px when a 390 px phone shrinks the chart to its card (~335 px); wider screens
scale it up. Each chart carries its numbers as text (``<desc>``) for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if value <= step:
            return float(step)
    magnitude = 10 ** (len(str(int(value))) - 1)
    return float((int(value / magnitude) + 1) * magnitude)


WIDTH = 360


def _desc(labels: Sequence[str], values: Sequence[float]) -> str:
    if not values:
        return "<desc>No data yet.</desc>"
    text = escape("; ".join(f"{label}: {value:g}" for label, value in zip(labels, values, strict=True)))
    return f"<desc>{text}</desc>"


def column_chart(labels: Sequence[str], values: Sequence[float], *, title: str,
                 width: int = WIDTH, height: int = 170) -> Markup:
    """Vertical bars, e.g. impressions per hour. Responsive (viewBox), readable with a screen reader."""
    if len(labels) != len(values):
        raise ValueError("labels and values differ in length")
    left, right, top, bottom = 34, 6, 12, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max(values, default=0))
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1)
    parts = [
        (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
         'xmlns="http://www.w3.org/2000/svg">'),
        f"<title>{escape(title)}</title>",
        _desc(labels, values),
    ]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{top_value * frac:g}</text>")
    label_every = max(1, -(-n // 8))  # at most 8 labels: each needs ~20 units at 13 units of text
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * (value / top_value) if top_value else 0
        x = left + i * slot + (slot - bar_w) / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
        if i % label_every == 0:
            parts.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                         f"{escape(label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str,
              width: int = WIDTH, row_height: int = 24) -> Markup:
    """Horizontal bars with the label on the left and the value at the bar's end."""
    if len(labels) != len(values):
        raise ValueError("labels and values differ in length")
    label_w, right = 150, 40
    height = max(len(values), 1) * row_height + 8
    plot_w = width - label_w - right
    top_value = max(values, default=0) or 1
    parts = [
        (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
         'xmlns="http://www.w3.org/2000/svg">'),
        f"<title>{escape(title)}</title>",
        _desc(labels, values),
    ]
    if not values:
        parts.append(f'<text class="axis" x="8" y="{row_height - 8}">no data yet</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 4 + i * row_height
        w = plot_w * (value / top_value)
        short = label if len(label) <= 20 else label[:19] + "…"
        parts.append(f'<text class="label" x="{label_w - 6}" y="{y + row_height * 0.65:.1f}" text-anchor="end">'
                     f"{escape(short)}</text>")
        parts.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_height - 8}">'
                     f"<title>{escape(label)}: {value:g}</title></rect>")
        parts.append(f'<text class="axis" x="{label_w + w + 4:.1f}" y="{y + row_height * 0.65:.1f}">'
                     f"{value:g}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))
