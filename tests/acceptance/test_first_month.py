"""A store's first month (issue 15), through the real processes, on an accelerated clock.

Staff set the shop up in a real browser (Debian's Chromium, Playwright) on the real admin server:
shop settings (EUR, German number format), four slots, a European ``;``-separated product CSV with
decimal commas. The device runs ``smartshelf run`` on the replay camera with no factor file. A
paired terminal sends signed sales (with one retry of the same event) of what the shelf showed;
every tenth "day" the nightly retrain runs the systemd unit's two commands (export, retrain).

Asserted: the first decision, and every one after, picks staff-entered products; the retrain never
shrinks the catalogue and never reports a failure; the device follows a replaced factor file without
a restart; stock is exact; no traceback in any log. A "day" is one decision of the shelf.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tools.servers import free_port, stop_server, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "first month password"
DAYS = 30
RETRAIN_EVERY = 10
STOCK = 200
EU_CSV = (
    "sku;name;gender;category;price;stock;slot\n"
    f"DRESS-1;Sommerkleid;female;Kleider;39,90;{STOCK};A1\n"
    f"SHIRT-1;Leinenhemd;male;Hemden;49,50;{STOCK};A2\n"
    f"BAG-1;Stofftasche;;Taschen;1.049,00;{STOCK};A3\n"
    f"CAP-1;Mütze;unisex;;12.50;{STOCK};A4\n"
)
SKUS = {"DRESS-1", "SHIRT-1", "BAG-1", "CAP-1"}
DECISION = re.compile(r"decision visit=(\d+) segment=(\S+) conf=\S+ items=\((.*?)\)")


def _frames_dir() -> Path:
    from device.demo.store import FRAMES_DIR

    return Path(FRAMES_DIR)


def smartshelf(*args: str, log: list[str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "smartshelf.cli", *args], capture_output=True, text=True,
                            cwd=REPO, timeout=300, check=False)
    log.append(f"$ smartshelf {shlex.join(args)}\n{result.stdout}{result.stderr}")
    assert result.returncode in ok, f"smartshelf {shlex.join(args)} -> {result.returncode}\n{result.stderr[-3000:]}"
    return result


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A config, the admin server (real process) and its log."""
    from admin_web.accounts import AccountStore

    data = tmp_path / "data"
    data.mkdir()
    kiosk_port, admin_port = free_port(), free_port()
    config = tmp_path / "config.toml"
    config.write_text(f"""
[shelf]
name = "Laden am Markt"
data_dir = "{data}"
[camera]
type = "replay"
source = "{_frames_dir()}"
fps = 10.0
loop = true
[models]
# The store's month, not the detector: with the cascade default (vision) the replay frames give a
# generic-then-female/25-34 stream whose sales tie SHIRT-1 and CAP-1, so "replaced" would hang on
# which of them the 20 held-out sales happen to hold. short_range without the search (which finds the
# same face on more frames) gives the stream this test was made with.
detector = "short_range"
search = false
[presence]
type = "always"
[leds]
type = "terminal"
[kiosk]
port = {kiosk_port}
[visit]
leave_after_s = 0.5
[admin]
host = "127.0.0.1"
port = {admin_port}
device_url = "http://127.0.0.1:{kiosk_port}"
""")
    AccountStore(data).set_password("admin", PASSWORD)
    admin_log = tmp_path / "admin.log"
    with admin_log.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "smartshelf.cli", "admin", "--config", str(config)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            wait_for_port("127.0.0.1", admin_port, proc, admin_log)
            yield {"config": config, "data": data, "admin": f"http://127.0.0.1:{admin_port}",
                   "kiosk": f"http://127.0.0.1:{kiosk_port}", "admin_log": admin_log, "tmp": tmp_path,
                   "admin_proc": proc}
        finally:
            stop_server(proc)


