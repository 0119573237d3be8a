"""TerminalLedger over a real store.json and ledger.sqlite3: group commit from threads, duplicates per
terminal across restarts, the reserved ``stripe:`` prefix, the stock replay after a lost store.json
write, store.json following the ledger lazily, migration of the old ledger, pairing/revoke, secrets at rest, and the ``smartshelf terminal`` CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from admin_web.terminals.apply import Submission
from admin_web.terminals.errors import AuthError, TerminalError
from admin_web.terminals.events import event_from_dict
from admin_web.terminals.ledger import TerminalLedger
from smartshelf.core.storage import atomic_write_json, open_db


def seed(data_dir: Path, stock: int = 100) -> None:
    atomic_write_json(data_dir / "store.json", {"products": {
        "1": {"sku": "A", "name": "A", "stock": stock}, "2": {"sku": "B", "name": "B", "stock": stock}}})


def sub(ledger_terminal: str, eid: str, sku: str = "A", qty: int = 1, kind: str = "sale") -> Submission:
    ev = event_from_dict({"id": eid, "type": kind, "lines": [{"sku": sku, "qty": qty}], "amount": 1,
                          "currency": "EUR", "time": "2026-11-26T10:00:00Z"})
    return Submission(ev, ledger_terminal, "generic")


def stock(ledger: TerminalLedger) -> dict[str, int]:
    return {p["sku"]: p["stock"] for p in ledger.products()}


@pytest.mark.slow
@pytest.mark.parametrize("max_batch", [1, 3, 256])
def test_threads_group_commit_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_batch: int) -> None:
    monkeypatch.setattr("admin_web.terminals.ledger.MAX_BATCH", max_batch)  # small: the lead is handed on
    seed(tmp_path, stock=1000)
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("T").terminal_id
    results: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(k, 400, 8):
            eid = f"e{i % 300}"  # ids 0-99 are sent twice
            r = ledger.submit(sub(tid, eid, "A" if i % 2 else "B"))
            with lock:
                results.append(r.status)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("applied") == 300 and results.count("duplicate") == 100
    sales = ledger.sales()
    assert len(sales) == 300 and len({s["event_id"] for s in sales}) == 300
    assert sum(1000 - v for v in stock(ledger).values()) == 300
    assert json.loads((tmp_path / "store.json").read_text())["meta"]["1"]["ledger_seq"] < 300, \
        "no product went out of stock: store.json follows the ledger lazily"
    ledger.close()  # the admin's shutdown writes it
    raw = json.loads((tmp_path / "store.json").read_text())
    assert "sales" not in raw and raw["meta"]["1"]["ledger_seq"] == 300
    assert ledger.count() == 300


def test_duplicates_are_per_terminal_and_survive_a_restart(tmp_path: Path) -> None:
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path)
    t1, t2 = ledger.pair("Till 1").terminal_id, ledger.pair("Till 2").terminal_id
    assert ledger.submit(sub(t1, "000123-X")).status == "applied"
    assert ledger.submit(sub(t2, "000123-X")).status == "applied", "another till's receipt number is another sale"
    assert ledger.submit(sub(t1, "000123-X")).status == "duplicate"
    fresh = TerminalLedger(tmp_path)  # e.g. after a restart
    assert fresh.submit(sub(t2, "000123-X")).status == "duplicate"
    assert stock(fresh)["A"] == 98 and fresh.count() == 2


def test_stripe_ids_are_reserved_for_the_stripe_adapter(tmp_path: Path) -> None:
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("Till").terminal_id
    result = ledger.submit(sub(tid, "stripe:pi_123"))
    assert result.status == "rejected" and "reserved for the stripe adapter" in result.message
    assert stock(ledger)["A"] == 100 and ledger.count() == 0


def test_a_lost_store_write_is_replayed_from_the_ledger(tmp_path: Path) -> None:
    """store.json is written without fsync after a sale; a power cut that brings back the older file
    must not lose the sale's stock change (the ledger, fsynced first, holds it) nor count it twice."""
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("T").terminal_id
    assert ledger.submit(sub(tid, "e1", qty=2)).status == "applied"
    older = (tmp_path / "store.json").read_bytes()
    assert ledger.submit(sub(tid, "e2", qty=3)).status == "applied"
    assert ledger.submit(sub(tid, "e3", sku="B", qty=1)).status == "applied"
    ledger.sales_db.close()
    (tmp_path / "store.json").write_bytes(older)  # the last two store.json writes never reached the disk
    fresh = TerminalLedger(tmp_path)
    assert stock(fresh) == {"A": 95, "B": 99}
    assert fresh.submit(sub(tid, "e2", qty=3)).status == "duplicate"
    again = TerminalLedger(tmp_path)
    assert stock(again) == {"A": 95, "B": 99}, "replayed once"


