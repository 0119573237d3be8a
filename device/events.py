"""The device's anonymous event log: one TinyDB file per UTC day under ``<data_dir>/events/``.

The device is the only writer. Each decision is one event (time, segment, confidence, reason,
variant, items, slots, timings). Never a frame, a crop, an embedding or anything that could
identify a person. Old days are deleted after ``retention_days``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smartshelf.core.errors import SmartShelfError
from smartshelf.core.storage import open_db
from smartshelf.core.types import Decision

logger = logging.getLogger(__name__)

EVENTS_DIR = "events"
#: The only keys an event may carry (a test asserts nothing else is written).
EVENT_KEYS = frozenset(
    {"time", "visit_id", "segment", "confidence", "reason", "variant", "items", "slots", "timings_ms"}
)


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


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


class EventLog:
    """Writes events in the background: ``record`` only queues (the decision loop never waits for
    the disk), a writer thread appends the queue to the day's file every ``flush_interval_s`` in one
    atomic write. A day file is rewritten whole on each flush (TinyDB), so batching keeps a busy day's
    cost flat per decision. At most ``flush_interval_s`` of events can be lost in a power cut.
    """

    MAX_PENDING = 10_000

    def __init__(
        self,
        data_dir: Path,
        *,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
        flush_interval_s: float = 2.0,
    ) -> None:
        self.dir = Path(data_dir) / EVENTS_DIR
        self.retention_days = retention_days
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self._cond = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._io_lock = threading.Lock()
        self._day: str | None = None
        self._db: Any = None

    def path_for(self, day: str) -> Path:
        return self.dir / f"{day}.json"

    def _db_for(self, day: str) -> Any:
        if day != self._day:
            if self._db is not None:
                self._db.close()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._db = open_db(self.path_for(day))
            self._day = day
            self._prune(day)
        return self._db

    def _prune(self, today: str) -> None:
        cutoff = day_of(time.mktime(time.strptime(today, "%Y-%m-%d")) - self.retention_days * 86400)
        for path in self.dir.glob("*.json"):
            if path.stem < cutoff:
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".bak").unlink(missing_ok=True)
                logger.info("deleted events older than %d days: %s", self.retention_days, path.name)

    def record(self, event: dict[str, Any]) -> None:
        """Queue one event (validated now, written within ``flush_interval_s``)."""
        unexpected = set(event) - EVENT_KEYS
        if unexpected:
            raise ValueError(f"event has keys that are not allowed: {sorted(unexpected)}")
        with self._cond:
            if self._closed:
                raise ValueError("the event log is closed")
            self._pending.append(dict(event))
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

    def flush(self) -> int:
        """Write what is queued now; returns how many events were written. Errors keep them queued."""
        with self._io_lock:
            with self._cond:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            by_day: dict[str, list[dict[str, Any]]] = {}
            for event in batch:
                by_day.setdefault(day_of(float(event["time"])), []).append(event)
            written = 0
            try:
                for day in sorted(by_day):
                    self._db_for(day).insert_multiple(by_day[day])
                    written += len(by_day[day])
            except (OSError, SmartShelfError) as exc:
                logger.error("cannot write events to %s (%s); will retry", self.dir, exc)
                with self._cond:
                    self._pending[:0] = batch[written:]
            return written

    def day(self, day: str) -> list[dict[str, Any]]:
        self.flush()
        path = self.path_for(day)
        if not path.exists():
            return []
        db = open_db(path, read_only=True)
        try:
            return list(db.all())
        finally:
            db.close()

    def count_today(self) -> int:
        return len(self.day(day_of(self.clock())))

    def close(self) -> None:
        """Flush everything and stop the writer; safe twice."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self.flush()
        with self._io_lock:
            if self._db is not None:
                self._db.close()
                self._db = None
                self._day = None
