"""A store's anonymous interactions for the chain's head office, as CSV (the shipped side).

One row per item a shelf showed (``shown``) and per sale line attributed to a shelf's pick (``bought``):

    store,shelf,segment,item,time,outcome

``segment`` is the decision's segment label or ``generic``; ``item`` is the product's factor-file
``item_id`` (its sku when it has none); ``time`` is unix seconds. Nothing about a person: the rows come
from the anonymous decision events the shelves sent over the bus and from the till's sale lines.

CSV and not Parquet on the hub: ``pyarrow`` is a ~40 MB wheel with no Raspberry Pi OS package, too much
to ship to every hub for one export a day; the head office converts with :mod:`tools.chain.ingest`.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

INTERACTION_COLUMNS = ("store", "shelf", "segment", "item", "time", "outcome")


def _events(db_path: Path) -> list[dict[str, Any]]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [json.loads(r[0]) for r in db.execute("SELECT payload FROM events ORDER BY time")]
    finally:
        db.close()


def interaction_rows(
    store: str, events: Iterable[Mapping[str, Any]], sales: Iterable[Mapping[str, Any]],
    item_ids: Mapping[str, str], *, window_s: float = 600.0,
) -> list[tuple[str, str, str, str, float, str]]:
    """Rows of the export from bus events (each has ``shelf``) and ledger sale documents."""
    from admin_web.terminals.conversion import Impression, attribute

    events = sorted(events, key=lambda e: float(e.get("time") or 0.0))
    rows: list[tuple[str, str, str, str, float, str]] = []
    shelf_of_visit: dict[str, str] = {}
    impressions = []
    for e in events:
        segment = str(e.get("segment") or "generic")
        visit = f"{e.get('shelf')}:{e.get('visit_id')}"
        shelf_of_visit[visit] = str(e.get("shelf"))
        items = tuple(str(i) for i in e.get("items") or ())
        impressions.append(Impression(float(e.get("time") or 0.0), visit, segment, str(e.get("variant") or ""), items))
        for sku in items:
            rows.append((store, str(e.get("shelf")), segment, item_ids.get(sku) or sku, float(e.get("time") or 0.0), "shown"))
    for a in attribute(list(sales), impressions, window_s=window_s):
        if a.visit is None:
            continue
        for _ in range(max(a.qty, 0)):
            rows.append((store, shelf_of_visit[a.visit], a.segment or "generic", item_ids.get(a.sku) or a.sku, a.time,
                         "bought"))
    return rows


def export_csv(data_dir: Path, store: str, *, window_s: float = 600.0) -> str:
    """The hub's export: its bus events, its till's sales, its inventory's item ids."""
    from admin_web.repository import InventoryRepository
    from admin_web.terminals.ledger import TerminalLedger

    repo = InventoryRepository(data_dir)
    try:
        item_ids = {p["sku"]: p["item_id"] for p in repo.list_products() if p.get("item_id")}
    finally:
        repo.close()
    sales = TerminalLedger(data_dir).sales()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INTERACTION_COLUMNS)
    writer.writerows(interaction_rows(store, _events(Path(data_dir) / "bus_events.sqlite"), sales, item_ids,
                                      window_s=window_s))
    return out.getvalue()
