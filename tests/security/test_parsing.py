"""Strict parsing: one function per header (smartshelf.core.headers), identifiers matched whole,
bounded integers and JSON depth, formula-safe CSV everywhere the app writes one."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartshelf.core import headers as h
from smartshelf.core.csvsafe import safe_cell
from smartshelf.core.jsonsafe import JSONDepthError, loads_bounded, nesting_depth
from tests.security.helpers import FUZZ_SETTINGS


def test_bearer() -> None:
    assert h.parse_bearer("Bearer ss_abc-1") == "ss_abc-1"
    assert h.parse_bearer("bearer  ss_abc ") == "ss_abc"
    for bad in (None, "", "Basic abc", "Bearer", "Bearer a b", "Bearer \x00", "Bearer " + "a" * 300, "x" * 2000):
        with pytest.raises(h.HeaderError, match="Authorization"):
            h.parse_bearer(bad)


def test_media_type_and_require_json() -> None:
    assert h.parse_media_type("Application/JSON; charset=utf-8") == "application/json"
    assert h.parse_media_type(None) is None
    h.require_json("application/json")
    for bad in (None, "text/plain", "application/json\x00", "application/jsonx", "json", "application/json,text/plain"):
        with pytest.raises(h.HeaderError, match="Content-Type"):
            h.require_json(bad)


def test_host_allow_list() -> None:
    allowed = frozenset({"127.0.0.1", "localhost", "[::1]"})
    h.check_host("127.0.0.1:8081", allowed_hosts=allowed, port=8081)
    h.check_host("LOCALHOST:8081", allowed_hosts=allowed, port=8081)
    h.check_host("[::1]:8081", allowed_hosts=allowed, port=8081)
    h.check_host("localhost", allowed_hosts=allowed, port=80)
    for bad in ("evil.example:8081", "127.0.0.1:8082", "127.0.0.1", "127.0.0.1:8081\n", "127.0.0.1:99999",
                "127.0.0.1.evil:8081", "", None, "user@127.0.0.1:8081"):
        with pytest.raises(h.HeaderError, match="Host"):
            h.check_host(bad, allowed_hosts=allowed, port=8081)


def test_content_length_identifier_and_secret() -> None:
    assert h.parse_content_length(None, limit=10) == 0
    assert h.parse_content_length("10", limit=10) == 10
    for bad in ("11", "-1", "1e3", "\u0661", "9" * 30):
        with pytest.raises(h.HeaderError, match="Content-Length"):
            h.parse_content_length(bad, limit=10)
    assert h.parse_identifier("X-Terminal-Id", "term_1a") == "term_1a"
    for bad in ("", "term 1", "term_1\n", "-x", "x" * 129):
        with pytest.raises(h.HeaderError, match="X-Terminal-Id"):
            h.parse_identifier("X-Terminal-Id", bad)
    h.check_secret("X-S", "abc", "abc")
    for bad in (None, "", "abd", "ab\u00e9"):
        with pytest.raises(h.HeaderError, match="X-S"):
            h.check_secret("X-S", bad, "abc")


@FUZZ_SETTINGS
@given(st.one_of(st.none(), st.text(max_size=80)))
def test_every_header_parser_returns_or_raises_header_error(value: str | None) -> None:
    for parse in (h.parse_bearer, h.parse_media_type, h.require_json, h.parse_host,
                  lambda v: h.parse_content_length(v, limit=1000), lambda v: h.parse_identifier("X-Id", v),
                  lambda v: h.check_secret("X-S", v, "s" * 64)):
        try:
            parse(value)
        except h.HeaderError as exc:
            assert "\n" not in str(exc)


def test_signature_headers_are_parsed_whole() -> None:
    from admin_web.terminals import signing
    from admin_web.terminals.errors import AuthError

    assert signing.parse_header("t=12,v1=" + "a" * 64) == (12, ["a" * 64])
    for bad in ("t=\u00b9\u00b2,v1=" + "a" * 64, "t=12,v1=" + "A" * 64, "t=12 ,v1=zz", "t=12,v1=" + "a" * 64 + "\n"):
        with pytest.raises(AuthError):
            signing.parse_header(bad)
    assert signing.parse_stripe_header("t=12,v1=abc,v0=def") == 12
    for bad in (None, "t=x,v1=abc", "v1=abc", "t=1,v1=a-b", "t=1;v1=a"):
        with pytest.raises(AuthError):
            signing.parse_stripe_header(bad)


def test_json_depth_is_bounded_before_parsing() -> None:
    assert nesting_depth(b'{"a": "[[[[", "b": [1, {"c": []}]}') == 4
    assert nesting_depth('"\\"[[["') == 0
    assert loads_bounded(b"[[1]]", max_depth=2) == [[1]]
    with pytest.raises(JSONDepthError, match="nests 3 levels"):
        loads_bounded(b"[[[1]]]", max_depth=2)
    with pytest.raises(ValueError, match="NaN"):
        loads_bounded(b'{"a": NaN}')
    with pytest.raises(JSONDepthError):
        loads_bounded(b"[" * 100_000)


@pytest.mark.parametrize("module", ["admin_web.products", "admin_web.terminals.events", "admin_web.images",
                                    "admin_web.terminals.ledger", "device.display.kiosk",
                                    "smartshelf.installer.firstboot"])
def test_no_identifier_pattern_relies_on_match_and_dollar(module: str) -> None:
    """``$`` matches before a final newline: every identifier pattern is used with fullmatch."""
    import importlib
    import inspect
    import re

    source = inspect.getsource(importlib.import_module(module))
    assert not re.search(r're\.compile\(r"\^', source), module
    assert not re.search(r"_RE\.match\(|_NAME\.match\(", source), module


def test_identifiers_with_a_trailing_newline_are_refused() -> None:
    from admin_web.errors import ValidationError
    from admin_web.products import validate_slot
    from admin_web.terminals.errors import EventError
    from admin_web.terminals.events import event_from_dict

    with pytest.raises(EventError, match="id"):
        event_from_dict({"id": "e1\n", "type": "sale", "lines": [{"sku": "A", "qty": 1}], "amount": 1,
                         "currency": "EUR", "time": "2026-11-26T10:00:00Z"})
    with pytest.raises(EventError, match="currency"):
        event_from_dict({"id": "e1", "type": "sale", "lines": [{"sku": "A", "qty": 1}], "amount": 1,
                         "currency": "EUR\n", "time": "2026-11-26T10:00:00Z"})
    with pytest.raises(ValidationError):
        validate_slot({"slot": "A1\nB"})


@pytest.mark.parametrize(("field", "value"), [("price", 10**10 + 1), ("stock", 1_000_001), ("stock", -1_000_001),
                                              ("low_stock", 10**7), ("price", "9" * 20)])
def test_product_integers_are_bounded(field: str, value: Any) -> None:
    from admin_web.errors import ValidationError
    from admin_web.products import validate_product

    doc = {"sku": "A", "name": "A", "price": 1, "stock": 1, field: value}
    with pytest.raises(ValidationError) as caught:
        validate_product(doc)
    assert caught.value.field == field


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_cells_are_defused(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell
    assert safe_cell(7) == 7 and safe_cell("plain") == "plain"


def test_the_trainer_export_defuses_formulas_too() -> None:
    from datetime import UTC, datetime

    from admin_web.terminals.conversion import Attribution, interactions_csv

    attribution = Attribution(event_id="e1", sku="A", qty=1, time=datetime(2026, 11, 26, tzinfo=UTC).timestamp(),
                              visit=None, segment=None, variant=None)
    interactions, _ = interactions_csv([attribution], {"A": "=HYPERLINK(\"http://x\")"})
    rows = list(csv.reader(io.StringIO(interactions)))
    assert rows[1][1].startswith("'=")


def test_device_events_are_checked_against_their_schema_on_load(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging
    import sqlite3
    from datetime import date

    from admin_web.insight import EventReader
    from tests.helpers import write_device_events

    t = 1764150000.0  # 2025-11-26
    good = {"time": t, "segment": "female/25-34", "items": ["A"], "visit_id": 1, "reason": "ok"}
    write_device_events(tmp_path, [good])
    bad = [{**good, "time": "yesterday"}, {**good, "items": [1, 2]}, {**good, "visit_id": True}, "not an object"]
    with sqlite3.connect(tmp_path / "events.sqlite3") as conn:  # hand-made rows the device would never write
        conn.executemany("INSERT INTO events (time, doc) VALUES (?, ?)", [(t + 1, json.dumps(b)) for b in bad])
        conn.execute("INSERT INTO events (time, doc) VALUES (?, ?)", (t + 2, "{not json"))
    with caplog.at_level(logging.WARNING):
        loaded = EventReader(tmp_path).events(date(2025, 11, 26))
    assert [e["visit_id"] for e in loaded] == [1] and loaded[0]["segment"] == "female/25-34"
    lines = [r.getMessage() for r in caplog.records if "event schema" in r.getMessage()]
    assert len(lines) == 1 and "5 events" in lines[0] and "events.sqlite3" in lines[0], lines
