"""The device's anonymous event log: one SQLite database, ``<data_dir>/events.sqlite3``.

The device is the only writer. Each decision is one event (time, segment, confidence, reason,
variant, items, slots, timings, and whether the clock was synchronised when it was recorded). Never
a frame, a crop, an embedding or anything that could identify a person. Events older than
``retention_days`` are deleted.

Storage sized for an SD card: events are appended in one transaction per flush (every
``flush_interval_s``) to the WAL (``synchronous=NORMAL``: a commit writes only the pages it changed,
without an fsync), and the WAL is fsynced every ``sync_interval_s``; so the bytes written per event
are the same whatever the day's size, and a power cut loses at most the last
``flush_interval_s + sync_interval_s`` seconds of events. SQLite folds the WAL back into the
database at its automatic checkpoint.

The TinyDB day files of earlier releases (``<data_dir>/events/YYYY-MM-DD.json``) are imported on
first open, each file in one transaction that also records its name, then removed.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smartshelf.core.clock import SyncWatch
from smartshelf.core.errors import SmartShelfError, StorageError
from smartshelf.core.sqlite import open_database, open_readonly, transaction
from smartshelf.core.storage import AtomicJSONStorage
from smartshelf.core.types import Decision

logger = logging.getLogger(__name__)

EVENTS_FILE = "events.sqlite3"
#: Where earlier releases kept one TinyDB file per UTC day (migrated on first open).
LEGACY_EVENTS_DIR = "events"
#: The only keys an event may carry (a test asserts nothing else is written).
EVENT_KEYS = frozenset(
    {"time", "visit_id", "segment", "confidence", "reason", "variant", "items", "slots", "timings_ms",
     "clock_synced"}
)
#: A small page: a flush of one or two events appends two pages (table and time index) to the WAL.
PAGE_SIZE = 1024

MIGRATIONS = (
    """
    CREATE TABLE events (id INTEGER PRIMARY KEY, time REAL NOT NULL, doc TEXT NOT NULL);
    CREATE INDEX events_time ON events (time);
    CREATE TABLE migrated_files (name TEXT PRIMARY KEY, events INTEGER NOT NULL, at REAL NOT NULL)
    """,
)


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def day_bounds(day: str) -> tuple[float, float]:
    """Unix seconds [start, end) of a UTC day ``YYYY-MM-DD``."""
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    return float(start), float(start + 86400)


def event_from_decision(decision: Decision, variant: str) -> dict[str, Any]:
    return {
        "time": round(decision.time, 3),
        "visit_id": decision.visit_id,
        "segment": decision.segment_label,
        "confidence": round(decision.confidence, 3),
        "reason": decision.reason,
        "variant": variant,
        "items": list(decision.items),
        "slots": list(decision.slots),
        "timings_ms": {k: round(v, 2) for k, v in decision.timings_ms.items()},
    }


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class EventLog:
    """Writes events in the background: ``record`` only queues (the decision loop never waits for
    the disk), a writer thread appends the queue every ``flush_interval_s`` in one transaction.
    """

    MAX_PENDING = 10_000

    def __init__(
        self,
        data_dir: Path,
        *,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = 2.0,
        sync_interval_s: float = 20.0,
        clock_synced: Callable[[], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / EVENTS_FILE
        self.retention_days = retention_days
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.sync_interval_s = sync_interval_s
        self.clock_synced = clock_synced if clock_synced is not None else SyncWatch()
        self.monotonic = monotonic
        self._cond = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._io_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pruned_day: str | None = None
        self._synced_at: float | None = None
        self._unsynced = False
        #: what the writer did (for the bench): flushes (transactions), wal_syncs (fsyncs it asked for)
        self.stats = {"flushes": 0, "wal_syncs": 0}

    # -- the owner's connection ---------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_database(self.path, MIGRATIONS, synchronous="NORMAL", page_size=PAGE_SIZE)
            self._migrate_legacy()
        return self._conn

    def _migrate_legacy(self) -> None:
        """Import the TinyDB day files of earlier releases, one transaction per file, then remove them."""
        assert self._conn is not None
        folder = self.data_dir / LEGACY_EVENTS_DIR
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            done = self._conn.execute("SELECT 1 FROM migrated_files WHERE name = ?", (path.name,)).fetchone()
            if done is None:
                try:
                    tables = AtomicJSONStorage(path).read() or {}
                except StorageError as exc:
                    logger.error("cannot migrate events file %s: %s; it was left in place", path, exc)
                    continue
                docs = [d for table in tables.values() for d in table.values() if isinstance(d, dict)]
                rows = []
                for doc in docs:
                    try:
                        ts = float(doc["time"])
                    except (KeyError, TypeError, ValueError):
                        logger.warning("%s: event without a valid time kept with time 0: %r", path, doc)
                        ts = 0.0
                    rows.append((ts, _dumps(doc)))
                rows.sort(key=lambda r: r[0])
                with transaction(self._conn):
                    self._conn.executemany("INSERT INTO events (time, doc) VALUES (?, ?)", rows)
                    self._conn.execute("INSERT INTO migrated_files (name, events, at) VALUES (?, ?, ?)",
                                       (path.name, len(rows), time.time()))
                self._sync_wal()
                logger.info("migrated %d events from %s into %s", len(rows), path, self.path)
            for leftover in (path, path.with_name(path.name + ".bak"), path.with_name(path.name + ".lock")):
                leftover.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:
            pass  # something else is left there (a file that could not be migrated): keep it

    def _sync_wal(self) -> None:
        """Make every committed transaction durable: fsync the WAL (one fsync, no checkpoint)."""
        wal = f"{self.path}-wal"
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and truncated: the database file itself was synced
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.stats["wal_syncs"] += 1
        self._unsynced = False
        self._synced_at = self.monotonic()

    def _prune(self, now: float) -> None:
        today = day_of(now)
        if today == self._pruned_day:
            return
        cutoff = day_bounds(today)[0] - self.retention_days * 86400
        assert self._conn is not None
        with transaction(self._conn):
            gone = self._conn.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount
        if gone:
            logger.info("deleted %d events older than %d days", gone, self.retention_days)
        self._pruned_day = today

    # -- writing ------------------------------------------------------------------------------------
    def record(self, event: dict[str, Any]) -> None:
        """Queue one event (validated now, written within ``flush_interval_s``)."""
        unexpected = set(event) - EVENT_KEYS
        if unexpected:
            raise ValueError(f"event has keys that are not allowed: {sorted(unexpected)}")
        event = dict(event)
        if "clock_synced" not in event:
            event["clock_synced"] = bool(self.clock_synced())
        with self._cond:
            if self._closed:
                raise ValueError("the event log is closed")
            self._pending.append(event)
            if len(self._pending) > self.MAX_PENDING:
                del self._pending[0]
                logger.warning("event queue full (disk failing?); dropped the oldest event")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed, self.flush_interval_s)
                closed = self._closed
            self.flush()
            if closed:
                return

    def flush(self, *, sync: bool = False) -> int:
        """Write what is queued now; returns how many events were written. Errors keep them queued.

        The WAL is fsynced when ``sync`` or when the last fsync is ``sync_interval_s`` old.
        """
        with self._io_lock:
            with self._cond:
                batch, self._pending = self._pending, []
            try:
                if batch:
                    conn = self._db()
                    self._prune(self.clock())
                    with transaction(conn):
                        conn.executemany("INSERT INTO events (time, doc) VALUES (?, ?)",
                                         [(float(e["time"]), _dumps(e)) for e in batch])
                    self.stats["flushes"] += 1
                    self._unsynced = True
                due = self._synced_at is None or self.monotonic() - self._synced_at >= self.sync_interval_s
                if self._unsynced and (sync or due):
                    self._sync_wal()
            except (OSError, sqlite3.Error, SmartShelfError) as exc:
                logger.error("cannot write events to %s (%s); will retry", self.path, exc)
                with self._cond:
                    self._pending[:0] = batch
                if isinstance(exc, sqlite3.Error):
                    self._reset()
                return 0
            return len(batch)

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    # -- reading (the owner's view; the admin reads through its own read-only connection) -------------
    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        """Events with start <= time < end, oldest first (after writing what is queued)."""
        self.flush()
        conn = open_readonly(self.path)
        if conn is None:
            return []
        try:
            rows = conn.execute("SELECT doc FROM events WHERE time >= ? AND time < ? ORDER BY time, id",
                                (start, end)).fetchall()
        finally:
            conn.close()
        return [json.loads(r[0]) for r in rows]

    def day(self, day: str) -> list[dict[str, Any]]:
        return self.between(*day_bounds(day))

    def count_today(self) -> int:
        return len(self.day(day_of(self.clock())))

    def close(self) -> None:
        """Flush and sync everything and stop the writer; safe twice."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self.flush(sync=True)
        with self._io_lock:
            self._reset()
