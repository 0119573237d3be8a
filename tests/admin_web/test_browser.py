"""End to end in a real browser: Debian's Chromium driven by Playwright against the real server
(``smartshelf admin``, waitress, in a subprocess on a free loopback port).

Screenshots go to $SMARTSHELF_ARTIFACTS (default: the test's tmp dir).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.servers import free_port, stop_server, wait_for_port

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "browser test password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt install chromium)"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    from admin_web.accounts import AccountStore

    data_dir = tmp_path / "data"
    AccountStore(data_dir).set_password("admin", PASSWORD)
    port = free_port()
    log_path = tmp_path / "server.log"
    log = log_path.open("w")  # a file, not a pipe: an unread pipe could stall the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartshelf.cli", "admin", "--data-dir", str(data_dir), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        wait_for_port("127.0.0.1", port, proc, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)
        log.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SMARTSHELF_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(server: str) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"])
        context = browser.new_context(viewport={"width": 412, "height": 915}, base_url=server)  # a phone
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


@pytest.mark.slow
def test_staff_flow_in_a_browser(page: Any, artifacts: Path) -> None:
    page.goto("/products/")
    assert "/login" in page.url  # not logged in: sent to the login page
    page.fill("input[name=password]", "wrong password!")
    page.click("button[type=submit]")
    assert page.locator(".alert-error").inner_text().startswith("Wrong user name or password")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/products/")

    page.click("text=Add product")
    page.fill("input[name=sku]", "SCARF-1")
    page.fill("input[name=name]", "Silk scarf")
    page.fill("input[name=brand]", "Acme")
    page.select_option("select[name=gender]", "female")
    page.fill("input[name=price]", "1174.50")
    page.fill("input[name=stock]", "1")
    page.fill("input[name=slot]", "A1")
    page.click("button:has-text('Save')")
    page.wait_for_url("**/products/?q=SCARF-1")
    row = page.locator("tr[data-sku='SCARF-1']")
    assert "Silk scarf" in row.inner_text() and "1,174.50 INR" in row.inner_text()
    assert row.locator(".badge").inner_text() == "1"
    assert page.locator("#low-stock-alert").is_visible()  # 1 <= low-stock level 2

    row.locator("input[name=quantity]").fill("4")
    row.locator("button:has-text('Add')").click()
    page.wait_for_load_state()
    row = page.locator("tr[data-sku='SCARF-1']")
    assert row.locator(".badge").inner_text() == "5"
    assert "stock now 5" in page.locator(".alert-info").first.inner_text()
    assert page.locator("#low-stock-alert").count() == 0
    page.screenshot(path=str(artifacts / "admin-products-phone.png"), full_page=True)

    page.goto("/")
    assert page.locator("#device-status").inner_text().find("Device not running") >= 0
    assert page.locator("svg.chart").count() >= 3
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(artifacts / "admin-dashboard.png"), full_page=True)

    page.goto("/privacy/notice")
    assert "estimate age and gender" in page.locator("h1").inner_text()
    page.emulate_media(media="print")
    assert not page.locator(".screen-only").is_visible()  # print CSS hides the on-screen help
    assert (artifacts / "admin-dashboard.png").stat().st_size > 10_000


def tab_to(page: Any, selector: str, *, limit: int = 80) -> None:
    """Press Tab (only the keyboard) until the focused element matches ``selector``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector} on {page.url}")


@pytest.mark.slow
def test_every_staff_task_with_the_keyboard_alone(page: Any) -> None:
    """Log in, add a product, set up a slot and put the product on it, then delete the product through
    its confirmation page: Tab, typing and Enter only (no clicks)."""
    page.goto("/login")
    tab_to(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)

    tab_to(page, "nav a[href='/products/']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/products/")
    tab_to(page, "a[href='/products/new']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/products/new")
    for name, value in (("sku", "KEY-1"), ("name", "Keyboard scarf"), ("price", "499"), ("stock", "3")):
        tab_to(page, f"input[name={name}]")
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/products/?q=KEY-1")
    assert page.locator("tr[data-sku='KEY-1']").count() == 1

    tab_to(page, "nav a[href='/slots/']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/slots/")
    tab_to(page, "form[action='/slots/save'] input[name=slot]")
    page.keyboard.type("A1")
    tab_to(page, "form[action='/slots/save'] input[name=pin]")
    page.keyboard.type("5")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("tr[data-slot='A1']")
    tab_to(page, "tr[data-slot='A1'] select[name=sku]")
    page.keyboard.type("KEY-1")  # a select picks the option by typing its start
    tab_to(page, "tr[data-slot='A1'] button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Slot A1 now holds KEY-1" in page.locator(".alert-info").inner_text()

    tab_to(page, "nav a[href='/products/']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/products/")
    tab_to(page, "a[href='/products/KEY-1/edit']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/KEY-1/edit")
    tab_to(page, "a[href='/products/KEY-1/delete']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/KEY-1/delete")
    assert "Delete Keyboard scarf?" in page.locator("h1").inner_text()
    tab_to(page, "#confirm button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/products/")
    assert page.locator("tr[data-sku='KEY-1']").count() == 0
    assert "Deleted KEY-1" in page.locator(".alert-info").inner_text()
