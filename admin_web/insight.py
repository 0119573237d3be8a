"""Read-only views of the device's files: decision events (impressions) and status.json.

Events live in ``<data_dir>/events.sqlite3`` (SQLite, written by the device, read here through a
read-only connection). Each UTC day is summarised once per version (keyed on its event count and
newest row id, one indexed query), so a dashboard request re-reads only the day that changed
(today's).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from smartshelf.core.errors import StorageError
from smartshelf.core.sqlite import open_readonly

logger = logging.getLogger(__name__)

BUCKET_S = 900  # 15-minute buckets: hours in any local time zone (incl. +05:30) are whole buckets


@dataclass
class DaySummary:
    """Counts keyed by 15-minute bucket (unix // BUCKET_S) so any time range can be cut exactly."""

    buckets: Counter[int] = field(default_factory=Counter)  # bucket -> impressions
    segments: Counter[tuple[int, str]] = field(default_factory=Counter)  # (bucket, segment)
    items: Counter[tuple[int, str]] = field(default_factory=Counter)  # (bucket, sku) any position
    reasons: Counter[tuple[int, str]] = field(default_factory=Counter)
    visits: dict[int, set[int]] = field(default_factory=dict)  # bucket -> visit ids
    # whole-file aggregates, used when the file lies entirely inside the asked range
    all_segments: Counter[str] = field(default_factory=Counter)
    all_items: Counter[str] = field(default_factory=Counter)
    all_reasons: Counter[str] = field(default_factory=Counter)
    all_visits: int = 0
    impressions: int = 0

    def finish(self) -> DaySummary:
        for (_, key), n in self.segments.items():
            self.all_segments[key] += n
        for (_, key), n in self.items.items():
            self.all_items[key] += n
        for (_, key), n in self.reasons.items():
            self.all_reasons[key] += n
        self.all_visits = len(set().union(*self.visits.values())) if self.visits else 0
        self.impressions = sum(self.buckets.values())
        return self


@dataclass
class Totals:
    impressions: int = 0
    visits: int = 0
    segments: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def summarise(events: list[dict[str, Any]]) -> DaySummary:
    s = DaySummary()
    for ev in events:
        try:
            b = int(float(ev["time"]) // BUCKET_S)
        except (KeyError, TypeError, ValueError):
            continue
        s.buckets[b] += 1
        s.segments[(b, str(ev.get("segment") or "generic"))] += 1
        s.reasons[(b, str(ev.get("reason") or "unknown"))] += 1
        items = ev.get("items") or []
        if isinstance(items, list):
            for sku in items:
                s.items[(b, str(sku))] += 1
        if isinstance(ev.get("visit_id"), int):
            s.visits.setdefault(b, set()).add(ev["visit_id"])
    return s.finish()


#: The fields of a device event that the admin reads, and what each must be (other fields pass).
EVENT_SCHEMA: dict[str, tuple[type, ...]] = {
    "time": (int, float), "segment": (str, type(None)), "reason": (str, type(None)),
    "items": (list, type(None)), "visit_id": (int, type(None)),
}
#: Plausible event times (unix seconds, 2000-01-01 .. 2100-01-01).
EVENT_TIME_RANGE = (946684800.0, 4102444800.0)


def event_problem(ev: Any) -> str | None:
    """Why a device event does not match :data:`EVENT_SCHEMA` (None when it does)."""
    if not isinstance(ev, dict):
        return f"is {type(ev).__name__}, not an object"
    if "time" not in ev:
        return "has no time"
    for key, types in EVENT_SCHEMA.items():
        value = ev.get(key)
        if key in ev and (isinstance(value, bool) or not isinstance(value, types)):
            return f".{key} = {str(value)[:40]!r} has the wrong type"
    if not EVENT_TIME_RANGE[0] <= ev["time"] < EVENT_TIME_RANGE[1]:
        return f".time = {ev['time']!r} is outside 2000-2099"
    if ev.get("items") is not None and not all(isinstance(i, str) for i in ev["items"]):
        return ".items must be a list of skus"
    return None


class EventReader:
    """Cached per-day summaries of the device's event database (read-only)."""

    EVENTS_FILE = "events.sqlite3"

    def __init__(self, data_dir: str | Path | None = None, *, path: str | Path | None = None) -> None:
        if path is None:
            if data_dir is None:
                raise TypeError("EventReader needs data_dir or path")
            path = Path(data_dir) / self.EVENTS_FILE
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._cache: dict[str, tuple[tuple[int, int], DaySummary, list[dict[str, Any]]]] = {}

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            self._conn = open_readonly(self.path)
        return self._conn

    def _load(self, day: date) -> tuple[DaySummary, list[dict[str, Any]]]:
        return self.load_day(day)[1:]

    def load_day(self, day: date) -> tuple[tuple[int, int], DaySummary, list[dict[str, Any]]]:
        """(version key, summary, events) of one UTC day; the key changes whenever the day's events do."""
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        end = start + 86400
        with self._lock:
            try:
                conn = self._connection()
                if conn is None:
                    return (0, 0), DaySummary(), []
                count, newest = conn.execute(
                    "SELECT count(*), coalesce(max(id), 0) FROM events WHERE time >= ? AND time < ?",
                    (start, end)).fetchone()
                key = (int(count), int(newest))
                hit = self._cache.get(day.isoformat())
                if hit and hit[0] == key:
                    return hit
                rows = conn.execute("SELECT doc FROM events WHERE time >= ? AND time < ? ORDER BY time, id",
                                    (start, end)).fetchall()
            except (StorageError, sqlite3.Error) as exc:
                logger.warning("cannot read the device's events from %s: %s", self.path, exc)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                return (0, 0), DaySummary(), []
        events: list[dict[str, Any]] = []
        skipped: list[str] = []
        for n, (raw,) in enumerate(rows):
            try:
                doc = json.loads(raw)
            except ValueError:
                skipped.append(f"[row {n}] is not JSON")
                continue
            problem = event_problem(doc)
            if problem is None:
                events.append(doc)
            else:
                skipped.append(f"[row {n}]{problem}" if problem.startswith(".") else f"[row {n}] {problem}")
        if skipped:  # once per version of the day: the events are the device's, the admin only reads them
            logger.warning("%s: %d events of %s skipped that do not match the event schema (first: %s)",
                           self.path, len(skipped), day.isoformat(), skipped[0])
        summary = summarise(events)
        with self._lock:
            self._cache[day.isoformat()] = (key, summary, events)
            if len(self._cache) > 64:
                self._cache.pop(min(self._cache))
        return key, summary, events

    def day(self, day: date) -> DaySummary:
        """Counts of one UTC day's file (parsed once per version of the file)."""
        return self._load(day)[0]

    def events(self, day: date) -> list[dict[str, Any]]:
        """The raw events of one UTC day, sorted by time; cached per file version. Read-only: do not
        modify the returned dicts (they are shared between requests)."""
        return self._load(day)[1]

    def events_between(self, start: float, end: float) -> list[dict[str, Any]]:
        """Raw events with start <= time < end (unix seconds), sorted by time, across day files."""
        d = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(max(start, end - 1e-6), UTC).date()
        out: list[dict[str, Any]] = []
        while d <= last:
            out.extend(e for e in self.events(d)
                       if isinstance(e.get("time"), (int, float)) and start <= e["time"] < end)
            d += timedelta(days=1)
        return out

    def range(self, start: float, end: float) -> list[DaySummary]:
        """Summaries of the UTC-day files that cover unix times [start, end)."""
        d = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(end, UTC).date()
        out = []
        while d <= last:
            out.append(self.day(d))
            d += timedelta(days=1)
        return out


def local_day_bounds(now: float | None = None) -> tuple[float, float]:
    now = time.time() if now is None else now
    local = datetime.fromtimestamp(now).astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp(), (midnight + timedelta(days=1)).timestamp()


def impressions_per_hour(reader: EventReader, now: float | None = None) -> list[int]:
    """Impressions in each local hour of today (24 values)."""
    start, end = local_day_bounds(now)
    hours = [0] * 24
    for summary in reader.range(start, end - 1):
        for bucket, n in summary.buckets.items():
            t = bucket * BUCKET_S
            if start <= t < end:
                hours[datetime.fromtimestamp(t).astimezone().hour] += n
    return hours


def totals(reader: EventReader, days: int, now: float | None = None) -> Totals:
    """Impressions per segment and per product over the last ``days`` local days (incl. today)."""
    start, end = local_day_bounds(now)
    start -= (days - 1) * 86400
    lo, hi = start / BUCKET_S, end / BUCKET_S
    out = Totals()
    for summary in reader.range(start, end - 1):
        if not summary.buckets:
            continue
        if lo <= min(summary.buckets) and max(summary.buckets) < hi:  # whole file in range: fast path
            out.impressions += summary.impressions
            out.segments.update(summary.all_segments)
            out.items.update(summary.all_items)
            out.reasons.update(summary.all_reasons)
            out.visits += summary.all_visits
            continue
        out.impressions += sum(n for b, n in summary.buckets.items() if lo <= b < hi)
        for (b, key), n in summary.segments.items():
            if lo <= b < hi:
                out.segments[key] += n
        for (b, key), n in summary.items.items():
            if lo <= b < hi:
                out.items[key] += n
        for (b, key), n in summary.reasons.items():
            if lo <= b < hi:
                out.reasons[key] += n
        out.visits += len(set().union(*(ids for b, ids in summary.visits.items() if lo <= b < hi)))
    return out


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} seconds"
    if seconds < 7200:
        return f"{int(seconds // 60)} minutes"
    if seconds < 172800:
        return f"{int(seconds // 3600)} hours"
    return f"{int(seconds // 86400)} days"


def read_status(runtime_dir: str | Path, *, stale_s: float, now: float | None = None) -> dict[str, Any]:
    """The device's status.json (in its runtime dir) plus ``running`` (False when missing, unreadable or stale)."""
    path = Path(runtime_dir) / "status.json"
    now = time.time() if now is None else now
    try:
        status = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {"running": False, "reason": "the device has not written status.json yet",
                "plain": "it has not started yet"}
    except (OSError, ValueError) as exc:
        return {"running": False, "reason": f"status.json is unreadable ({exc})", "plain": "its status cannot be read"}
    if not isinstance(status, dict):
        return {"running": False, "reason": "status.json is not a JSON object", "plain": "its status cannot be read"}
    try:
        age = now - float(status.get("updated_at") or 0)
    except (TypeError, ValueError):
        age = float("inf")
    status["age_s"] = age
    status["running"] = age <= stale_s
    if not status["running"]:
        status["reason"] = f"last status {int(age)} s ago" if age != float("inf") else "no update time"
        status["plain"] = (f"it stopped reporting {_ago(age)} ago" if age != float("inf")
                           else "its status cannot be read")
    return status
