"""The terminal API against the REAL admin server process (``smartshelf admin``: waitress on a free
loopback port, data dir in tmp_path; the terminal paired with ``smartshelf terminal pair --json``).

- 1,000 signed events (10 % duplicates, 20 % refunds) from 16 concurrent clients end with every
  product's stock exactly start - unique sales + unique refunds, and one ledger entry per event.
- The server is SIGKILLed in the middle of such a run and restarted; the client retries every event
  that got no 200; the end state is still exact and no event is applied twice.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import tools.terminal_simulator as simulator
from admin_web.terminals.ledger import TerminalLedger
from smartshelf.core.storage import atomic_write_json
from tools.servers import free_port, stop_server, wait_for_port

pytestmark = pytest.mark.integration

SKUS = [f"SKU-{i}" for i in range(8)]
START_STOCK = 500



class Server:
    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir, self.port, self.log = data_dir, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smartshelf.cli", "admin", "--data-dir", str(self.data_dir),
                 "--host", "127.0.0.1", "--port", str(self.port), "--threads", "16"],
                stdout=log, stderr=log,
            )
        wait_for_port("127.0.0.1", self.port, self.proc, self.log, timeout=20)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)


def seed_store(data_dir: Path) -> None:
    products = {
        str(i + 1): {"sku": sku, "name": sku, "brand": None, "gender": None, "category": None, "price": 100,
                     "currency": "EUR", "stock": START_STOCK, "slot": None, "item_id": None, "low_stock": 2,
                     "image": None, "updated_at": "2026-11-26T00:00:00+00:00"}
        for i, sku in enumerate(SKUS)
    }
    atomic_write_json(data_dir / "store.json", {"products": products})


def pair(data_dir: Path) -> tuple[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "smartshelf.cli", "terminal", "pair", "--data-dir", str(data_dir), "--name", "Till 1", "--json"],
        check=True, capture_output=True, text=True,
    )
    creds = json.loads(out.stdout)
    return creds["terminal_id"], creds["secret"]


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    seed_store(data_dir)
    terminal_id, secret = pair(data_dir)
    srv = Server(data_dir, free_port(), tmp_path / "server.log")
    srv.start()
    try:
        yield srv, terminal_id, secret
    finally:
        srv.stop()


def expected_stock(plan: list[simulator.PlannedEvent]) -> dict[str, int]:
    stock = dict.fromkeys(SKUS, START_STOCK)
    seen: set[str] = set()
    for planned in plan:
        ev = planned.event
        if ev["id"] in seen:
            continue
        seen.add(ev["id"])
        sign = -1 if ev["type"] == "sale" else 1
        for line in ev["lines"]:
            stock[line["sku"]] += sign * line["qty"]
    return stock


def store_state(data_dir: Path) -> tuple[dict[str, int], list[str]]:
    """Stock (store.json with the ledger's stock changes it does not count yet, as every reader
    through the TerminalLedger sees it) and every ledger entry's event id (ledger.sqlite3), each id once."""
    raw = json.loads((data_dir / "store.json").read_text())
    assert "sales" not in raw, "the ledger lives in its own file"
    stock = {d["sku"]: d["stock"] for d in TerminalLedger(data_dir).products()}
    with sqlite3.connect(data_dir / "ledger.sqlite3") as conn:
        ids = [eid for (eid,) in conn.execute("SELECT event_id FROM sales ORDER BY seq")]
    assert len(ids) == len(set(ids))
    return stock, ids


def test_concurrent_events_end_exact(server: tuple[Server, str, str]) -> None:
    srv, terminal_id, secret = server
    plan = simulator.plan_events(1000, SKUS, duplicates=0.10, refunds=0.2, seed=7)
    unique = {p.event["id"] for p in plan}
    assert len(unique) == 900
    summary = simulator.run(srv.url, terminal_id, secret, plan, concurrency=16)
    assert summary.errors == 0, summary.text()
    assert summary.applied == 900 and summary.duplicate == 100, summary.text()
    stock, ids = store_state(srv.data_dir)
    assert stock == expected_stock(plan)
    assert sorted(ids) == sorted(unique)  # one ledger entry per event, none twice
    srv.stop()  # systemctl stop (SIGTERM): the admin writes the stock it kept in memory to store.json
    assert srv.proc is not None and srv.proc.returncode == 0
    raw = json.loads((srv.data_dir / "store.json").read_text())
    assert {d["sku"]: d["stock"] for d in raw["products"].values()} == expected_stock(plan)
    assert raw["meta"]["1"]["ledger_seq"] == len(unique)


@pytest.mark.slow
def test_sigkill_mid_run_then_retry_is_exact(server: tuple[Server, str, str]) -> None:
    srv, terminal_id, secret = server
    plan = simulator.plan_events(1000, SKUS, duplicates=0.10, refunds=0.2, seed=11)
    unique = {p.event["id"] for p in plan}
    result: dict[str, simulator.Summary] = {}

    def client() -> None:
        result["summary"] = simulator.run(
            srv.url, terminal_id, secret, plan, concurrency=16, retries=600, retry_wait_s=0.05, timeout_s=10
        )

    thread = threading.Thread(target=client)
    thread.start()
    # Kill once a good part of the run is applied (the store file is replaced atomically: safe to read).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, ids = store_state(srv.data_dir)
        if len(ids) >= 250:
            break
        time.sleep(0.01)
    killed_at = len(store_state(srv.data_dir)[1])
    srv.kill()  # returns once the process is gone: the client's next sends are refused and retried
    assert thread.is_alive(), "the run finished before the server was killed"
    srv.start()
    thread.join(120)
    assert not thread.is_alive()
    summary = result["summary"]
    assert summary.retries > 0 and killed_at < 900
    outcomes = Counter(summary.outcomes.values())
    assert set(outcomes) <= {"applied", "duplicate"}, outcomes
    stock, ids = store_state(srv.data_dir)
    assert len(ids) == len(set(ids)) == 900  # no event applied twice, none lost
    assert set(ids) == unique
    assert stock == expected_stock(plan)


def test_simulate_command_prints_a_summary(server: tuple[Server, str, str]) -> None:
    srv, terminal_id, secret = server
    out = subprocess.run(
        [sys.executable, "-m", "smartshelf.cli", "terminal", "simulate", "--url", srv.url, "--terminal-id", terminal_id,
         "--skus", "SKU-1,SKU-2", "--count", "50", "--duplicates", "0.1", "--rate", "500/s", "--concurrency", "4",
         "--json"],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SMARTSHELF_TERMINAL_SECRET": secret},
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["sent"], summary["applied"], summary["duplicate"], summary["errors"]) == (50, 45, 5, 0)
    assert summary["p50_ms"] > 0 and summary["p99_ms"] >= summary["p50_ms"] and summary["events_per_s"] > 0
    stock, ids = store_state(srv.data_dir)
    assert len(ids) == 45 and sum(START_STOCK - v for v in stock.values()) > 0


def test_simulate_command_says_why_the_server_refused(server: tuple[Server, str, str]) -> None:
    srv, terminal_id, secret = server
    out = subprocess.run(
        [sys.executable, "-m", "smartshelf.cli", "terminal", "simulate", "--url", srv.url, "--terminal-id", terminal_id,
         "--skus", "NO-SUCH-SKU", "--count", "2", "--currency", "EUR"],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SMARTSHELF_TERMINAL_SECRET": secret},
    )
    refused = [line for line in out.stdout.splitlines() if line.startswith("refused")]
    assert refused and "http 422: " in refused[0] and "NO-SUCH-SKU" in refused[0], out.stdout