def disk_stock(data_dir: Path) -> dict[str, int]:
    raw = json.loads((data_dir / "store.json").read_text())
    return {d["sku"]: d["stock"] for d in raw["products"].values()}


def test_store_json_follows_the_ledger_lazily_but_at_once_when_a_product_sells_out(tmp_path: Path) -> None:
    """A sale's stock change reaches store.json at once only when the shelf must know (a product
    out of stock or back in, a till's first event); else with the next write, a flush or close."""
    seed(tmp_path, stock=3)
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("T").terminal_id
    assert ledger.submit(sub(tid, "e1")).status == "applied"
    assert disk_stock(tmp_path) == {"A": 2, "B": 3}, "the till's first event is written at once"
    assert ledger.submit(sub(tid, "e2")).status == "applied"
    assert stock(ledger) == {"A": 1, "B": 3}, "the admin reads the newest stock"
    assert disk_stock(tmp_path) == {"A": 2, "B": 3}, "kept in memory: nothing the shelf reads changed"
    assert ledger.repo.deferred_since() is not None
    assert ledger.submit(sub(tid, "e3")).status == "applied"
    assert disk_stock(tmp_path) == {"A": 0, "B": 3}, "sold out: the shelf must stop suggesting it now"
    assert ledger.submit(sub(tid, "r1", kind="refund")).status == "applied"
    assert disk_stock(tmp_path) == {"A": 1, "B": 3}, "back in stock: written at once"
    assert ledger.submit(sub(tid, "e4", sku="B")).status == "applied"
    assert disk_stock(tmp_path)["B"] == 3
    ledger.repo.set_stock("A", 7)  # a staff edit writes the whole store, the kept stock included
    assert disk_stock(tmp_path) == {"A": 7, "B": 2}
    assert ledger.submit(sub(tid, "e5", sku="B")).status == "applied"
    ledger.close()
    assert disk_stock(tmp_path) == {"A": 7, "B": 1}
    assert json.loads((tmp_path / "store.json").read_text())["meta"]["1"]["ledger_seq"] == 6


def test_the_kept_stock_survives_another_writer_and_a_power_cut(tmp_path: Path) -> None:
    """Another process writing store.json (a CLI command) while stock is only in the admin's memory,
    then the admin killed: every reader still sees the exact stock, each sale counted once."""
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("T").terminal_id
    for i in range(4):
        assert ledger.submit(sub(tid, f"e{i}", qty=2)).status == "applied"
    assert disk_stock(tmp_path)["A"] == 98, "only the till's first event reached the file"
    cli = TerminalLedger(tmp_path)  # e.g. `smartshelf terminal pair` in another process
    cli.pair("Till 2")
    assert stock(cli) == {"A": 92, "B": 100}
    assert stock(ledger) == {"A": 92, "B": 100}, "re-read after the other write: reconciled, not counted twice"
    assert ledger.submit(sub(tid, "e9", sku="B")).status == "applied"
    assert stock(ledger) == {"A": 92, "B": 99}
    assert [t.name for t in ledger.terminals()] == ["T", "Till 2"], "the other writer's change is kept"
    ledger.sales_db.close()  # the admin dies here (power cut): its kept stock never reached the file
    assert disk_stock(tmp_path) == {"A": 92, "B": 100}
    fresh = TerminalLedger(tmp_path)
    assert disk_stock(tmp_path) == {"A": 92, "B": 99}, "the restart writes the ledger's stock at once"
    assert stock(fresh) == {"A": 92, "B": 99}
    seen = {t.name: t.last_seen for t in fresh.terminals()}
    assert seen["T"] is not None and seen["Till 2"] is None


