"""Pure event application: one batch of verified events against the raw tables of store.json.

The tables are TinyDB's raw form ``{"products": {"1": {...}}, "terminals": {...}}``.
:func:`apply_batch` never mutates its input: it returns new table dicts (shallow copies with the
changed documents replaced), so a failed write leaves the caller's cached copy intact. The ledger
documents of the applied events (and their stock changes) are returned for the sales ledger.

Rules (issue: terminal linkage):
- an event id the same terminal already sent (in the ledger, or earlier in the same batch) is a
  duplicate and changes nothing; the same id from another terminal is another sale;
- ids starting with ``stripe:`` are the Stripe adapter's: from any other provider they are rejected;
- an event naming an unknown sku is rejected whole (422) and changes nothing;
- a sale is a payment that already happened: it is never refused for lack of stock; stock may go
  below zero, and the skus that did are reported (the stock-discrepancy alert);
- a revoked or unknown terminal (re-checked inside the lock) is unauthorized;
- an applied event adds one ledger document and changes each line's product stock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from admin_web.terminals.events import TerminalEvent

Status = Literal["applied", "duplicate", "rejected", "unauthorized"]
Tables = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Submission:
    event: TerminalEvent
    terminal_id: str
    provider: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    status: Status
    message: str = ""
    negative_skus: tuple[str, ...] = ()
    """Products whose stock is below zero after this event (stock-discrepancy alert)."""


@dataclass(frozen=True)
class BatchOutcome:
    tables: Tables
    results: list[ApplyResult]
    changed: bool
    """True when something must be written (an event applied or a terminal's last_seen moved)."""
    applied: list[dict[str, Any]] = field(default_factory=list)
    """Ledger documents of the applied events, in order."""
    deltas: list[dict[str, int]] = field(default_factory=list)
    """Each applied event's stock change (sku -> units), parallel to ``applied``."""


RESERVED_PREFIXES = {"stripe:": "stripe"}


def reserved_for(event_id: str) -> str | None:
    """The provider an event id's prefix is reserved for (None: any provider may use it)."""
    for prefix, provider in RESERVED_PREFIXES.items():
        if event_id.startswith(prefix):
            return provider
    return None


def find_terminal(terminals: dict[str, dict[str, Any]], terminal_id: str) -> tuple[str, dict[str, Any]] | None:
    for doc_id, doc in terminals.items():
        if doc.get("terminal_id") == terminal_id:
            return doc_id, doc
    return None


def apply_batch(
    tables: Tables,
    submissions: Sequence[Submission],
    *,
    received_at: datetime,
    is_duplicate: Callable[[str, str], bool] = lambda terminal_id, event_id: False,
    last_seen_every_s: float = 60.0,
) -> BatchOutcome:
    """Apply ``submissions`` in order; see the module docstring for the rules.

    ``is_duplicate(terminal_id, event_id)``: whether the ledger already holds that terminal's event.
    """
    products = dict(tables.get("products", {}))
    terminals = dict(tables.get("terminals", {}))
    by_sku = {doc.get("sku"): doc_id for doc_id, doc in products.items()}
    seen: set[tuple[str, str]] = set()
    stamp = received_at.isoformat()
    results: list[ApplyResult] = []
    applied: list[dict[str, Any]] = []
    deltas: list[dict[str, int]] = []
    changed = False
    touched_terminals: set[str] = set()

    for sub in submissions:
        event = sub.event
        found = find_terminal(terminals, sub.terminal_id)
        if found is None or found[1].get("revoked_at"):
            results.append(ApplyResult("unauthorized", f"terminal {sub.terminal_id!r} is unknown or revoked"))
            continue
        owner = reserved_for(event.id)
        if owner is not None and owner != sub.provider:
            results.append(ApplyResult("rejected", f"event id {event.id!r}: ids starting with "
                                       f"{event.id.split(':')[0]}: are reserved for the {owner} adapter"))
            continue
        key = (sub.terminal_id, event.id)
        if key in seen or is_duplicate(*key):
            results.append(ApplyResult("duplicate"))
            touched_terminals.add(found[0])  # a refused event (below) changes nothing, not even last_seen
            continue
        delta = event.stock_delta()
        unknown = [sku for sku in delta if sku not in by_sku]
        if unknown:
            results.append(ApplyResult("rejected", f"unknown sku {unknown[0]!r} in event {event.id!r}"))
            continue
        negative = []
        for sku, change in delta.items():
            doc_id = by_sku[sku]
            doc = dict(products[doc_id])
            doc["stock"] = int(doc.get("stock") or 0) + change
            # Units sold (refunds give back): the shelf's catalogue prior puts what sells first.
            doc["sold"] = max(0, int(doc.get("sold") or 0) - change)
            doc["updated_at"] = stamp
            products[doc_id] = doc
            if doc["stock"] < 0:
                negative.append(sku)
        ledger = event.ledger_doc(terminal_id=sub.terminal_id, provider=sub.provider, received_at=received_at)
        seen.add(key)
        touched_terminals.add(found[0])
        applied.append(ledger)
        deltas.append(dict(delta))
        changed = True
        results.append(ApplyResult("applied", negative_skus=tuple(sorted(negative))))

    for doc_id in touched_terminals:
        doc = terminals[doc_id]
        last = doc.get("last_seen")
        stale = last is None or (received_at - datetime.fromisoformat(last)).total_seconds() >= last_seen_every_s
        if changed or stale:
            terminals[doc_id] = {**doc, "last_seen": stamp}
            changed = True

    new_tables: Tables = dict(tables)
    new_tables.update({"products": products, "terminals": terminals})
    return BatchOutcome(tables=new_tables, results=results, changed=changed, applied=applied, deltas=deltas)
