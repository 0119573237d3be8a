"""The kiosk page in Debian's Chromium at every kiosk size and in every state (tools/screenshots.py):
axe-core finds no serious or critical violation (contrast included), nothing runs outside its box or
under the privacy footer, the page fits the screen, and price and slot are large enough to read from
1-2 m. Screenshots of every state and size go to $SMARTSHELF_ARTIFACTS/screens (default artifacts/).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools import screenshots

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not screenshots.CHROMIUM.exists(), reason="needs Debian's Chromium (tests/install-tools.sh)"),
]

#: The minimum text sizes (px) chosen in docs/screens.md.
MIN_PX = {".price": 40, ".slot": 40, ".name": 22, ".pairs": 18, "footer.privacy": 16}


@pytest.fixture(scope="module")
def reports() -> list[screenshots.PageReport]:
    pytest.importorskip("axe_playwright_python")
    out = Path(os.environ.get("SMARTSHELF_ARTIFACTS") or "artifacts") / "screens"
    return screenshots.audit_kiosk(out)


def test_every_state_at_every_kiosk_size_has_a_screenshot(reports: list[screenshots.PageReport]) -> None:
    seen = {(r.page, (r.width, r.height)) for r in reports}
    states = [name for name, _ in screenshots.kiosk_states()]
    assert seen == {(s, size) for s in states for size in screenshots.KIOSK_SIZES}
    assert all(Path(r.screenshot).stat().st_size > 5_000 for r in reports)


def test_no_serious_axe_violation_no_overflow_and_it_fits(reports: list[screenshots.PageReport]) -> None:
    failures = [f for r in reports for f in screenshots.failures(r, kiosk=True)]
    assert not failures, "\n".join(failures)


def test_price_slot_and_privacy_line_are_readable(reports: list[screenshots.PageReport]) -> None:
    for r in reports:
        for selector, px in r.text_px.items():
            assert px >= MIN_PX[selector], f"{r.page} {r.size}: {selector} is {px} px, below {MIN_PX[selector]}"
    picks = [r for r in reports if r.page == "kiosk-picks"]
    assert all({".price", ".slot", "footer.privacy"} <= set(r.text_px) for r in picks)
    landscape = [r for r in picks if r.width >= 1366]
    assert all(r.text_px[".pairs"] >= 18 for r in landscape), "pairs shown on the big screens"


def test_pictures_generated_cards_and_best_sellers_are_shown(reports: list[screenshots.PageReport]) -> None:
    """Uploaded pictures load; without one a card shows its category's pictogram and name (not a letter);
    the idle screen shows the best sellers rather than an empty page; so does the paused screen."""
    by_state = {r.page: r.counts for r in reports if r.width == 1920}
    assert by_state["kiosk-picks"] == {"cards": 3, "pictures": 3, "pictograms": 0}
    assert by_state["kiosk-generated"] == {"cards": 3, "pictures": 0, "pictograms": 3}
    assert by_state["kiosk-idle"]["cards"] == 3 and by_state["kiosk-idle"]["pictures"] == 3
    assert by_state["kiosk-paused"]["cards"] == 3
