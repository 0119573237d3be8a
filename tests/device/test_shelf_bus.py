"""The real shelf runtime (build_shelf on the demo, committed models) on a real Mosquitto: decision
events go out on the bus, the hub's pause/resume reach the camera loop, the status says bus state;
a lone shelf (bus off) has no bus at all."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from admin_web.store_bus import ShelfRegistry, StoreHub
from device.demo.store import prepare_demo
from device.display import RecordingIndicator
from device.shelf import build_shelf
from smartshelf.core.config import BusConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition", step: Callable[[], Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_lone_shelf_has_no_bus(tmp_path: Path) -> None:
    config = prepare_demo(tmp_path / "data", kiosk_port=0)
    shelf = build_shelf(config, indicator=RecordingIndicator(), serve_kiosk=False)
    try:
        assert shelf.bus is None and shelf.status()["bus"] == {"enabled": False}
    finally:
        shelf.close()


def test_the_demo_shelf_on_a_store_bus(tmp_path: Path, mosquitto: Callable[..., Any]) -> None:
    hub_dir = tmp_path / "hub"
    registry = ShelfRegistry(hub_dir)
    password = registry.add_shelf("demo", ["A1"])
    broker = mosquitto(password_file=registry.password_file, acl_file=registry.acl_file)
    hub = StoreHub(hub_dir, port=broker.port).start()
    (tmp_path / "pw").write_text(password)
    config = prepare_demo(tmp_path / "data", kiosk_port=0)
    config = config.replace(bus=BusConfig(enabled=True, host="127.0.0.1", port=broker.port, shelf="demo",
                                          user="demo", password_file=tmp_path / "pw", status_every_s=0.5))
    frame_time = [0.0]
    shelf = build_shelf(config, indicator=RecordingIndicator(), serve_kiosk=False, clock=lambda: frame_time[0])

    def step() -> None:
        shelf.controller.step()
        frame_time[0] += 0.1
        shelf.write_status(every_s=0)

    try:
        until(lambda: shelf.bus.connected, what="the shelf to join")
        until(lambda: hub.events.counts().get("demo", 0) >= 1, timeout=60, what="a decision event at the hub", step=step)
        event = hub.events.recent(1)[0]
        assert event["shelf"] == "demo" and event["segment"] and event["items"]
        until(lambda: hub.statuses.get("demo", {}).get("online"), what="the shelf's status at the hub")
        sent = hub.command("demo", "pause", wait_s=None)
        until(lambda: sent["id"] in hub.acks, what="the pause ack", step=step)
        assert shelf.controller.paused and hub.acks[sent["id"]]["ok"]
        sent = hub.command("demo", "resume", wait_s=None)
        until(lambda: sent["id"] in hub.acks, what="the resume ack", step=step)
        assert not shelf.controller.paused
        assert shelf.status()["bus"]["connected"] is True
        broker.stop()
        until(lambda: not shelf.bus.connected, timeout=15, what="the shelf to notice the broker is gone", step=step)
        decisions = shelf.controller.stats.frames
        for _ in range(5):
            step()
        assert shelf.controller.stats.frames == decisions + 5  # still serving
        assert shelf.status()["bus"]["connected"] is False
    finally:
        shelf.close()
        hub.close()
    assert dataclasses.is_dataclass(config.bus)
