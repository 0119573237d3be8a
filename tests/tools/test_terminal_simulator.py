"""Simulator plan and summary (the sending itself runs against the real server in tests/adapters)."""

from __future__ import annotations

import pytest

from admin_web.terminals.events import event_from_dict
from tools.terminal_simulator import Summary, plan_events


def test_plan_has_the_asked_duplicates_after_their_originals() -> None:
    plan = plan_events(200, ["A", "B", "C"], duplicates=0.1, refunds=0.25, seed=3, prefix="p")
    assert len(plan) == 200 and sum(p.duplicate for p in plan) == 20
    first_seen: dict[str, int] = {}
    for i, p in enumerate(plan):
        event_from_dict(p.event)  # every planned event is valid on the wire
        if p.duplicate:
            assert p.event["id"] in first_seen and first_seen[p.event["id"]] < i
        else:
            first_seen[p.event["id"]] = i
    kinds = [p.event["type"] for p in plan if not p.duplicate]
    assert 0 < kinds.count("refund") < len(kinds)
    assert plan == plan_events(200, ["A", "B", "C"], duplicates=0.1, refunds=0.25, seed=3, prefix="p")


def test_plan_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        plan_events(10, [])
    with pytest.raises(ValueError):
        plan_events(10, ["A"], duplicates=1.0)


def test_summary_percentiles_and_rate() -> None:
    s = Summary(sent=100, latencies_ms=[float(v) for v in range(100, 0, -1)], elapsed_s=2.0)
    assert (s.percentile(50), s.percentile(99)) == (50.0, 99.0)
    d = s.as_dict()
    assert d["p50_ms"] == 50.0 and d["events_per_s"] == 50.0
    assert Summary().percentile(99) is None
