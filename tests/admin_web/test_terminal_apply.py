"""Pure event application: duplicates (per terminal), whole-or-nothing, negative stock, refunds,
revoked terminals, reserved id prefixes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from admin_web.terminals.apply import Submission, apply_batch
from admin_web.terminals.events import event_from_dict

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def tables() -> dict:
    return {
        "products": {"1": {"sku": "A", "stock": 5}, "2": {"sku": "B", "stock": 1}},
        "terminals": {"1": {"terminal_id": "t1", "last_seen": None, "revoked_at": None},
                      "2": {"terminal_id": "t2", "last_seen": None, "revoked_at": "2026-11-01T00:00:00+00:00"}},
    }


def sub(eid: str, lines: list, kind: str = "sale", terminal: str = "t1") -> Submission:
    ev = event_from_dict({"id": eid, "type": kind, "lines": [{"sku": s, "qty": q} for s, q in lines],
                          "amount": 100, "currency": "EUR", "time": "2026-11-26T11:59:00Z"})
    return Submission(ev, terminal, "generic")


def stock(t: dict) -> dict:
    return {d["sku"]: d["stock"] for d in t["products"].values()}


def in_ledger(*outcomes) -> set[tuple[str, str]]:
    """What the sales ledger would hold after these outcomes (its per-terminal duplicate check)."""
    return {(d["terminal_id"], d["event_id"]) for out in outcomes for d in out.applied}


def test_apply_sale_and_duplicate_in_the_same_batch() -> None:
    original = tables()
    before = copy.deepcopy(original)
    out = apply_batch(original, [sub("e1", [("A", 2)]), sub("e1", [("A", 2)])], received_at=NOW)
    assert [r.status for r in out.results] == ["applied", "duplicate"]
    assert stock(out.tables) == {"A": 3, "B": 1}
    assert [d["event_id"] for d in out.applied] == ["e1"] and out.deltas == [{"A": -2}]
    assert original == before  # input never mutated
    seen = in_ledger(out)
    again = apply_batch(out.tables, [sub("e1", [("A", 2)])], received_at=NOW, is_duplicate=lambda *k: k in seen)
    assert again.results[0].status == "duplicate" and stock(again.tables) == {"A": 3, "B": 1}


def test_unknown_sku_rejects_the_whole_event() -> None:
    out = apply_batch(tables(), [sub("e1", [("A", 1), ("NOPE", 1)]), sub("e2", [("B", 1)])], received_at=NOW)
    assert [r.status for r in out.results] == ["rejected", "applied"]
    assert "NOPE" in out.results[0].message
    assert stock(out.tables) == {"A": 5, "B": 0}
    assert [d["event_id"] for d in out.applied] == ["e2"]


def test_sale_beyond_stock_is_recorded_and_flagged() -> None:
    out = apply_batch(tables(), [sub("e1", [("B", 3)])], received_at=NOW)
    assert out.results[0].status == "applied" and out.results[0].negative_skus == ("B",)
    assert stock(out.tables)["B"] == -2


def test_refund_restores_stock() -> None:
    out = apply_batch(tables(), [sub("e1", [("A", 4)]), sub("r1", [("A", 3)], kind="refund")], received_at=NOW)
    assert [r.status for r in out.results] == ["applied", "applied"]
    assert stock(out.tables)["A"] == 4
    assert [d["type"] for d in out.applied] == ["sale", "refund"]
    assert out.deltas == [{"A": -4}, {"A": 3}]


def test_units_sold_are_counted_on_the_product_for_the_shelfs_prior() -> None:
    out = apply_batch(tables(), [sub("e1", [("A", 4)]), sub("r1", [("A", 3)], kind="refund"),
                                 sub("e2", [("B", 1)])], received_at=NOW)
    assert {d["sku"]: d["sold"] for d in out.tables["products"].values()} == {"A": 1, "B": 1}


def test_revoked_or_unknown_terminal_changes_nothing() -> None:
    out = apply_batch(tables(), [sub("e1", [("A", 1)], terminal="t2"), sub("e2", [("A", 1)], terminal="zz")],
                      received_at=NOW)
    assert [r.status for r in out.results] == ["unauthorized", "unauthorized"]
    assert not out.changed and stock(out.tables) == {"A": 5, "B": 1}


def test_last_seen_written_with_applied_events_and_rate_limited_for_duplicates() -> None:
    out = apply_batch(tables(), [sub("e1", [("A", 1)])], received_at=NOW)
    assert out.tables["terminals"]["1"]["last_seen"] == NOW.isoformat()
    seen = in_ledger(out)
    dup = apply_batch(out.tables, [sub("e1", [("A", 1)])], received_at=NOW + timedelta(seconds=5),
                      is_duplicate=lambda *k: k in seen)
    assert not dup.changed
    later = apply_batch(out.tables, [sub("e1", [("A", 1)])], received_at=NOW + timedelta(seconds=120),
                        is_duplicate=lambda *k: k in seen)
    assert later.changed and later.tables["terminals"]["1"]["last_seen"] == (NOW + timedelta(seconds=120)).isoformat()


def test_the_same_id_from_two_terminals_is_two_sales() -> None:
    t = tables()
    t["terminals"]["3"] = {"terminal_id": "t3", "last_seen": None, "revoked_at": None}
    out = apply_batch(t, [sub("000123-X", [("A", 1)]), sub("000123-X", [("A", 1)], terminal="t3")], received_at=NOW)
    assert [r.status for r in out.results] == ["applied", "applied"] and stock(out.tables)["A"] == 3


def test_stripe_prefix_is_reserved_for_the_stripe_provider() -> None:
    generic = apply_batch(tables(), [sub("stripe:pi_1", [("A", 1)])], received_at=NOW)
    assert generic.results[0].status == "rejected" and stock(generic.tables)["A"] == 5
    stripe = Submission(sub("stripe:pi_1", [("A", 1)]).event, "t1", "stripe")
    assert apply_batch(tables(), [stripe], received_at=NOW).results[0].status == "applied"
