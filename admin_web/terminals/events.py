"""The generic terminal event: what a sale or refund looks like once a provider adapter has read it.

Wire format (JSON body of ``POST /api/v1/terminal/events``)::

    {"id": "<unique event id>", "type": "sale" | "refund",
     "lines": [{"sku": "TSHIRT-RED-M", "qty": 1}], "amount": 79900, "currency": "EUR",
     "time": "2026-11-26T10:15:00+00:00"}

``amount`` is in minor units (cents, paise). Unknown keys are refused, so a typo (``quantity``) is
a clear 422 instead of a silently ignored line. Parsing is pure; whether the skus exist is checked
by the ledger inside the store lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from admin_web.terminals.errors import EventError
from smartshelf.core.jsonsafe import JSONDepthError, loads_bounded

EventType = Literal["sale", "refund"]
EVENT_TYPES: tuple[str, ...] = ("sale", "refund")
MAX_BODY_BYTES = 64 * 1024
MAX_LINES = 200
MAX_QTY = 10_000
MAX_JSON_DEPTH = 6
#: Plausible event times: anything outside is a broken clock or a forged body (checked before any
#: arithmetic, so no OverflowError can reach a view).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_SKU_RE = re.compile(r"\S{1,64}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_KEYS = {"id", "type", "lines", "amount", "currency", "time"}


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class TerminalEvent:
    """A validated sale or refund. ``time`` is an aware UTC datetime."""

    id: str
    type: EventType
    lines: tuple[Line, ...]
    amount: int
    currency: str
    time: datetime

    def stock_delta(self) -> dict[str, int]:
        """Per-sku stock change: a sale takes stock away, a refund puts it back."""
        sign = -1 if self.type == "sale" else 1
        delta: dict[str, int] = {}
        for line in self.lines:
            delta[line.sku] = delta.get(line.sku, 0) + sign * line.qty
        return delta

    def ledger_doc(self, *, terminal_id: str, provider: str, received_at: datetime) -> dict[str, Any]:
        """The sales-table document (CONTRACTS.md, sales doc)."""
        return {
            "event_id": self.id,
            "terminal_id": terminal_id,
            "type": self.type,
            "lines": [{"sku": line.sku, "qty": line.qty} for line in self.lines],
            "amount": self.amount,
            "currency": self.currency,
            "time": self.time.isoformat(),
            "received_at": received_at.astimezone(UTC).isoformat(),
            "provider": provider,
        }


def parse_time(value: Any, *, field: str = "time") -> datetime:
    """An ISO 8601 timestamp (``Z`` or an offset; a naive time is taken as UTC) as aware UTC."""
    if not isinstance(value, str) or not value:
        raise EventError(f"{field} must be an ISO 8601 string, not {value!r}")
    if len(value) > 40:
        raise EventError(f"{field} = {value[:40]!r}... is too long for an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise EventError(f"{field} = {value[:60]!r} is not an ISO 8601 time") from None
    if not EARLIEST <= parsed < LATEST:
        raise EventError(f"{field} = {value[:60]!r} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return parsed


def _whole(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(f"{field} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise EventError(f"{field} = {value} is out of range [{low}, {high}]")
    return value


def event_from_dict(raw: Any) -> TerminalEvent:
    """Validate a decoded JSON object into a TerminalEvent; EventError names the field."""
    if not isinstance(raw, dict):
        raise EventError("event body must be a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise EventError(f"unknown event field {unknown[0]!r}; allowed: {', '.join(sorted(_KEYS))}")
    missing = sorted(_KEYS - set(raw))
    if missing:
        raise EventError(f"event field {missing[0]!r} is missing")
    event_id = raw["id"]
    if not isinstance(event_id, str) or not _ID_RE.fullmatch(event_id):
        raise EventError(f"id = {str(event_id)[:60]!r} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    if raw["type"] not in EVENT_TYPES:
        raise EventError(f"type = {raw['type']!r} must be one of {', '.join(EVENT_TYPES)}")
    lines_raw = raw["lines"]
    if not isinstance(lines_raw, list) or not lines_raw:
        raise EventError("lines must be a non-empty list of {\"sku\", \"qty\"}")
    if len(lines_raw) > MAX_LINES:
        raise EventError(f"lines has {len(lines_raw)} entries; at most {MAX_LINES}")
    lines: list[Line] = []
    for i, line in enumerate(lines_raw):
        if not isinstance(line, dict) or set(line) != {"sku", "qty"}:
            raise EventError(f"lines[{i}] must be an object with exactly sku and qty, not {line!r}"[:200])
        sku = line["sku"]
        if not isinstance(sku, str) or not _SKU_RE.fullmatch(sku):
            raise EventError(f"lines[{i}].sku = {sku!r} must be a non-empty string without spaces"[:200])
        lines.append(Line(sku, _whole(line["qty"], f"lines[{i}].qty", low=1, high=MAX_QTY)))
    amount = _whole(raw["amount"], "amount", low=0, high=10**12)
    currency = raw["currency"]
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
        raise EventError(f"currency = {currency!r} must be an ISO 4217 code such as 'EUR'")
    return TerminalEvent(
        id=event_id,
        type=raw["type"],
        lines=tuple(lines),
        amount=amount,
        currency=currency,
        time=parse_time(raw["time"]),
    )


def parse_event(body: bytes) -> TerminalEvent:
    """Decode and validate a raw request body."""
    if len(body) > MAX_BODY_BYTES:
        raise EventError(f"event body is {len(body)} bytes; at most {MAX_BODY_BYTES}")
    try:
        raw = loads_bounded(body, max_depth=MAX_JSON_DEPTH)
    except JSONDepthError as exc:
        raise EventError(str(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventError(f"event body is not valid JSON: {exc}") from None
    return event_from_dict(raw)