def set_up_in_the_browser(base: str, csv_path: Path, artifacts: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_context(viewport={"width": 412, "height": 915}, base_url=base).new_page()
        page.set_default_timeout(15_000)
        try:
            page.goto("/login")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/")
            page.click("nav >> text=Settings")
            page.get_by_label("Shop name").fill("Laden am Markt")
            page.get_by_label("Shop currency (ISO 4217)").fill("EUR")
            page.get_by_label("How numbers are written").select_option("de_DE")
            page.click("button:has-text('Save settings')")
            assert "1.234,50" in page.locator(".alert-info").first.inner_text()
            page.goto("/slots/")
            for n, slot in enumerate(("A1", "A2", "A3", "A4")):
                page.fill("input[name=slot]", slot)
                page.fill("input[name=pin]", str(5 + n))
                page.click("button:has-text('Save slot')")
                page.wait_for_selector(f"tr[data-slot='{slot}']")
            page.goto("/products/import")
            page.set_input_files("input[name=file]", str(csv_path))
            page.click("button:has-text('Check and import')")
            summary = page.locator("#import-summary").inner_text()
            assert "4 new" in summary, summary
            page.goto("/")
            page.screenshot(path=str(artifacts / "first-month-dashboard.png"), full_page=True)
            readiness = page.locator("#shelf-readiness").inner_text()
            assert "4 product(s) on slots can be suggested" in readiness, readiness
        finally:
            browser.close()


def nightly_retrain(data: Path, config: str, logs: list[str], catalogue: set[str], outcomes: list[str]) -> set[str]:
    """The two commands of smartshelf-retrain.service; returns the factor file's items (checked never fewer)."""
    from device.recommend.factors import FactorModel
    from smartshelf.core.retrain_report import read_retrain_report

    out = data / "retrain"
    smartshelf("terminal", "export", "--config", config, "--out", str(out), log=logs)
    smartshelf("factors", "retrain", "--config", config, "--interactions", str(out / "interactions.csv"),
               "--users", str(out / "users.csv"), "--items", str(out / "items.csv"), log=logs, ok=(0, 3, 4))
    report = read_retrain_report(data / "factors.npz")
    assert report is not None and report["outcome"] in ("replaced", "kept", "waiting"), report
    outcomes.append(report["outcome"])
    if not (data / "factors.npz").exists():
        return catalogue
    items = set(FactorModel.load(data / "factors.npz").item_ids)
    assert items >= catalogue | SKUS, "the retrain never shrinks the catalogue"
    return items


def items_of(decision: tuple[str, str, str]) -> list[str]:
    return [s.strip(" '") for s in decision[2].split(",") if s.strip(" '")]


def send_sale(base: str, terminal: dict[str, str], event: dict[str, Any]) -> str:
    from admin_web.terminals import signing

    body = json.dumps(event, separators=(",", ":")).encode()
    request = urllib.request.Request(base + "/api/v1/terminal/events", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Terminal-Id": terminal["terminal_id"],
        "X-Signature": signing.sign(terminal["secret"], int(time.time()), body)})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["status"])


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (tests/install-tools.sh)")
def test_a_stores_first_month(shop: dict[str, Any]) -> None:
    from smartshelf.core.storage import open_db

    data, tmp, config = shop["data"], shop["tmp"], str(shop["config"])
    logs: list[str] = []
    csv_path = tmp / "produkte.csv"
    csv_path.write_text(EU_CSV, encoding="utf-8")
    set_up_in_the_browser(shop["admin"], csv_path, tmp)
    products = {p["sku"]: p for p in open_db(data / "store.json", read_only=True).table("products").all()}
    assert {s: (p["price"], p["currency"], p["slot"]) for s, p in products.items()} == {
        "DRESS-1": (3990, "EUR", "A1"), "SHIRT-1": (4950, "EUR", "A2"),
        "BAG-1": (104900, "EUR", "A3"), "CAP-1": (1250, "EUR", "A4")}
    terminal = json.loads(smartshelf("terminal", "pair", "--config", config, "--name", "Kasse 1", "--json",
                                     log=logs).stdout)

    device_log = tmp / "device.log"
    with device_log.open("w") as dlog:
        device = subprocess.Popen([sys.executable, "-m", "smartshelf.cli", "--debug", "run", "--config", config],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=dlog, text=True)
        sold: Counter[str] = Counter()
        catalogue: set[str] = set()
        outcomes: list[str] = []
        try:
            status = wait_for("the device's first decision",
                              lambda: (s := get_json(shop["kiosk"] + "/status")).get("decisions") and s)
            assert status["factors"]["in_memory_prior"] is True, "day one: no factor file, the catalogue prior"
            seen, day = 0, 0
            while day < DAYS:  # each decision of the shelf is a "day" (those made during a night are not)
                decisions = wait_for(f"a decision on day {day + 1}",
                                     lambda seen=seen: (d := DECISION.findall(device_log.read_text())) and
                                     len(d) > seen and d)
                for decision in decisions[seen:]:
                    seen += 1
                    day += 1
                    shown = items_of(decision)
                    assert shown and set(shown) <= SKUS, decision
                    # the shopper buys what the shelf showed (one of each, the top pick twice)
                    event = {"id": str(uuid.uuid4()), "type": "sale", "currency": "EUR", "amount": 100,
                             "time": datetime.now(UTC).isoformat(timespec="seconds"),
                             "lines": [{"sku": s, "qty": 2 if k == 0 else 1} for k, s in enumerate(shown)]}
                    assert send_sale(shop["admin"], terminal, event) == "applied"
                    for line in event["lines"]:
                        sold[line["sku"]] += line["qty"]
                    if day == 3:  # the till retries an event whose answer it lost: counted once
                        assert send_sale(shop["admin"], terminal, event) == "duplicate"
                    if day % RETRAIN_EVERY == 0:  # the night: what smartshelf-retrain.service runs
                        catalogue = nightly_retrain(data, config, logs, catalogue, outcomes)
                        if (data / "factors.npz").exists():
                            wait_for("the device to load the new factor file",
                                     lambda: get_json(shop["kiosk"] + "/status")["factors"]["in_memory_prior"]
                                     is False, timeout=15)
                        seen = len(DECISION.findall(device_log.read_text()))  # the next day starts after the night
                        break
                    if day >= DAYS:
                        break
        finally:
            device.terminate()
            device.wait(30)
    assert device.returncode == 0, device_log.read_text()[-3000:]
    assert "replaced" in outcomes, f"a month of sales teaches the shelf something: {outcomes}"

    decisions = DECISION.findall(device_log.read_text())
    assert len(decisions) >= DAYS
    first_items = items_of(decisions[0])
    assert first_items and set(first_items) <= SKUS, f"the first visit gets staff-entered picks: {decisions[0]}"
    dark = [d for d in decisions if not d[2].strip()]
    assert not dark, f"decisions without picks: {dark[:3]}"

    stop_server(shop["admin_proc"])  # systemctl stop: the admin writes the stock it kept in memory
    assert shop["admin_proc"].returncode == 0, shop["admin_log"].read_text()[-3000:]
    stock = {p["sku"]: p["stock"] for p in open_db(data / "store.json", read_only=True).table("products").all()}
    assert stock == {s: STOCK - sold[s] for s in SKUS}, (stock, sold)

    everything = [device_log.read_text(), shop["admin_log"].read_text(), *logs]
    assert not [text for text in everything if "Traceback" in text], "a traceback in a log"
