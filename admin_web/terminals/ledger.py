"""The terminals and sales repository over ``<data_dir>/store.json`` (tables products, sales, terminals).

Every event write is one atomic write of store.json under its :class:`~smartshelf.core.storage.FileLock`, so
an event's stock changes and its ledger entry reach the disk together or not at all, and the
duplicate check (event id already in ``sales``) happens inside the same lock.

Group commit: each store write costs a JSON dump of the whole file plus two fsyncs. Under load, the
threads of the web server queue their verified events; the first thread to take the commit lock
becomes the leader, applies every queued event in one read-apply-write cycle and hands each waiting
thread its own result. One write then carries many events, while each event still applies whole or
not at all (rules in :mod:`admin_web.terminals.apply`), and no caller gets its answer before the
write that contains its event is on disk. A crash before the write loses the whole batch and none
of those callers got a 200, so their retries apply each event exactly once.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from admin_web.terminals.adapters import PROVIDERS
from admin_web.terminals.apply import ApplyResult, Submission, Tables, apply_batch, find_terminal
from admin_web.terminals.archive import LedgerArchive
from admin_web.terminals.errors import AuthError, KeyFileError, TerminalError
from admin_web.terminals.keys import SecretBox, load_key
from smartshelf.core.errors import StorageError
from smartshelf.core.storage import AtomicJSONStorage, FileLock, open_db

logger = logging.getLogger(__name__)

STORE_FILE = "store.json"
MAX_BATCH = 256
#: store.json's sales table is trimmed to KEEP_RECENT entries once it holds more than COMPACT_AT
#: (older entries move to the ledger archive, see :mod:`admin_web.terminals.archive`).
COMPACT_AT = 250
KEEP_RECENT = 50
_NAME_RE = re.compile(r"^[^\x00-\x1f]{1,64}$")


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    """A paired terminal as shown on the admin page (never the secret)."""

    terminal_id: str
    name: str
    provider: str
    created_at: str
    last_seen: str | None
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Pairing:
    """The result of pairing: the secret is shown once and is not retrievable afterwards."""

    terminal_id: str
    secret: str
    provider: str


class _Pending:
    """One queued event. ``wake`` is set when its result (or error) is ready, or when it is
    promoted to lead the next group commit."""

    __slots__ = ("error", "result", "submission", "wake")

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self.result: ApplyResult | None = None
        self.error: BaseException | None = None
        self.wake = threading.Event()

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _info(doc: dict[str, Any]) -> TerminalInfo:
    return TerminalInfo(
        terminal_id=doc["terminal_id"],
        name=doc.get("name", ""),
        provider=doc.get("provider", "generic"),
        created_at=doc.get("created_at", ""),
        last_seen=doc.get("last_seen"),
        revoked_at=doc.get("revoked_at"),
    )


class TerminalLedger:
    """Pairing, secrets, event application and ledger reads for one data dir. Thread-safe."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        lock_timeout: float | None = 30.0,
        compact_at: int = COMPACT_AT,
        keep_recent: int = KEEP_RECENT,
    ) -> None:
        if not 1 <= keep_recent < compact_at:
            raise ValueError(f"need 1 <= keep_recent ({keep_recent}) < compact_at ({compact_at})")
        self.compact_at = compact_at
        self.keep_recent = keep_recent
        self.data_dir = Path(data_dir)
        self.store_path = self.data_dir / STORE_FILE
        self.clock = clock
        self._db = open_db(self.store_path)
        self._reader = AtomicJSONStorage(self.store_path, read_only=True)
        self._reader_lock = threading.Lock()
        self._snapshot: tuple[tuple[int, int, int, int] | None, Tables] | None = None
        self._writing = False
        self.archive = LedgerArchive(self.data_dir)
        self._file_lock = FileLock(self.store_path, timeout=lock_timeout)
        self._storage_lock = threading.Lock()
        self._leading = False
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._box: SecretBox | None = None
        self._secret_cache: dict[tuple[str, str], str] = {}

    # -- storage --------------------------------------------------------------------------------
    # Writer side (commit, pair, revoke): always under the FileLock, through self._db's storage.
    # Reader side (request verification, page): _view(), which never waits for a commit in
    # progress; a commit holds the store for its fsyncs (tens of ms on a slow disk), and requests
    # verifying their signature meanwhile must not queue behind it.
    def _read(self) -> Tables:
        with self._storage_lock:
            return self._db.storage.read() or {}

    def _write(self, tables: Tables) -> None:
        with self._storage_lock:
            # Serve readers the on-disk state (as of under this FileLock) while the write is in flight.
            self._snapshot = (None, self._db.storage.read() or {})
            self._writing = True
            try:
                self._db.storage.write(tables)
                st = os.stat(self.store_path)
                # Still under the FileLock: no other writer can slip between the write and this stat.
                self._snapshot = (_stat_key(st), tables)
            finally:
                self._writing = False

    def _view(self) -> Tables:
        """The current tables for read-only use (never mutate them)."""
        try:
            st = os.stat(self.store_path)
        except FileNotFoundError:
            return {}
        snapshot = self._snapshot
        if snapshot is not None and (self._writing or snapshot[0] == _stat_key(st)):
            # While our own write is in flight (renamed but not yet fsynced), the state before it
            # is a consistent view: the commit re-checks everything that matters under the lock.
            return snapshot[1]
        with self._reader_lock:  # written by another handle or process: the reader's own cache
            return self._reader.read() or {}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _secret_box(self, *, create: bool) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(load_key(self.data_dir, create=create))
        return self._box

    # -- terminals ------------------------------------------------------------------------------
    def pair(self, name: str, *, provider: str = "generic", secret: str | None = None) -> Pairing:
        """Register a terminal. Generic terminals get a new random secret; Stripe needs the webhook
        signing secret (``whsec_...``) from the Stripe dashboard as ``secret``."""
        name = name.strip()
        if not _NAME_RE.match(name):
            raise TerminalError(f"terminal name {name!r} must be 1-64 printable characters")
        if provider not in PROVIDERS:
            raise TerminalError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
        if provider == "generic":
            if secret is not None:
                raise TerminalError("a generic terminal's secret is generated by pairing; do not pass one")
            # A fixed prefix: recognisable in a config, and never starts with "-" (command-line safe).
            secret = f"tsk_{secrets.token_urlsafe(32)}"
        elif not secret or not secret.strip():
            raise TerminalError(f"a {provider} terminal needs its webhook signing secret")
        secret = secret.strip()
        terminal_id = f"term_{secrets.token_hex(8)}"
        box = self._secret_box(create=True)
        doc = {
            "terminal_id": terminal_id,
            "name": name,
            "provider": provider,
            "secret": box.encrypt(secret, context=terminal_id),
            "created_at": self._now().isoformat(),
            "last_seen": None,
            "revoked_at": None,
        }
        with self._file_lock:
            tables = dict(self._read())
            terminals = dict(tables.get("terminals", {}))
            next_id = max((int(k) for k in terminals), default=0) + 1
            terminals[str(next_id)] = doc
            tables["terminals"] = terminals
            self._write(tables)
        logger.info("paired %s terminal %s (%s)", provider, terminal_id, name)
        return Pairing(terminal_id=terminal_id, secret=secret, provider=provider)

    def revoke(self, terminal_id: str) -> TerminalInfo:
        """Mark a terminal revoked: its requests get 401 from now on. Idempotent."""
        with self._file_lock:
            tables = dict(self._read())
            terminals = dict(tables.get("terminals", {}))
            found = find_terminal(terminals, terminal_id)
            if found is None:
                raise TerminalError(f"no terminal {terminal_id!r}")
            doc_id, doc = found
            if doc.get("revoked_at") is None:
                doc = {**doc, "revoked_at": self._now().isoformat()}
                terminals[doc_id] = doc
                tables["terminals"] = terminals
                self._write(tables)
                logger.info("revoked terminal %s (%s)", terminal_id, doc.get("name"))
        return _info(doc)

    def terminals(self) -> list[TerminalInfo]:
        docs = self._view().get("terminals", {}).values()
        return sorted((_info(d) for d in docs), key=lambda t: (t.revoked_at is not None, t.created_at))

    def credentials(self, terminal_id: str) -> tuple[str, str]:
        """(provider, secret) of an active terminal; AuthError for an unknown or revoked one."""
        found = find_terminal(self._view().get("terminals", {}), terminal_id) if terminal_id else None
        if found is None:
            raise AuthError(f"unknown terminal {terminal_id[:64]!r}")
        doc = found[1]
        if doc.get("revoked_at"):
            raise AuthError(f"terminal {terminal_id!r} was revoked")
        token = doc["secret"]
        cached = self._secret_cache.get((terminal_id, token))
        if cached is None:
            try:
                cached = self._secret_box(create=False).decrypt(token, context=terminal_id)
            except KeyFileError as exc:
                logger.error("terminal %s: %s", terminal_id, exc)
                raise AuthError(f"terminal {terminal_id!r} cannot be verified on this installation") from exc
            self._secret_cache[(terminal_id, token)] = cached
        return doc.get("provider", "generic"), cached

    # -- events ---------------------------------------------------------------------------------
    def submit(self, submission: Submission) -> ApplyResult:
        """Apply one verified event (group commit); returns once its write is durable.

        The first caller when no commit is running leads: it applies and writes every queued event
        (up to MAX_BATCH), wakes each waiter with its own result, then hands the lead to the oldest
        event still queued (or ends it). Waiters block on their own event, so finished callers never
        queue for a lock (no convoy). Raises StorageError when the store could not be written
        (nothing of the event applied).
        """
        pending = _Pending(submission)
        with self._queue_lock:
            self._queue.append(pending)
            lead = not self._leading
            self._leading = True
        if not lead:
            pending.wake.wait()
        if not pending.done:  # leading: a fresh lead or promoted by the previous leader
            try:
                with self._queue_lock:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._commit(batch)
            finally:
                with self._queue_lock:
                    if self._queue:
                        self._queue[0].wake.set()  # promoted: it leads the next commit
                    else:
                        self._leading = False
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._file_lock:
                try:
                    outcome = apply_batch(
                        self._read(), [p.submission for p in batch], received_at=self._now(),
                        archived_ids=self.archive.ids(),
                    )
                except Exception:
                    if len(batch) == 1:
                        raise
                    # An event (or a document it touches) the rules did not foresee: isolate it, so
                    # the other events of the batch are not refused with it.
                    logger.exception("applying a batch of %d events failed; applying them one by one", len(batch))
                    for p in batch:
                        self._commit([p])
                    return
                if outcome.changed:
                    self._write(self._compacted(outcome.tables))
        except BaseException as exc:
            logger.error("could not write %d terminal event(s) to %s: %s", len(batch), self.store_path, exc)
            error = exc if isinstance(exc, StorageError) else StorageError(f"{self.store_path}: {exc}")
            for p in batch:
                if p.result is None:
                    p.error = error
                p.wake.set()
            if not isinstance(exc, Exception):
                raise
            return
        for p, result in zip(batch, outcome.results, strict=True):
            p.result = result
            p.wake.set()
            if result.negative_skus:
                logger.warning(
                    "STOCK DISCREPANCY: event %s from terminal %s left stock below zero for %s",
                    p.submission.event.id, p.submission.terminal_id, ", ".join(result.negative_skus),
                )

    def _compacted(self, tables: Tables) -> Tables:
        """Move the oldest sales to the archive when the table is over ``compact_at`` (under the lock)."""
        sales = tables.get("sales", {})
        if len(sales) <= self.compact_at:
            return tables
        keys = sorted(sales, key=int)
        cut = len(keys) - self.keep_recent
        self.archive.add(sales[k] for k in keys[:cut])
        return {**tables, "sales": {k: sales[k] for k in keys[cut:]}}

    # -- reads for the admin page and exports ----------------------------------------------------
    def sales(self, *, since: float | None = None) -> list[dict[str, Any]]:
        """Ledger documents (archive, then store.json), oldest first, each event once; with
        ``since`` (unix seconds) only those received at or after it (store.json's recent entries are
        always all included)."""
        with self._file_lock:  # a consistent view while entries move to the archive
            archived = self.archive.docs(since=since)
            table = self._read().get("sales", {})
            archived_ids = self.archive.ids()
        return archived + [table[k] for k in sorted(table, key=int) if table[k].get("event_id") not in archived_ids]

    def count(self) -> int:
        """How many events the ledger holds (archive and store.json)."""
        with self._file_lock:
            archived_ids = self.archive.ids()
            table = self._read().get("sales", {})
        return len(archived_ids) + sum(1 for d in table.values() if d.get("event_id") not in archived_ids)

    def products(self) -> list[dict[str, Any]]:
        return list(self._view().get("products", {}).values())

    def negative_stock(self) -> list[dict[str, Any]]:
        """Products whose stock went below zero (sales recorded for stock the shelf did not have)."""
        negative = [p for p in self.products() if isinstance(p.get("stock"), int) and p["stock"] < 0]
        return sorted(negative, key=lambda p: str(p.get("sku", "")))
