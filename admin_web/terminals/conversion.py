"""Which sales did the shelf's picks cause? Attribution, conversion rates and the trainer export.

Definitions (documented in docs/terminals.md):

- An *impression* is one device decision event (``events.sqlite3``, see device/events.py): at
  ``time`` the shelf showed ``items`` to visit ``visit_id`` of ``segment`` in A/B ``variant``.
- A *visit* groups the impressions of one ``visit_id`` within one day file; its segment and variant
  are those of its last decision (decisions may be revised while the shopper stands there).
- A sale line of sku S at time T is a *conversion* when some impression with S in ``items`` happened
  in ``[T - window_s, T]``; it is attributed to the latest such impression's visit. Refunds are
  not attributed (a returned item does not undo the fact that the pick worked).
- *Conversion rate* of a group (segment, or variant) = visits with at least one conversion / visits.
  The A/B uplift is rate(personalised) - rate(control).

Everything here is pure except :func:`load_impressions`, which reads the device's event files
read-only (it never writes them).
"""

from __future__ import annotations

import bisect
import io
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from smartshelf.core import csvsafe
from smartshelf.core.types import Segment

logger = logging.getLogger(__name__)

UNKNOWN_USER = "unknown"
VARIANTS: tuple[str, ...] = ("personalised", "control")


@dataclass(frozen=True, slots=True)
class Impression:
    time: float
    visit: str
    segment: str
    variant: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Attribution:
    """One sale line; ``visit`` is None when the line was not a conversion."""

    event_id: str
    sku: str
    qty: int
    time: float
    visit: str | None
    segment: str | None
    variant: str | None


@dataclass(frozen=True, slots=True)
class Rate:
    key: str
    visits: int
    converted: int
    units: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.visits if self.visits else None


@dataclass(frozen=True)
class ConversionReport:
    window_s: int
    by_segment: list[Rate]
    by_variant: list[Rate]
    sales_lines: int
    converted_lines: int

    @property
    def uplift(self) -> float | None:
        """Personalised minus control conversion rate (None until both arms have visits)."""
        rates = {r.key: r.rate for r in self.by_variant}
        p, c = rates.get("personalised"), rates.get("control")
        return None if p is None or c is None else p - c


#: Two decisions with the same visit_id further apart than this are different visits (the device's
#: visit counter starts again at 1 when the service restarts; a real visit lasts seconds to minutes).
VISIT_GAP_S = 1800.0


def impressions_from_docs(day: str, docs: Iterable[Mapping[str, Any]]) -> list[Impression]:
    """Impressions of one day file's documents, sorted by time; malformed documents are skipped with
    a log line. The visit key is ``<day>#<visit_id>`` (``#<visit_id>.<n>`` when the id was reused
    after a device restart)."""
    rows: list[tuple[float, int, Mapping[str, Any]]] = []
    for doc in docs:
        try:
            rows.append((float(doc["time"]), int(doc["visit_id"]), doc))
        except (KeyError, TypeError, ValueError):
            logger.warning("events %s: skipping malformed decision event %.200r", day, doc)
    rows.sort(key=lambda r: r[0])
    last_seen: dict[int, float] = {}
    generation: dict[int, int] = {}
    out: list[Impression] = []
    for t, visit_id, doc in rows:
        if visit_id in last_seen and t - last_seen[visit_id] > VISIT_GAP_S:
            generation[visit_id] = generation.get(visit_id, 0) + 1
        last_seen[visit_id] = t
        n = generation.get(visit_id, 0)
        items = doc.get("items") or ()
        out.append(
            Impression(
                time=t,
                visit=f"{day}#{visit_id}" if n == 0 else f"{day}#{visit_id}.{n}",
                segment=str(doc.get("segment") or "generic"),
                variant=str(doc.get("variant") or "personalised"),
                items=tuple(str(i) for i in items) if isinstance(items, (list, tuple)) else (),
            )
        )
    return out