def test_the_kept_stock_is_written_within_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("admin_web.terminals.ledger.STOCK_WRITE_INTERVAL_S", 0.2)
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("T").terminal_id
    assert ledger.submit(sub(tid, "e1")).status == "applied"
    assert ledger.submit(sub(tid, "e2")).status == "applied"
    assert disk_stock(tmp_path)["A"] == 99
    timer = ledger._timer
    assert timer is not None
    timer.join(10)
    assert disk_stock(tmp_path)["A"] == 98 and ledger.repo.deferred_since() is None


def test_old_ledger_in_store_json_and_archive_chunks_is_migrated(tmp_path: Path) -> None:
    """The old release's files: store.json with a ``sales`` table (TinyDB, through open_db) whose
    stock already counts every sale, and archive chunks ``ledger/sales-NNNNNN.json``."""
    from datetime import UTC, datetime

    received = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    docs = [sub("term_old", f"e{i}").event.ledger_doc(terminal_id="term_old", provider="generic",
                                                      received_at=received) for i in range(5)]
    atomic_write_json(tmp_path / "ledger" / "sales-000001.json", {"format": 1, "sales": docs[:3]})
    db = open_db(tmp_path / "store.json")
    db.table("products").insert({"sku": "A", "name": "A", "stock": 95})
    db.table("products").insert({"sku": "B", "name": "B", "stock": 100})
    for doc in docs[2:]:  # e2 in both places: the old crash window between chunk and trim
        db.table("sales").insert(doc)
    db.table("terminals").insert({"terminal_id": "term_old", "name": "Old", "provider": "generic",
                                  "secret": "x", "created_at": "", "last_seen": None, "revoked_at": None})
    db.close()
    ledger = TerminalLedger(tmp_path)
    assert [d["event_id"] for d in ledger.sales()] == ["e0", "e1", "e2", "e3", "e4"]
    assert ledger.sales() == docs, "the documents are kept exactly"
    raw = json.loads((tmp_path / "store.json").read_text())
    assert "sales" not in raw and raw["meta"]["1"]["ledger_seq"] == 5
    assert not (tmp_path / "ledger").exists()
    assert stock(ledger)["A"] == 95, "stock already counted those sales: nothing replayed"
    assert ledger.submit(sub("term_old", "e4")).status == "duplicate"
    assert stock(TerminalLedger(tmp_path))["A"] == 95


def test_a_migration_interrupted_before_store_json_was_rewritten_loses_nothing(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    received = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    docs = [sub("t", f"e{i}").event.ledger_doc(terminal_id="t", provider="generic", received_at=received)
            for i in range(3)]
    atomic_write_json(tmp_path / "store.json", {"products": {"1": {"sku": "A", "stock": 97}},
                                                "sales": {str(i + 1): d for i, d in enumerate(docs)}})
    from admin_web.terminals.sales import SalesDatabase

    SalesDatabase(tmp_path).import_legacy(docs[:2])  # the import committed, then the power failed
    ledger = TerminalLedger(tmp_path)
    assert [d["event_id"] for d in ledger.sales()] == ["e0", "e1", "e2"]
    assert stock(ledger)["A"] == 97


def test_pair_revoke_and_credentials(tmp_path: Path) -> None:
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path)
    p = ledger.pair("Till 1")
    assert ledger.credentials(p.terminal_id) == ("generic", p.secret)
    assert p.secret not in (tmp_path / "store.json").read_text()
    with pytest.raises(TerminalError):
        ledger.pair("Till 2", secret="chosen")
    with pytest.raises(TerminalError):
        ledger.pair("")
    ledger.revoke(p.terminal_id)
    with pytest.raises(AuthError, match="revoked"):
        ledger.credentials(p.terminal_id)
    with pytest.raises(AuthError, match="unknown"):
        ledger.credentials("term_nope")
    assert ledger.submit(sub(p.terminal_id, "e1")).status == "unauthorized"
    with pytest.raises(TerminalError):
        ledger.revoke("term_nope")


