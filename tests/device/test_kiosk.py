"""The device's loopback endpoint: kiosk page, server-sent events, status and control."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from device.display.kiosk import KioskServer
from device.display.screen import KioskScreen


@pytest.fixture
def server(tmp_path):
    from smartshelf.core.control import load_or_create_secret

    secret = load_or_create_secret(tmp_path)
    screen = KioskScreen("Test shelf")
    commands: list[tuple[str, dict[str, Any]]] = []

    def control(name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name not in ("identify", "pause", "reload"):
            raise KeyError(f"unknown command {name!r}")
        commands.append((name, body))
        return {"ok": True}

    kiosk = KioskServer(screen, port=0, control=control, status=lambda: {"camera": {"state": "ok"}}, heartbeat_s=0.2,
                         data_dir=tmp_path)
    kiosk.start()
    kiosk.commands = commands  # type: ignore[attr-defined]
    kiosk.test_secret = secret  # type: ignore[attr-defined]
    yield kiosk
    kiosk.close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def post(url: str, body: bytes, secret: str | None = None, **headers: str) -> tuple[int, dict]:
    sent = {"Content-Type": "application/json", **headers}
    if secret:
        sent["X-Smartshelf-Control"] = secret
    req = urllib.request.Request(url, data=body, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_page_state_status_and_not_found(server: KioskServer) -> None:
    status, ctype, body = get(server.url)
    assert status == 200 and ctype.startswith("text/html") and "EventSource" in body
    assert "http://" not in body.replace("http://www.w3.org", ""), "no external resources (offline, no CDN)"
    status, _, body = get(server.url + "state")
    assert json.loads(body)["mode"] == "idle"
    assert json.loads(get(server.url + "status")[2]) == {"camera": {"state": "ok"}}
    assert get(server.url + "nothing")[0] == 404
    assert get(server.url + "static/../../config.py")[0] == 404


def test_server_sent_events_deliver_each_new_state(server: KioskServer) -> None:
    received: list[dict] = []
    ready = threading.Event()

    def listen() -> None:
        with urllib.request.urlopen(server.url + "events", timeout=10) as resp:
            for raw in resp:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    ready.set()
                    if len(received) == 2:
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(5), "the current state is sent on connect"
    server.screen.show({"segment": "female/25-34", "personalised": True, "items": [{"sku": "X1", "name": "Top"}]})
    thread.join(5)
    assert [r["mode"] for r in received] == ["idle", "picks"]
    assert received[1]["items"][0]["sku"] == "X1"


def test_control_endpoints(server: KioskServer) -> None:
    secret = server.test_secret  # type: ignore[attr-defined]
    assert post(server.url + "control/identify", b'{"slot": "A1", "seconds": 2}', secret) == (200, {"ok": True})
    assert post(server.url + "control/pause", b'{"paused": true}', secret)[0] == 200
    assert server.commands == [("identify", {"slot": "A1", "seconds": 2}), ("pause", {"paused": True})]  # type: ignore[attr-defined]
    assert post(server.url + "control/identify", b"not json", secret)[0] == 400
    assert post(server.url + "control/explode", b"{}", secret)[0] == 422
    assert post(server.url + "other", b"{}", secret)[0] == 404


def test_kiosk_binds_loopback_only(server: KioskServer) -> None:
    assert server.httpd.server_address[0] == "127.0.0.1"