class ImpressionLoader:
    """Reads the device's event database read-only, caching each UTC day's impressions by the day's
    version, so the dashboard does not parse a month of events on every view. Thread-safe; one per app."""

    def __init__(self, events_db: Path) -> None:
        from admin_web.insight import EventReader

        self.events_db = Path(events_db)
        self._reader = EventReader(path=self.events_db)
        self._files: dict[str, tuple[tuple[int, int], list[Impression]]] = {}
        self._merged: tuple[tuple[Any, ...], list[Impression]] | None = None
        self._lock = threading.Lock()

    def _day(self, day: date) -> tuple[tuple[int, int], list[Impression]] | None:
        key, _summary, docs = self._reader.load_day(day)
        if not docs:
            self._files.pop(day.isoformat(), None)
            return None
        cached = self._files.get(day.isoformat())
        if cached is not None and cached[0] == key:
            return cached
        imps = impressions_from_docs(day.isoformat(), docs)
        self._files[day.isoformat()] = (key, imps)
        return key, imps

    def load(self, start: datetime, end: datetime) -> list[Impression]:
        """Impressions of the UTC days covering ``[start, end]``, sorted by time (do not modify)."""
        with self._lock:
            parts = []
            day = start.astimezone(UTC).date()
            last: date = end.astimezone(UTC).date()
            while day <= last:
                found = self._day(day)
                if found is not None:
                    parts.append((day.isoformat(), found))
                day += timedelta(days=1)
            signature = tuple((name, key) for name, (key, _) in parts)
            if self._merged is not None and self._merged[0] == signature:
                return self._merged[1]
            merged = [imp for _, (_, imps) in parts for imp in imps]
            merged.sort(key=lambda i: i.time)
            self._merged = (signature, merged)
            return merged

def load_impressions(events_db: Path, start: datetime, end: datetime) -> list[Impression]:
    """Read the device's events of the UTC days covering ``[start, end]`` (read-only), sorted by time."""
    return ImpressionLoader(events_db).load(start, end)


def sale_time(doc: Mapping[str, Any]) -> float:
    """A ledger document's payment time (its ``time``, else ``received_at``) as unix seconds."""
    for key in ("time", "received_at"):
        value = doc.get(key)
        if value:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                continue
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    raise ValueError(f"sale {doc.get('event_id')!r} has no usable time")


def attribute(
    sales: Sequence[Mapping[str, Any]], impressions: Sequence[Impression], *, window_s: float
) -> list[Attribution]:
    """Attribute every sale line (``type == "sale"``) to the latest impression showing its sku
    within ``window_s`` before the sale. ``impressions`` must be sorted by time."""
    times = [i.time for i in impressions]
    visit_final: dict[str, Impression] = {}
    for imp in impressions:
        visit_final[imp.visit] = imp
    out: list[Attribution] = []
    for doc in sales:
        if doc.get("type") != "sale":
            continue
        try:
            t = sale_time(doc)
        except ValueError:
            logger.warning("ledger: %s", "sale without a usable time skipped")
            continue
        hi = bisect.bisect_right(times, t)
        for line in doc.get("lines") or ():
            sku, qty = line.get("sku"), int(line.get("qty", 0))
            hit: Impression | None = None
            k = hi - 1
            while k >= 0 and impressions[k].time >= t - window_s:
                if sku in impressions[k].items:
                    hit = impressions[k]
                    break
                k -= 1
            final = visit_final[hit.visit] if hit is not None else None
            out.append(
                Attribution(
                    event_id=str(doc.get("event_id")),
                    sku=str(sku),
                    qty=qty,
                    time=t,
                    visit=hit.visit if hit is not None else None,
                    segment=final.segment if final is not None else None,
                    variant=final.variant if final is not None else None,
                )
            )
    return out


def report(impressions: Sequence[Impression], attributions: Sequence[Attribution], *, window_s: int) -> ConversionReport:
    """Conversion rate by segment and by A/B variant."""
    visit_final: dict[str, Impression] = {}
    for imp in impressions:
        visit_final[imp.visit] = imp
    converted: dict[str, int] = {}
    for a in attributions:
        if a.visit is not None:
            converted[a.visit] = converted.get(a.visit, 0) + a.qty

    def rates(key_of: Any, keys: Iterable[str]) -> list[Rate]:
        visits: dict[str, int] = {k: 0 for k in keys}
        conv: dict[str, int] = {k: 0 for k in keys}
        units: dict[str, int] = {k: 0 for k in keys}
        for visit, imp in visit_final.items():
            key = key_of(imp)
            visits[key] = visits.get(key, 0) + 1
            if visit in converted:
                conv[key] = conv.get(key, 0) + 1
                units[key] = units.get(key, 0) + converted[visit]
        return [Rate(k, visits[k], conv.get(k, 0), units.get(k, 0)) for k in visits]

    by_segment = sorted(rates(lambda i: i.segment, ()), key=lambda r: (-r.visits, r.key))
    by_variant = rates(lambda i: i.variant, VARIANTS)
    return ConversionReport(
        window_s=window_s,
        by_segment=by_segment,
        by_variant=by_variant,
        sales_lines=len(attributions),
        converted_lines=sum(1 for a in attributions if a.visit is not None),
    )


