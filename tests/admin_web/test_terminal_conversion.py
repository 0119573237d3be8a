"""Conversion attribution, rates by segment and variant, and the trainer CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from admin_web.terminals import conversion
from admin_web.terminals.conversion import impressions_from_docs
from tests.helpers import write_device_events

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def decision(t: float, visit: int, segment: str, items: list[str], variant: str = "personalised") -> dict:
    return {"time": t, "visit_id": visit, "segment": segment, "confidence": 0.9, "reason": "personalised",
            "variant": variant, "items": items, "slots": [], "timings_ms": {}}


def sale(eid: str, t: float, lines: list[tuple[str, int]], kind: str = "sale") -> dict:
    return {"event_id": eid, "terminal_id": "t1", "type": kind, "lines": [{"sku": s, "qty": q} for s, q in lines],
            "amount": 100, "currency": "EUR", "time": iso(t), "received_at": iso(t), "provider": "generic"}


DOCS = [
    decision(T0, 1, "female/25-34", ["A", "B"]),
    decision(T0 + 5, 1, "female/25-34", ["A", "C"]),       # revision of visit 1
    decision(T0 + 100, 2, "male/35-44", ["D"], "control"),
    decision(T0 + 200, 3, "male/35-44", ["A"]),
    decision(T0 + 300, 4, "generic", ["B"], "control"),
]


def test_attribution_window_and_latest_impression() -> None:
    imps = impressions_from_docs("2026-11-26", DOCS)
    sales = [
        sale("s1", T0 + 250, [("A", 2), ("Z", 1)]),  # A: latest showing is visit 3 (t+200); Z never shown
        sale("s2", T0 + 100 + 600, [("D", 1)]),      # exactly at the window edge: counts
        sale("s3", T0 + 5 + 601, [("C", 1)]),        # one second too late
        sale("r1", T0 + 260, [("A", 1)], kind="refund"),  # refunds are not attributed
    ]
    atts = conversion.attribute(sales, imps, window_s=600)
    assert [(a.event_id, a.sku, a.visit, a.segment) for a in atts] == [
        ("s1", "A", "2026-11-26#3", "male/35-44"),
        ("s1", "Z", None, None),
        ("s2", "D", "2026-11-26#2", "male/35-44"),
        ("s3", "C", None, None),
    ]
    rep = conversion.report(imps, atts, window_s=600)
    seg = {r.key: (r.visits, r.converted, r.units) for r in rep.by_segment}
    assert seg == {"female/25-34": (1, 0, 0), "male/35-44": (2, 2, 3), "generic": (1, 0, 0)}
    var = {r.key: (r.visits, r.converted) for r in rep.by_variant}
    assert var == {"personalised": (2, 1), "control": (2, 1)}
    assert rep.uplift == 0.0
    assert rep.sales_lines == 4 and rep.converted_lines == 2


def test_uplift_needs_both_arms() -> None:
    imps = impressions_from_docs("d", [decision(T0, 1, "female/25-34", ["A"])])
    rep = conversion.report(imps, conversion.attribute([sale("s", T0 + 1, [("A", 1)])], imps, window_s=60), window_s=60)
    assert rep.uplift is None
    assert {r.key: r.rate for r in rep.by_variant} == {"personalised": 1.0, "control": None}


def test_interactions_csv_for_the_trainer() -> None:
    imps = impressions_from_docs("2026-11-26", DOCS)
    atts = conversion.attribute([sale("s1", T0 + 250, [("A", 2), ("Z", 1)]), sale("s4", T0 + 310, [("B", 1)])],
                                imps, window_s=600)
    inter, users = conversion.interactions_csv(atts, {"A": "item-a"})
    rows = list(csv.DictReader(io.StringIO(inter)))
    assert rows == [
        {"user": "male/35-44", "item": "item-a", "value": "2", "time": str(int(T0 + 250))},
        {"user": "unknown", "item": "Z", "value": "1", "time": str(int(T0 + 250))},
        {"user": "unknown", "item": "B", "value": "1", "time": str(int(T0 + 310))},  # "generic" visit: no segment
    ]
    assert list(csv.DictReader(io.StringIO(users))) == [{"user": "male/35-44", "segment": "male/35-44"}]


def test_export_is_readable_by_the_trainer(tmp_path: Path) -> None:
    from device.recommend.data import load_csv

    imps = impressions_from_docs("2026-11-26", DOCS)
    atts = conversion.attribute([sale("s1", T0 + 250, [("A", 2), ("Z", 1)])], imps, window_s=600)
    inter, users = conversion.interactions_csv(atts, {})
    (tmp_path / "interactions.csv").write_text(inter)
    (tmp_path / "users.csv").write_text(users)
    data = load_csv(tmp_path / "interactions.csv", tmp_path / "users.csv")
    assert set(data.user_ids) == {"male/35-44", "unknown"} and set(data.item_ids) == {"A", "Z"}


def test_compute_reads_device_event_files(tmp_path: Path) -> None:
    write_device_events(tmp_path, DOCS)
    events = tmp_path / "events.sqlite3"
    sales = [sale("s1", T0 + 250, [("A", 1)])]
    rep, atts = conversion.compute(sales, events, window_s=600)
    assert [a.segment for a in atts] == ["male/35-44"]
    assert sum(r.visits for r in rep.by_segment) == 3  # default period ends at the last sale
    day_start, day_end = datetime.fromtimestamp(T0 - 3600, UTC), datetime.fromtimestamp(T0 + 3600, UTC)
    rep, atts = conversion.compute(sales, events, window_s=600, start=day_start, end=day_end)
    assert sum(r.visits for r in rep.by_segment) == 4 and len(atts) == 1
    rep, atts = conversion.compute(sales, events, window_s=600, start=day_end, end=day_end)
    assert atts == [] and sum(r.visits for r in rep.by_segment) == 0


def test_impression_loader_caches_until_a_day_changes(tmp_path: Path) -> None:
    write_device_events(tmp_path, [DOCS[0]])
    loader = conversion.ImpressionLoader(tmp_path / "events.sqlite3")
    start, end = datetime.fromtimestamp(T0 - 60, UTC), datetime.fromtimestamp(T0 + 3600, UTC)
    first = loader.load(start, end)
    assert [i.visit for i in first] == ["2026-11-26#1"]
    assert loader.load(start, end) is first  # unchanged day: no re-parse
    write_device_events(tmp_path, [DOCS[2]])
    assert [i.visit for i in loader.load(start, end)] == ["2026-11-26#1", "2026-11-26#2"]
    assert conversion.ImpressionLoader(tmp_path / "absent.sqlite3").load(start, end) == []


def test_a_visit_id_reused_after_a_device_restart_is_another_visit() -> None:
    docs = [decision(T0, 1, "female/25-34", ["A"]), decision(T0 + 4000, 1, "male/35-44", ["B"]),
            decision(T0 + 4002, 1, "male/35-44", ["B", "C"]), {"time": "bad"}]
    imps = impressions_from_docs("2026-11-26", docs)
    assert [i.visit for i in imps] == ["2026-11-26#1", "2026-11-26#1.1", "2026-11-26#1.1"]
    rep = conversion.report(imps, [], window_s=600)
    assert {r.key: r.visits for r in rep.by_segment} == {"female/25-34": 1, "male/35-44": 1}