def test_lost_key_file_refuses_instead_of_guessing(tmp_path: Path) -> None:
    seed(tmp_path)
    p = TerminalLedger(tmp_path).pair("Till 1")
    (tmp_path / "terminal.key").unlink()
    with pytest.raises(AuthError, match="cannot be verified"):
        TerminalLedger(tmp_path).credentials(p.terminal_id)


def test_cli_pair_list_revoke_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smartshelf.cli import main

    seed(tmp_path)
    assert main(["terminal", "pair", "--data-dir", str(tmp_path), "--name", "Till 9", "--json"]) == 0
    creds = json.loads(capsys.readouterr().out)
    assert set(creds) == {"terminal_id", "secret"}
    ledger = TerminalLedger(tmp_path)
    assert ledger.credentials(creds["terminal_id"]) == ("generic", creds["secret"])
    assert ledger.submit(sub(creds["terminal_id"], "e1", qty=2)).status == "applied"
    assert main(["terminal", "list", "--data-dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "Till 9" and listed[0]["last_seen"] and "secret" not in listed[0]
    assert main(["terminal", "export", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "interactions.csv (1 rows)" in capsys.readouterr().out
    assert (tmp_path / "out" / "interactions.csv").read_text().splitlines()[1].startswith("unknown,A,2,")
    items = (tmp_path / "out" / "items.csv").read_text().splitlines()
    assert items[0] == "item,sku,name,gender,category,price,currency,sold"
    assert [row.split(",")[0] for row in items[1:]] == ["A", "B"], "every product, sold or not"
    assert items[1].endswith(",2") and items[2].endswith(",0")
    assert (tmp_path / "out" / "users.csv").read_text().strip() == "user,segment"
    assert main(["terminal", "conversions", "--data-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sales_lines"] == 1
    assert main(["terminal", "revoke", "--data-dir", str(tmp_path), creds["terminal_id"]]) == 0
    assert main(["terminal", "pair", "--data-dir", str(tmp_path), "--name", "R", "--provider", "stripe"]) == 1


def test_an_unforeseen_failure_refuses_only_its_own_event(tmp_path: Path) -> None:
    from admin_web.terminals.ledger import _Pending
    from smartshelf.core.errors import StorageError

    atomic_write_json(tmp_path / "store.json", {"products": {
        "1": {"sku": "A", "name": "A", "stock": 10}, "2": {"sku": "BAD", "name": "broken doc", "stock": "ten"}}})
    ledger = TerminalLedger(tmp_path)
    tid = ledger.pair("T").terminal_id
    batch = [_Pending(sub(tid, "e1")), _Pending(sub(tid, "e2", sku="BAD")), _Pending(sub(tid, "e3"))]
    ledger._commit(batch)  # one group commit holding a poison event
    assert [p.result.status if p.result else None for p in batch] == ["applied", None, "applied"]
    assert isinstance(batch[1].error, StorageError)
    assert stock(ledger)["A"] == 8 and [s["event_id"] for s in ledger.sales()] == ["e1", "e3"]


def test_count_and_recent_reads(tmp_path: Path) -> None:
    seed(tmp_path)
    clock = [1_800_000_000.0]
    ledger = TerminalLedger(tmp_path, clock=lambda: clock[0])
    tid = ledger.pair("T").terminal_id
    for i in range(9):
        clock[0] += 3600  # one event an hour
        ledger.submit(sub(tid, f"e{i}"))
    assert ledger.count() == 9
    assert [s["event_id"] for s in ledger.sales()] == [f"e{i}" for i in range(9)]
    recent = [s["event_id"] for s in ledger.sales(since=clock[0] - 2.5 * 3600)]
    assert recent == ["e6", "e7", "e8"]
    assert ledger.sales(since=clock[0] + 1) == []