def _trainer_user(segment: str | None) -> str:
    if segment is None:
        return UNKNOWN_USER
    try:
        return str(Segment.parse(segment))
    except ValueError:  # "generic" (low confidence, minors): no usable segment
        return UNKNOWN_USER


def interactions_csv(attributions: Sequence[Attribution], item_ids: Mapping[str, str]) -> tuple[str, str]:
    """(interactions.csv, users.csv) text for ``smartshelf recommend train``'s generic CSV format.

    interactions: ``user,item,value,time`` (user = the converting visit's segment, else "unknown";
    item = the product's factor-file ``item_id``, else its sku; value = quantity; time = unix seconds).
    users: ``user,segment`` for every segment user (the "unknown" user has no segment and is omitted).
    """
    inter = io.StringIO()
    writer = csvsafe.writer(inter, lineterminator="\n")
    writer.writerow(["user", "item", "value", "time"])
    users: set[str] = set()
    for a in attributions:
        user = _trainer_user(a.segment)
        if user != UNKNOWN_USER:
            users.add(user)
        writer.writerow([user, item_ids.get(a.sku) or a.sku, a.qty, int(a.time)])
    users_io = io.StringIO()
    writer = csvsafe.writer(users_io, lineterminator="\n")
    writer.writerow(["user", "segment"])
    for user in sorted(users):
        writer.writerow([user, user])
    return inter.getvalue(), users_io.getvalue()


ITEMS_COLUMNS = ("item", "sku", "name", "gender", "category", "price", "currency", "sold")


def items_csv(products: Iterable[Mapping[str, Any]]) -> str:
    """items.csv: every product of the store, sold or not, so a retrain keeps the whole catalogue.

    ``item`` is the id the interactions use (the product's ``item_id``, else its sku); ``price`` in
    major units with a decimal point; ``sold`` = units sold through the terminals.
    """
    from admin_web.products import currency_exponent

    out = io.StringIO()
    writer = csvsafe.writer(out, lineterminator="\n")
    writer.writerow(ITEMS_COLUMNS)
    for p in sorted(products, key=lambda p: str(p.get("sku"))):
        currency = str(p.get("currency") or "")
        exp = currency_exponent(currency) if currency else 2
        price = int(p.get("price") or 0)
        major = f"{price / 10**exp:.{exp}f}"
        writer.writerow([
            p.get("item_id") or p["sku"], p["sku"], p.get("name") or "", p.get("gender") or "",
            p.get("category") or "", major, currency, int(p.get("sold") or 0),
        ])
    return out.getvalue()


def compute(
    sales: Sequence[Mapping[str, Any]],
    events_db: Path,
    *,
    window_s: int,
    start: datetime | None = None,
    end: datetime | None = None,
    loader: ImpressionLoader | None = None,
) -> tuple[ConversionReport, list[Attribution]]:
    """Attribute the sales in ``[start, end]`` (default: the span of all sales) to the shelf's impressions.

    The visit counts cover every visit from ``start - window_s`` to ``end``, so the conversion rate's
    denominator does not depend on when the sales happened.
    """
    timed: list[tuple[float, Mapping[str, Any]]] = []
    for doc in sales:
        try:
            timed.append((sale_time(doc), doc))
        except ValueError:
            logger.warning("ledger: sale %r has no usable time; left out of the report", doc.get("event_id"))
    if start is None or end is None:
        if not timed:
            return report([], [], window_s=window_s), []
        start = start or datetime.fromtimestamp(min(t for t, _ in timed), UTC)
        end = end or datetime.fromtimestamp(max(t for t, _ in timed), UTC)
    lo, hi = start.timestamp(), end.timestamp()
    chosen = [doc for t, doc in timed if lo <= t <= hi]
    impressions = [
        i for i in (loader or ImpressionLoader(events_db)).load(start - timedelta(seconds=window_s), end)
        if lo - window_s <= i.time <= hi
    ]
    attributions = attribute(chosen, impressions, window_s=window_s)
    return report(impressions, attributions, window_s=window_s), attributions


def dumps_report(rep: ConversionReport) -> str:
    """JSON text of a report (for ``smartshelf terminal conversions --json``)."""
    def rows(rs: list[Rate]) -> list[dict[str, Any]]:
        return [{"key": r.key, "visits": r.visits, "converted": r.converted, "units": r.units, "rate": r.rate} for r in rs]

    return json.dumps(
        {
            "window_s": rep.window_s,
            "by_segment": rows(rep.by_segment),
            "by_variant": rows(rep.by_variant),
            "uplift": rep.uplift,
            "sales_lines": rep.sales_lines,
            "converted_lines": rep.converted_lines,
        },
        indent=2,
    )
