"""The device's event log: background batched writes, daily files, retention, allowed keys only."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from admin_web.insight import EventReader
from device.events import EventLog, day_of
from smartshelf.core.storage import open_db


def event(ts: float, segment: str = "female/25-34", visit: int = 1) -> dict:
    return {
        "time": ts, "visit_id": visit, "segment": segment, "confidence": 0.8, "reason": "personalised",
        "variant": "personalised", "items": ["A"], "slots": ["A1"], "timings_ms": {"total": 3.0},
    }


def test_events_are_queued_then_written_and_read_by_utc_day(tmp_path: Path) -> None:
    log = EventLog(tmp_path, flush_interval_s=60, clock_synced=lambda: True)
    day1 = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))
    log.record(event(day1))
    log.record(event(day1 + 86400, visit=2))
    assert not (tmp_path / "events.sqlite3").exists(), "queued, not written"
    log.close()
    assert [e["visit_id"] for e in log.day(day_of(day1))] == [1]
    assert [e["visit_id"] for e in log.day(day_of(day1 + 86400))] == [2]
    with sqlite3.connect(tmp_path / "events.sqlite3") as conn:
        (doc,) = conn.execute("SELECT doc FROM events ORDER BY time LIMIT 1").fetchone()
    assert json.loads(doc)["segment"] == "female/25-34"
    log.close()  # safe twice


def test_the_writer_thread_flushes_without_close(tmp_path: Path) -> None:
    log = EventLog(tmp_path, flush_interval_s=0.05, clock_synced=lambda: True)
    now = time.time()
    for i in range(5):
        log.record(event(now, visit=i))
    deadline = time.monotonic() + 10
    reader = EventReader(tmp_path)
    while time.monotonic() < deadline and len(reader.events(datetime.fromtimestamp(now, UTC).date())) < 5:
        time.sleep(0.05)
    assert len(reader.events(datetime.fromtimestamp(now, UTC).date())) == 5
    log.close()


def test_events_before_the_clock_is_synchronised_are_marked(tmp_path: Path) -> None:
    synced = [False]
    log = EventLog(tmp_path, flush_interval_s=60, clock_synced=lambda: synced[0])
    now = time.time()
    log.record(event(now, visit=1))
    synced[0] = True
    log.record(event(now + 1, visit=2))
    log.close()
    assert [(e["visit_id"], e["clock_synced"]) for e in log.day(day_of(now))] == [(1, False), (2, True)]


def test_the_wal_is_synced_at_most_every_sync_interval(tmp_path: Path) -> None:
    mono = [0.0]
    log = EventLog(tmp_path, flush_interval_s=60, sync_interval_s=20, clock_synced=lambda: True,
                   monotonic=lambda: mono[0])
    now = time.time()
    for i in range(30):  # a flush every 2 s for 60 s
        log.record(event(now + i, visit=i))
        log.flush()
        mono[0] += 2.0
    assert log.stats["flushes"] == 30
    assert log.stats["wal_syncs"] == 3  # at 0 s, 20 s, 40 s: nothing committed waits over 20 s for its fsync
    log.close()
    assert log.stats["wal_syncs"] == 4  # close syncs what is left


def test_the_bytes_written_per_flush_do_not_grow_with_the_day(tmp_path: Path) -> None:
    """The old TinyDB day file was rewritten whole on every flush; the WAL only gets the new pages."""
    log = EventLog(tmp_path, flush_interval_s=60, clock_synced=lambda: True)
    wal = tmp_path / "events.sqlite3-wal"
    now = time.time()
    growth = []
    for i in range(600):
        before = wal.stat().st_size if wal.exists() else 0
        log.record(event(now + i, visit=i))
        log.flush()
        after = wal.stat().st_size
        if after > before:
            growth.append(after - before)
    log.close()
    assert max(growth[-50:]) <= max(growth[:50]) + 1100  # at most one more page, not the whole day


def test_legacy_tinydb_day_files_are_migrated_once_losing_nothing(tmp_path: Path) -> None:
    """Files written by the old code path (TinyDB through AtomicJSONStorage, a .bak beside) move in."""
    folder = tmp_path / "events"
    day1 = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))
    old = [event(day1 + i, visit=i) for i in range(3)] + [event(day1 + 86400, visit=9)]
    for ev in old:
        db = open_db(folder / f"{day_of(ev['time'])}.json")
        db.insert(ev)  # the old EventLog's write: TinyDB insert, atomic rewrite with .bak
        db.close()
    assert sorted(p.name for p in folder.iterdir())[:2] == [f"{day_of(day1)}.json", f"{day_of(day1)}.json.bak"]
    log = EventLog(tmp_path, clock_synced=lambda: True, retention_days=36500)
    log.record(event(day1 + 10, visit=10))
    log.close()
    assert not folder.exists(), "migrated files (and their .bak) are removed"
    assert [e["visit_id"] for e in log.day(day_of(day1))] == [0, 1, 2, 10]
    assert [e["visit_id"] for e in log.day(day_of(day1 + 86400))] == [9]
    assert "clock_synced" not in log.day(day_of(day1))[0], "old events are not claimed to have a set clock"
    again = EventLog(tmp_path, clock_synced=lambda: True, retention_days=36500)
    again.record(event(day1 + 11, visit=11))
    again.close()
    assert len(again.day(day_of(day1))) == 5, "nothing imported twice"


def test_a_migration_interrupted_after_its_commit_does_not_import_twice(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    day1 = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, -1))
    db = open_db(folder / f"{day_of(day1)}.json")
    db.insert(event(day1))
    db.close()
    kept = (folder / f"{day_of(day1)}.json").read_bytes()
    log = EventLog(tmp_path, clock_synced=lambda: True, retention_days=36500)
    log.record(event(day1 + 1, visit=2))
    log.close()
    folder.mkdir()
    (folder / f"{day_of(day1)}.json").write_bytes(kept)  # as if the power failed before the unlink
    log = EventLog(tmp_path, clock_synced=lambda: True, retention_days=36500)
    log.record(event(day1 + 2, visit=3))
    log.close()
    assert [e["visit_id"] for e in log.day(day_of(day1))] == [1, 2, 3]


def test_only_anonymous_keys_are_accepted(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    with pytest.raises(ValueError, match="face"):
        log.record({**event(time.time()), "face": [1, 2, 3]})
    log.close()


def test_old_days_are_deleted(tmp_path: Path) -> None:
    log = EventLog(tmp_path, retention_days=90, clock_synced=lambda: True)
    old = time.time() - 100 * 86400
    log.record(event(old))
    log.flush()
    log._pruned_day = None  # a new day begins
    log.record(event(time.time()))
    log.close()
    assert log.day(day_of(old)) == []
    assert log.count_today() == 1


def test_a_failing_disk_keeps_events_queued(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    log = EventLog(blocker, flush_interval_s=60, clock_synced=lambda: True)
    log.record(event(time.time()))
    assert log.flush() == 0
    blocker.unlink()
    assert log.flush() == 1
    log.close()
