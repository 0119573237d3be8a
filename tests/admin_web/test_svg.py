"""Charts carry their numbers as text and are drawn on a canvas narrow enough for a phone."""

from __future__ import annotations

import re

from admin_web.svg import WIDTH, bar_chart, column_chart


def test_charts_have_a_text_alternative_with_every_value() -> None:
    hours = column_chart(["00", "01", "02"], [0, 3, 1], title="Per hour")
    assert "<desc>00: 0; 01: 3; 02: 1</desc>" in hours and 'aria-label="Per hour"' in hours
    bars = bar_chart(["female/25-34", "<b>"], [4, 2], title="Per segment")
    assert "<desc>female/25-34: 4; &lt;b&gt;: 2</desc>" in bars
    assert "<desc>No data yet.</desc>" in bar_chart([], [], title="Empty")


def test_a_phone_shows_the_labels_at_12px_or_more() -> None:
    # A 390 px phone leaves ~335 px for a chart; the 13-unit labels must not shrink below 12 px.
    assert 13 * 335 / WIDTH >= 12
    svg = column_chart([f"{h:02d}" for h in range(24)], [1] * 24, title="t")
    assert re.search(rf'viewBox="0 0 {WIDTH} ', svg)
    assert len(re.findall(r'<text class="axis" x="[\d.]+" y="\d+" text-anchor="middle">', svg)) <= 8, \
        "at most 8 hour labels: each needs room at that size"
