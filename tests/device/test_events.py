"""The device's event log: background batched writes, daily files, retention, allowed keys only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from device.events import EventLog, day_of


def event(ts: float, segment: str = "female/25-34", visit: int = 1) -> dict:
    return {
        "time": ts, "visit_id": visit, "segment": segment, "confidence": 0.8, "reason": "personalised",
        "variant": "personalised", "items": ["A"], "slots": ["A1"], "timings_ms": {"total": 3.0},
    }


def test_events_land_in_one_file_per_utc_day(tmp_path: Path) -> None:
    log = EventLog(tmp_path, flush_interval_s=60)
    day1 = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))
    log.record(event(day1))
    log.record(event(day1 + 86400, visit=2))
    assert not (tmp_path / "events").exists() or not list((tmp_path / "events").glob("*.json")), "queued, not written"
    log.close()
    files = sorted(p.name for p in (tmp_path / "events").glob("*.json"))
    assert files == [f"{day_of(day1)}.json", f"{day_of(day1 + 86400)}.json"]
    stored = json.loads((tmp_path / "events" / files[0]).read_text())["_default"]
    assert next(iter(stored.values()))["segment"] == "female/25-34"
    log.close()  # safe twice


def test_the_writer_thread_flushes_without_close(tmp_path: Path) -> None:
    log = EventLog(tmp_path, flush_interval_s=0.05)
    now = time.time()
    for i in range(5):
        log.record(event(now, visit=i))
    deadline = time.monotonic() + 10
    path = log.path_for(day_of(now))
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.05)
    time.sleep(0.2)
    assert len(json.loads(path.read_text())["_default"]) == 5
    log.close()


def test_only_anonymous_keys_are_accepted(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    with pytest.raises(ValueError, match="face"):
        log.record({**event(time.time()), "face": [1, 2, 3]})
    log.close()


def test_old_days_are_deleted(tmp_path: Path) -> None:
    old = time.time() - 100 * 86400
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / f"{day_of(old)}.json").write_text("{}")
    log = EventLog(tmp_path, retention_days=90)
    log.record(event(time.time()))
    log.close()
    assert not (tmp_path / "events" / f"{day_of(old)}.json").exists()
    assert log.count_today() == 1


def test_a_failing_disk_keeps_events_queued(tmp_path: Path) -> None:
    blocker = tmp_path / "events"
    blocker.write_text("not a directory")
    log = EventLog(tmp_path, flush_interval_s=60)
    log.record(event(time.time()))
    assert log.flush() == 0
    blocker.unlink()
    assert log.flush() == 1
    log.close()
