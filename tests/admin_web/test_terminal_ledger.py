"""TerminalLedger over a real store.json: group commit from threads, archive moves, duplicates across
the archive, pairing/revoke, secrets at rest, and the ``smartshelf terminal`` CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from admin_web.terminals.apply import Submission
from admin_web.terminals.errors import AuthError, TerminalError
from admin_web.terminals.events import event_from_dict
from admin_web.terminals.ledger import TerminalLedger
from smartshelf.core.storage import atomic_write_json


def seed(data_dir: Path, stock: int = 100) -> None:
    atomic_write_json(data_dir / "store.json", {"products": {
        "1": {"sku": "A", "name": "A", "stock": stock}, "2": {"sku": "B", "name": "B", "stock": stock}}})


def sub(ledger_terminal: str, eid: str, sku: str = "A", qty: int = 1, kind: str = "sale") -> Submission:
    ev = event_from_dict({"id": eid, "type": kind, "lines": [{"sku": sku, "qty": qty}], "amount": 1,
                          "currency": "EUR", "time": "2026-11-26T10:00:00Z"})
    return Submission(ev, ledger_terminal, "generic")


def stock(ledger: TerminalLedger) -> dict[str, int]:
    return {p["sku"]: p["stock"] for p in ledger.products()}


@pytest.mark.parametrize("max_batch", [1, 3, 256])
def test_threads_group_commit_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_batch: int) -> None:
    monkeypatch.setattr("admin_web.terminals.ledger.MAX_BATCH", max_batch)  # small: the lead is handed on
    seed(tmp_path, stock=1000)
    ledger = TerminalLedger(tmp_path, compact_at=50, keep_recent=10)
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
    raw = json.loads((tmp_path / "store.json").read_text())
    assert len(raw["sales"]) <= 50  # the rest moved to the archive
    assert list((tmp_path / "ledger").glob("sales-*.json"))


def test_archived_event_is_still_a_duplicate_across_restarts(tmp_path: Path) -> None:
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path, compact_at=3, keep_recent=1)
    tid = ledger.pair("T").terminal_id
    for i in range(5):
        assert ledger.submit(sub(tid, f"e{i}")).status == "applied"
    raw = json.loads((tmp_path / "store.json").read_text())
    assert "e0" not in {d["event_id"] for d in raw["sales"].values()}
    fresh = TerminalLedger(tmp_path, compact_at=3, keep_recent=1)  # e.g. after a restart
    assert fresh.submit(sub(tid, "e0")).status == "duplicate"
    assert stock(fresh)["A"] == 95
    assert [s["event_id"] for s in fresh.sales()] == ["e0", "e1", "e2", "e3", "e4"]


def test_crash_between_archive_and_store_write_counts_once(tmp_path: Path) -> None:
    seed(tmp_path)
    ledger = TerminalLedger(tmp_path, compact_at=3, keep_recent=1)
    tid = ledger.pair("T").terminal_id
    for i in range(3):
        ledger.submit(sub(tid, f"e{i}"))
    # Simulate the crash window: the entries are archived but store.json still holds them.
    table = json.loads((tmp_path / "store.json").read_text())["sales"]
    ledger.archive.add(table.values())
    assert [s["event_id"] for s in ledger.sales()] == ["e0", "e1", "e2"]
    assert ledger.submit(sub(tid, "e1")).status == "duplicate"
    assert ledger.submit(sub(tid, "e3")).status == "applied"  # triggers a move; no double archive entry
    archived = [d["event_id"] for f in sorted((tmp_path / "ledger").glob("*.json"))
                for d in json.loads(f.read_text())["sales"]]
    assert sorted(archived) == sorted(set(archived))
    assert stock(ledger)["A"] == 96


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


def test_count_and_recent_reads_skip_old_chunks(tmp_path: Path) -> None:
    seed(tmp_path)
    clock = [1_800_000_000.0]
    ledger = TerminalLedger(tmp_path, clock=lambda: clock[0], compact_at=3, keep_recent=1)
    tid = ledger.pair("T").terminal_id
    for i in range(9):
        clock[0] += 3600  # one event an hour
        ledger.submit(sub(tid, f"e{i}"))
    assert ledger.count() == 9 and len(list((tmp_path / "ledger").glob("*.json"))) >= 2
    assert [s["event_id"] for s in ledger.sales()] == [f"e{i}" for i in range(9)]
    recent = [s["event_id"] for s in ledger.sales(since=clock[0] - 2.5 * 3600)]
    assert recent[-3:] == ["e6", "e7", "e8"] and "e0" not in recent
    assert ledger.archive.docs(since=clock[0] + 1) == []
