"""The generic event format: validation names the field; stock deltas and ledger docs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from admin_web.terminals.errors import EventError
from admin_web.terminals.events import Line, event_from_dict, parse_event


def raw(**over: object) -> dict:
    base = {"id": "e-1", "type": "sale", "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "A", "qty": 1}],
            "amount": 1234, "currency": "EUR", "time": "2026-11-26T10:00:00Z"}
    base.update(over)
    return base


def test_valid_event_parses() -> None:
    ev = parse_event(json.dumps(raw()).encode())
    assert ev.id == "e-1" and ev.type == "sale" and ev.amount == 1234 and ev.currency == "EUR"
    assert ev.lines[0] == Line("A", 2)
    assert ev.time == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert ev.stock_delta() == {"A": -3, "B": -1}
    assert event_from_dict(raw(type="refund")).stock_delta() == {"A": 3, "B": 1}


def test_ledger_doc_has_the_contract_fields() -> None:
    doc = event_from_dict(raw()).ledger_doc(terminal_id="t1", provider="generic",
                                            received_at=datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC))
    assert set(doc) == {"event_id", "terminal_id", "type", "lines", "amount", "currency", "time", "received_at", "provider"}
    assert doc["lines"][0] == {"sku": "A", "qty": 2}
    assert doc["received_at"] == "2026-11-26T10:00:05+00:00"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "id"), ({"id": "has space"}, "id"), ({"id": 5}, "id"),
        ({"type": "void"}, "type"),
        ({"lines": []}, "lines"), ({"lines": [{"sku": "A"}]}, "lines\\[0\\]"),
        ({"lines": [{"sku": "A", "qty": 0}]}, "lines\\[0\\].qty"), ({"lines": [{"sku": "A", "qty": 1.5}]}, "qty"),
        ({"lines": [{"sku": "A", "qty": True}]}, "qty"), ({"lines": [{"sku": "", "qty": 1}]}, "sku"),
        ({"amount": -1}, "amount"), ({"amount": "12"}, "amount"),
        ({"currency": "eur"}, "currency"), ({"time": "yesterday"}, "time"), ({"extra": 1}, "extra"),
    ],
)
def test_invalid_fields_are_named(change: dict, field: str) -> None:
    with pytest.raises(EventError, match=field):
        event_from_dict(raw(**change))


def test_missing_field_and_bad_json() -> None:
    body = raw()
    del body["currency"]
    with pytest.raises(EventError, match="currency"):
        event_from_dict(body)
    with pytest.raises(EventError, match="JSON"):
        parse_event(b"{not json")
    with pytest.raises(EventError, match="object"):
        parse_event(b"[1, 2]")
