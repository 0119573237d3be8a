"""The sales ledger: ``<data_dir>/ledger.sqlite3``, append-only, owned by the admin's TerminalLedger.

One row per applied terminal event: ``seq`` (the ledger's order), the terminal and its event id
(unique together: two tills that both number receipts from 000001 never swallow each other's
sales), when it was received, the sales document exactly as the API and exports show it, and the
stock change it made (so a stock change that did not reach store.json can be replayed, see
:mod:`admin_web.terminals.ledger`).

Durability: ``synchronous=FULL``: a commit returns after the WAL is fsynced, and the terminal gets
its 200 only after that, so a power cut never loses an acknowledged sale. A commit appends only the
pages it changed, so a sale costs the same bytes whatever the ledger's size.

Earlier releases kept the ledger in store.json's ``sales`` table plus write-once chunks
``<data_dir>/ledger/sales-NNNNNN.json``: :meth:`SalesDatabase.import_legacy` takes them in (duplicates
skipped by the unique key), and :class:`~admin_web.terminals.ledger.TerminalLedger` then drops the
table from store.json and the chunks from disk.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from smartshelf.core.errors import StorageError
from smartshelf.core.sqlite import open_database, transaction

logger = logging.getLogger(__name__)

LEDGER_FILE = "ledger.sqlite3"
#: A small page: a sale's commit appends its changed pages (table and two indexes) to the WAL.
PAGE_SIZE = 1024
#: Where earlier releases archived older sales (write-once JSON chunks).
LEGACY_ARCHIVE_DIR = "ledger"

MIGRATIONS = (
    """
    CREATE TABLE sales (
        seq INTEGER PRIMARY KEY,
        terminal_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        received REAL NOT NULL,
        doc TEXT NOT NULL,
        stock_delta TEXT NOT NULL,
        UNIQUE (terminal_id, event_id)
    );
    CREATE INDEX sales_received ON sales (received)
    """,
)


def received_ts(doc: dict[str, Any]) -> float:
    """A ledger document's receive time (unix seconds); +inf when unreadable (kept in every report)."""
    try:
        return datetime.fromisoformat(str(doc.get("received_at"))).timestamp()
    except ValueError:
        return float("inf")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class SalesDatabase:
    """The ledger database of one data dir. Thread-safe (one connection behind a lock)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / LEDGER_FILE
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_database(self.path, MIGRATIONS, synchronous="FULL", mode=0o600, page_size=PAGE_SIZE)
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot read the sales ledger ({exc})") from exc

    def has(self, terminal_id: str, event_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM sales WHERE terminal_id = ? AND event_id = ?",
                                (terminal_id, event_id)))

    def append(self, entries: Iterable[tuple[dict[str, Any], dict[str, int]]]) -> int:
        """Commit ledger documents with their stock changes in one durable transaction; returns the
        last ``seq`` (0 when the ledger is empty). Raises StorageError when nothing was written."""
        rows = [(d["terminal_id"], d["event_id"], received_ts(d), _dumps(d), _dumps(delta)) for d, delta in entries]
        with self._lock:
            try:
                conn = self._db()
                with transaction(conn):
                    conn.executemany(
                        "INSERT INTO sales (terminal_id, event_id, received, doc, stock_delta) VALUES (?, ?, ?, ?, ?)",
                        rows)
                return int(conn.execute("SELECT coalesce(max(seq), 0) FROM sales").fetchone()[0])
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot write the sales ledger ({exc})") from exc

    def last_seq(self) -> int:
        return int(self._query("SELECT coalesce(max(seq), 0) FROM sales")[0][0])

    def deltas_after(self, seq: int) -> list[tuple[int, dict[str, int]]]:
        """(seq, stock change) of every entry after ``seq``, in order (for the stock replay)."""
        return [(int(s), json.loads(d)) for s, d in
                self._query("SELECT seq, stock_delta FROM sales WHERE seq > ? ORDER BY seq", (seq,))]

    def last_received_after(self, seq: int) -> dict[str, float]:
        """terminal id -> when its newest entry after ``seq`` was received (unix seconds)."""
        return {str(t): float(r) for t, r in
                self._query("SELECT terminal_id, max(received) FROM sales WHERE seq > ? GROUP BY terminal_id", (seq,))}

    def docs(self, *, since: float | None = None) -> list[dict[str, Any]]:
        """Ledger documents in ledger order; with ``since`` only those received at or after it."""
        if since is None:
            rows = self._query("SELECT doc FROM sales ORDER BY seq")
        else:
            rows = self._query("SELECT doc FROM sales WHERE received >= ? ORDER BY seq", (since,))
        return [json.loads(r[0]) for r in rows]

    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM sales")[0][0])

    def import_legacy(self, docs: Iterable[dict[str, Any]]) -> int:
        """Take in documents of the old ledger (in their order); returns how many were new.

        Their stock changes were applied to store.json by the old release, so none is recorded."""
        rows = []
        for doc in docs:
            if not isinstance(doc, dict) or not doc.get("event_id"):
                logger.warning("%s: skipping an old ledger entry without an event id: %.200r", self.path, doc)
                continue
            rows.append((str(doc.get("terminal_id") or ""), str(doc["event_id"]), received_ts(doc), _dumps(doc)))
        with self._lock:
            try:
                conn = self._db()
                before = conn.total_changes
                with transaction(conn):
                    conn.executemany(
                        "INSERT OR IGNORE INTO sales (terminal_id, event_id, received, doc, stock_delta) "
                        "VALUES (?, ?, ?, ?, '{}')", rows)
                return conn.total_changes - before
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: cannot import the old ledger ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def read_legacy_archive(data_dir: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """The old archive chunks ``<data_dir>/ledger/sales-NNNNNN.json`` and their documents, oldest first."""
    folder = Path(data_dir) / LEGACY_ARCHIVE_DIR
    if not folder.is_dir():
        return [], []
    files = sorted(p for p in folder.glob("sales-*.json") if p.stem[6:].isdigit())
    docs: list[dict[str, Any]] = []
    for path in files:
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StorageError(f"{path}: old ledger archive file is unreadable ({exc}); restore it from a "
                               "backup or move it away") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("sales"), list):
            raise StorageError(f"{path}: not a ledger archive file (expected {{\"format\": 1, \"sales\": [...]}})")
        docs.extend(d for d in raw["sales"] if isinstance(d, dict))
    return files, docs
