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

from device.storage import open_db
from device.types import Decision

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
    def __init__(
        self, data_dir: Path, *, retention_days: int = 90, clock: Callable[[], float] = time.time
    ) -> None:
        self.dir = Path(data_dir) / EVENTS_DIR
        self.retention_days = retention_days
        self.clock = clock
        self._lock = threading.Lock()
        self._day: str | None = None
        self._db: Any = None

    def path_for(self, day: str) -> Path:
        return self.dir / f"{day}.json"

    def _db_for(self, ts: float) -> Any:
        day = day_of(ts)
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
        unexpected = set(event) - EVENT_KEYS
        if unexpected:
            raise ValueError(f"event has keys that are not allowed: {sorted(unexpected)}")
        with self._lock:
            self._db_for(float(event["time"])).insert(event)

    def day(self, day: str) -> list[dict[str, Any]]:
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
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
                self._day = None
