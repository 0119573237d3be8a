"""Slots (identify, reload), dashboard (events, status, SVG charts, panels), privacy (pause, notice)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smartshelf.core.storage import atomic_write_json, open_db
from tests.helpers import write_device_events


class FakeDevice:
    """The device's loopback control endpoint, recording what the admin sends."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                outer.calls.append((self.path, body))
                outer.event.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p, body in self.calls:
                if p == path:
                    return body
            self.event.wait(0.05)
            self.event.clear()
        raise AssertionError(f"device never got {path}; got {self.calls}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def device(app: Any) -> Iterator[FakeDevice]:
    fake = FakeDevice()
    app.config["DEVICE_URL"] = fake.url
    yield fake
    fake.close()


@pytest.fixture
def logged_in(client: Any, auth: Any) -> Any:
    auth.login()
    return client


def test_slot_map_identify_and_reload(app: Any, logged_in: Any, csrf: Any, device: FakeDevice) -> None:
    logged_in.post("/api/v1/products", json={"sku": "P1", "name": "Tee", "price": 1, "stock": 3},
                   headers={"X-CSRF-Token": csrf()})
    assert logged_in.post("/slots/save", data={"csrf_token": csrf(), "slot": "A1", "pin": "17",
                                               "label": "top left"}).status_code == 302
    assert device.wait_for("/control/reload") == {}  # best-effort reload after a change
    assert logged_in.post("/slots/A1/assign", data={"csrf_token": csrf(), "sku": "P1"}).status_code == 302
    store = open_db(Path(app.config["DATA_DIR"]) / "store.json")
    assert store.table("slots").all() == [{"slot": "A1", "pin": 17, "label": "top left"}]
    assert store.table("products").all()[0]["slot"] == "A1"
    page = logged_in.get("/slots/").data.decode()
    assert "GPIO17" in page and '<option value="P1" selected>' in page

    clash = logged_in.post("/slots/save", data={"csrf_token": csrf(), "slot": "A2", "pin": "17"},
                           follow_redirects=True)
    assert b"already used by slot A1" in clash.data
    bad_pin = logged_in.post("/slots/save", data={"csrf_token": csrf(), "slot": "A2", "pin": "40"},
                             follow_redirects=True)
    assert b"between 2 and 27" in bad_pin.data

    done = logged_in.post("/slots/A1/identify", data={"csrf_token": csrf()}, follow_redirects=True)
    assert device.wait_for("/control/identify") == {"slot": "A1", "seconds": 5}
    assert b"blinking" in done.data

    assert logged_in.post("/slots/A1/delete", data={"csrf_token": csrf()}).status_code == 302
    assert store.table("slots").all() == []
    assert store.table("products").all()[0]["slot"] is None


def test_identify_says_when_device_is_not_running(logged_in: Any, csrf: Any) -> None:
    logged_in.post("/slots/save", data={"csrf_token": csrf(), "slot": "A1", "pin": "5"})
    response = logged_in.post("/slots/A1/identify", data={"csrf_token": csrf()}, follow_redirects=True)
    assert response.status_code == 200
    assert b"the shelf is not running or not answering" in response.data
    assert b"Errno" not in response.data and b"systemctl" not in response.data, "plain words on the page"


def _write_events(data_dir: Path, events: list[dict[str, Any]]) -> None:
    write_device_events(data_dir, events)


def _event(t: float, segment: str, items: list[str], visit: int) -> dict[str, Any]:
    return {"time": t, "visit_id": visit, "segment": segment, "confidence": 0.8, "reason": "personalised",
            "variant": "personalised", "items": items, "slots": ["A1"], "timings_ms": {"total": 30.0}}


def test_dashboard_charts_from_events(app: Any, logged_in: Any) -> None:
    from admin_web.insight import EventReader, impressions_per_hour, local_day_bounds, totals

    data_dir = Path(app.config["DATA_DIR"])
    start, _ = local_day_bounds()
    events = [
        _event(start + 3600 * 9 + 60, "female/25-34", ["P1", "P2"], 1),
        _event(start + 3600 * 9 + 120, "female/25-34", ["P1"], 1),
        _event(start + 3600 * 14 + 5, "male/35-44", ["P3", "P1"], 2),
        _event(start - 3 * 86400, "generic", ["P9"], 3),   # 3 days ago: in the 7-day totals only
        _event(start - 40 * 86400, "generic", ["P8"], 4),  # outside every range
    ]
    _write_events(data_dir, events)
    reader = EventReader(data_dir)
    hours = impressions_per_hour(reader)
    assert hours[9] == 2 and hours[14] == 1 and sum(hours) == 3
    week = totals(reader, 7)
    assert week.segments == {"female/25-34": 2, "male/35-44": 1, "generic": 1}
    assert week.items.most_common(1) == [("P1", 3)]
    assert totals(reader, 1).impressions == 3 and week.visits == 3
    visits_today = re.search(r'id="visits-today">(\d+)<', logged_in.get("/?days=7").data.decode())
    assert visits_today and int(visits_today.group(1)) == totals(reader, 1).visits > 0

    page = logged_in.get("/?days=7").data.decode()
    assert page.count("<svg") >= 3 and "female/25-34" in page and "male/35-44" in page
    assert "Picks shown per hour today" in page
    assert "<script" not in page  # charts are plain server-side SVG


def test_dashboard_escapes_labels_from_event_files(app: Any, logged_in: Any) -> None:
    from admin_web.insight import local_day_bounds

    start, _ = local_day_bounds()
    _write_events(Path(app.config["DATA_DIR"]), [_event(start + 60, "<script>x</script>", ["<b>"], 1)])
    page = logged_in.get("/").data.decode()
    assert "<script>x" not in page and "&lt;script&gt;" in page


def test_device_status_running_and_stale(app: Any, logged_in: Any) -> None:
    data_dir = Path(app.config["DATA_DIR"])
    assert b"Device not running" in logged_in.get("/").data
    status = {"updated_at": time.time(), "version": "0.1.0", "pid": 1, "paused": False,
              "camera": {"type": "picamera2", "state": "ok", "fps": 9.7, "error": None},
              "models": {"detector": "face_detection_short_range.tflite", "age_gender": "age_gender_int8.tflite"},
              "factors": {"path": "/x/factors.npz", "version": {"trained_at": "2026-11-20T10:00:00Z"}},
              "last_decision_at": time.time() - 5}
    atomic_write_json(data_dir / "status.json", status)
    page = logged_in.get("/").data.decode()
    assert "Running" in page and "9.7" in page and "age_gender_int8.tflite" in page
    assert "learnt from sales, 2026-11-20 10:00" in page
    atomic_write_json(data_dir / "status.json", {**status, "factors": {
        "path": "/x/factors.npz", "in_memory_prior": True, "version": {"trained_at": "2026-11-29T09:00:00Z"}}})
    page = logged_in.get("/").data.decode()
    assert "starting picks from the product list" in page and "2026-11-29" not in page, "no date for the prior"
    atomic_write_json(data_dir / "status.json", {**status, "updated_at": time.time() - 600})
    page = logged_in.get("/").data.decode()
    assert "Device not running" in page and "it stopped reporting 10 minutes ago" in page
    (data_dir / "status.json").write_text("{broken")
    assert b"Device not running" in logged_in.get("/").data


def test_dashboard_panels_registry(app: Any, logged_in: Any) -> None:
    from markupsafe import Markup

    from admin_web.registry import register_dashboard_panel

    register_dashboard_panel(app, lambda: {"title": "Conversion by segment", "html": Markup("<p id='conv'>12%</p>")})
    register_dashboard_panel(app, lambda: 1 / 0)  # a broken panel does not break the page
    page = logged_in.get("/")
    assert page.status_code == 200
    assert b"Conversion by segment" in page.data and b"<p id='conv'>12%</p>" in page.data
    assert b"Panel unavailable" in page.data


def test_privacy_pause_and_notice(app: Any, logged_in: Any, csrf: Any, device: FakeDevice) -> None:
    page = logged_in.get("/privacy/").data.decode()
    assert "No image, face crop" in page and "Pause camera" in page
    assert logged_in.post("/privacy/pause", data={"csrf_token": csrf(), "paused": "1"}).status_code == 302
    assert device.wait_for("/control/pause") == {"paused": True}
    atomic_write_json(Path(app.config["DATA_DIR"]) / "status.json", {"updated_at": time.time(), "paused": True})
    assert b"Resume camera" in logged_in.get("/privacy/").data

    logged_in.post("/privacy/operator", data={"csrf_token": csrf(), "operator": "Shop & Co, 1 High St"})
    notice = logged_in.get("/privacy/notice").data.decode()
    assert "estimate age and gender" in notice and "Article 50(3)" in notice
    assert "Shop &amp; Co, 1 High St" in notice and "notice.css" in notice


def test_pause_says_when_device_is_not_running(logged_in: Any, csrf: Any) -> None:
    response = logged_in.post("/privacy/pause", data={"csrf_token": csrf(), "paused": "1"}, follow_redirects=True)
    assert b"Could not pause the camera" in response.data


def test_dashboard_reads_what_the_device_event_log_writes(app: Any, logged_in: Any) -> None:
    """Contract check against the device's writer (device/events.py), not a hand-made file."""
    from admin_web.insight import EventReader, local_day_bounds, totals
    from device.events import EventLog

    start, _ = local_day_bounds()
    log = EventLog(Path(app.config["DATA_DIR"]))
    for i, segment in enumerate(["female/18-24", "female/18-24", "generic"]):
        log.record(_event(start + 600 + i, segment, ["P1", "P2"], i))
    log.close()
    today = totals(EventReader(app.config["DATA_DIR"]), 1)
    assert today.impressions == 3 and today.segments == {"female/18-24": 2, "generic": 1}
    assert today.items == {"P1": 3, "P2": 3}
    assert "female/18-24" in logged_in.get("/?days=1").data.decode()


def test_event_reader_raw_events_are_cached_per_file_version(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from admin_web.insight import EventReader, local_day_bounds

    start, _ = local_day_bounds()
    data_dir = Path(app.config["DATA_DIR"])
    _write_events(data_dir, [_event(start + 100, "generic", ["A"], 1), _event(start + 50, "generic", ["B"], 2)])
    reader = EventReader(data_dir)
    got = reader.events_between(start, start + 86400)
    assert [e["items"] for e in got] == [["B"], ["A"]]  # sorted by time
    parses: list[int] = []
    real = json.loads
    monkeypatch.setattr("admin_web.insight.json.loads", lambda raw: parses.append(1) or real(raw))
    assert reader.events_between(start, start + 86400) == got and parses == []  # unchanged: no parse
    _write_events(data_dir, [_event(start + 10, "generic", ["C"], 3)])
    assert [e["items"] for e in reader.events_between(start, start + 86400)] == [["C"], ["B"], ["A"]]  # appended
    assert [e["items"] for e in reader.events_between(start + 20, start + 86400)] == [["B"], ["A"]]


def test_dashboard_says_what_the_shelf_can_suggest_and_the_last_retrain(app: Any, logged_in: Any) -> None:
    from smartshelf.core.retrain_report import write_retrain_report

    page = logged_in.get("/").data.decode()
    assert "The shelf suggests nothing to shoppers right now" in page
    assert "No product is on a slot" in page
    assert "has not retrained from sales yet" in page
    data_dir = Path(app.config["DATA_DIR"])
    atomic_write_json(data_dir / "store.json", {"products": {
        "1": {"sku": "DRESS-1", "name": "Summer Dress", "stock": 0, "slot": "A1", "price": 3990},
        "2": {"sku": "CAP-1", "name": "Cap", "stock": 3, "slot": "A2", "price": 1290},
    }, "slots": {"1": {"slot": "A1", "pin": 5}, "2": {"slot": "A2", "pin": 6}}})
    write_retrain_report(data_dir / "factors.npz", {
        "outcome": "waiting", "finished_at": time.time(), "message": "only 7 sales", "new_sales": 7,
        "min_new_sales": 20, "items": None,
    })
    page = logged_in.get("/").data.decode()
    assert "1 product(s) on slots can be suggested" in page
    assert "Slot A1: “Summer Dress” (DRESS-1) is out of stock" in page
    assert "Not enough new sales yet" in page and "7 new sale(s) of the 20 needed" in page
