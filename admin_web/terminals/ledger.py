"""Terminals and sales: pairing, secrets, event application and ledger reads for one data dir.

Two files, one owner each in the admin process:

* store.json (products' stock, terminals) through the app's
  :class:`~admin_web.repository.InventoryRepository`, its one lock and transaction helper;
* the sales ledger ``ledger.sqlite3`` (:class:`~admin_web.terminals.sales.SalesDatabase`), append-only,
  owned by this object.

Commit order, under the repository's lock: apply the batch to the tables (duplicate check against
the ledger, per terminal), append the applied events with their stock changes to the ledger in one
durable transaction (``synchronous=FULL``), then hand store.json the new stock and the ledger's last
``seq`` as ``meta.ledger_seq``. No caller gets its answer before its event is durable in the ledger.

store.json follows the ledger lazily, to spare the SD card (a 150-product store.json is ~44 kB; a
busy day has 2,000 sales): a sale that takes a product out of stock or back in (what the shelf
reads), or a terminal's first event, is written at once (atomically, without fsyncs); other stock
changes (and terminals' ``last_seen``) stay in the admin's memory, where its pages read them, and reach the file within :data:`STOCK_WRITE_INTERVAL_S`, with
the next staff edit, or when the admin stops. Whenever store.json is read from disk (at start,
after a power cut brought back an older copy, after another process wrote it), the stock changes
of the ledger entries after its ``ledger_seq`` are re-applied in memory (the repository's
reconciler), so the stock is exact and each sale counts once.

Group commit: under load, the threads of the web server queue their verified events; the first
thread to find no commit running becomes the leader, applies every queued event in one cycle and
hands each waiting thread its own result. A crash before the ledger commit loses the whole batch
and none of those callers got a 200, so their retries apply each event exactly once.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from admin_web.repository import InventoryRepository
from admin_web.terminals.adapters import PROVIDERS
from admin_web.terminals.apply import ApplyResult, Submission, Tables, apply_batch, find_terminal
from admin_web.terminals.errors import AuthError, KeyFileError, TerminalError
from admin_web.terminals.keys import SecretBox, load_key
from admin_web.terminals.sales import SalesDatabase, read_legacy_archive
from smartshelf.core.clock import SyncWatch
from smartshelf.core.errors import StorageError

logger = logging.getLogger(__name__)

MAX_BATCH = 256
LEDGER_SEQ = "ledger_seq"
#: The longest a stock change that does not move a product in or out of stock waits for store.json.
STOCK_WRITE_INTERVAL_S = 300.0
_NAME_RE = re.compile(r"[^\x00-\x1f]{1,64}")


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


def _info(doc: dict[str, Any]) -> TerminalInfo:
    return TerminalInfo(
        terminal_id=doc["terminal_id"],
        name=doc.get("name", ""),
        provider=doc.get("provider", "generic"),
        created_at=doc.get("created_at", ""),
        last_seen=doc.get("last_seen"),
        revoked_at=doc.get("revoked_at"),
    )


def _apply_delta(tables: Tables, delta: dict[str, int]) -> None:
    """Add a replayed stock change to the products in place (unknown skus are skipped and logged)."""
    by_sku = {doc.get("sku"): doc for doc in tables.get("products", {}).values()}
    for sku, change in delta.items():
        doc = by_sku.get(sku)
        if doc is None:
            logger.warning("ledger replay: product %s no longer exists; its stock change %+d is skipped", sku, change)
            continue
        doc["stock"] = int(doc.get("stock") or 0) + int(change)


def _write_now(before: Tables, after: Tables, deltas: list[dict[str, int]]) -> bool:
    """Whether a batch changes what the shelf or staff read from store.json in another process:
    a product out of stock or back in, a terminal seen for the first time."""
    first_seen = any(doc.get("last_seen") is None and after.get("terminals", {}).get(key, {}).get("last_seen")
                     for key, doc in before.get("terminals", {}).items())
    changed = {sku for delta in deltas for sku in delta}
    if first_seen or not changed:
        return first_seen

    def in_stock(tables: Tables) -> dict[str, bool]:
        return {doc.get("sku"): int(doc.get("stock") or 0) > 0
                for doc in tables.get("products", {}).values() if doc.get("sku") in changed}

    return in_stock(before) != in_stock(after)


class TerminalLedger:
    """Pairing, secrets, event application and ledger reads for one data dir. Thread-safe.

    ``repository``: the app's store.json owner (one per process); by default one is made for
    ``data_dir`` (the CLI commands).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        repository: InventoryRepository | None = None,
        clock: Callable[[], float] = time.time,
        clock_synced: Callable[[], bool] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        #: whether the machine's clock was set since boot (a Pi 4 has no RTC)
        self.clock_synced = clock_synced if clock_synced is not None else SyncWatch()
        self.repo = repository if repository is not None else InventoryRepository(self.data_dir)
        self.store_path = self.repo.path
        self.sales_db = SalesDatabase(self.data_dir)
        self.clock = clock
        self._leading = False
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._box: SecretBox | None = None
        self._secret_cache: dict[tuple[str, str], str] = {}
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()
        self._migrate_legacy()
        self.repo.set_reconciler(self._reconcile)
        self.repo.flush()  # stock a power cut took from store.json: on disk now, for the shelf

    # -- storage --------------------------------------------------------------------------------
    def _migrate_legacy(self) -> None:
        """Move an earlier release's ledger (store.json's ``sales`` table and the ``ledger/`` chunks)
        into ledger.sqlite3, losing nothing: import (one durable transaction, duplicates skipped),
        then store.json without the table (its stock already counts those sales, so ``ledger_seq``
        is the ledger's last entry), then remove the chunks. Safe to interrupt at any point."""
        files, archived = read_legacy_archive(self.data_dir)
        with self.repo.transaction() as tx:
            table = tx.tables.get("sales")
            if table is None and not files:
                tx.skip()
            recent = [table[k] for k in sorted(table, key=int)] if table else []
            imported = self.sales_db.import_legacy([*archived, *recent])
            tx.tables.pop("sales", None)
            if tx.meta(LEDGER_SEQ) is None:
                tx.set_meta(LEDGER_SEQ, self.sales_db.last_seq())
            logger.info("moved the sales ledger (%d entries, %d new) from store.json and %d archive file(s) into %s",
                        len(archived) + len(recent), imported, len(files), self.sales_db.path)
        for path in files:
            path.unlink(missing_ok=True)
        if files:
            try:
                files[0].parent.rmdir()
            except OSError:
                pass

    def _reconcile(self, tables: Tables) -> bool:
        """store.json as just read from disk: apply, in memory, the stock changes of the ledger
        entries it does not count yet (after a power cut brought back an older copy, or while the
        newest stock was still only in memory when another process wrote the file). Returns
        whether anything changed (the repository then writes it with its next write or flush)."""
        meta = tables.setdefault("meta", {}).setdefault("1", {})
        mark = meta.get(LEDGER_SEQ)
        if mark is None:  # a store.json that never saw this ledger (new, or restored alone): mark it
            last = self.sales_db.last_seq()
            if last:
                logger.warning("store.json has no ledger mark; taking its stock as counting all %d ledger entries",
                               last)
            meta[LEDGER_SEQ] = last
            return True
        missing = self.sales_db.deltas_after(int(mark))
        if not missing:
            return False
        for _seq, delta in missing:
            _apply_delta(tables, delta)
        seen = self.sales_db.last_received_after(int(mark))
        for doc in tables.get("terminals", {}).values():
            at = seen.get(doc.get("terminal_id"))
            if at is not None:
                stamp = datetime.fromtimestamp(at, UTC).isoformat()
                last = doc.get("last_seen")
                if last is None or datetime.fromisoformat(last) < datetime.fromisoformat(stamp):
                    doc["last_seen"] = stamp
        meta[LEDGER_SEQ] = missing[-1][0]
        logger.info("store.json: applied the stock changes of %d sale(s) it did not count yet (ledger seq %d-%d)",
                    len(missing), missing[0][0], missing[-1][0])
        return True

    def flush_stock(self) -> bool:
        """Write the stock kept in memory to store.json now (also the timer's and close's job)."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        try:
            return self.repo.flush()
        except StorageError as exc:  # still in memory and in the ledger: the next write tries again
            logger.error("could not write the stock to %s: %s", self.store_path, exc)
            self._schedule_flush()
            return False

    def _schedule_flush(self) -> None:
        since = self.repo.deferred_since()
        if since is None:
            return
        wait = max(0.0, since + STOCK_WRITE_INTERVAL_S - self.repo.monotonic())
        if wait == 0.0:
            self.flush_stock()
            return
        with self._timer_lock:
            if self._timer is None:
                self._timer = threading.Timer(wait, self.flush_stock)
                self._timer.daemon = True
                self._timer.name = "store-json-stock"
                self._timer.start()

    def close(self) -> None:
        """Write the stock kept in memory and stop the timer (the admin's shutdown)."""
        self.flush_stock()

    def _view(self) -> Tables:
        """The current tables for read-only use (never mutate them)."""
        return self.repo.tables()

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
        if not _NAME_RE.fullmatch(name):
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
        with self.repo.transaction() as tx:
            tx.insert("terminals", doc)
        logger.info("paired %s terminal %s (%s)", provider, terminal_id, name)
        return Pairing(terminal_id=terminal_id, secret=secret, provider=provider)

    def revoke(self, terminal_id: str) -> TerminalInfo:
        """Mark a terminal revoked: its requests get 401 from now on. Idempotent."""
        with self.repo.transaction() as tx:
            found = find_terminal(tx.table("terminals"), terminal_id)
            if found is None:
                raise TerminalError(f"no terminal {terminal_id!r}")
            doc = found[1]
            if doc.get("revoked_at") is not None:
                tx.skip()
            doc["revoked_at"] = self._now().isoformat()
            logger.info("revoked terminal %s (%s)", terminal_id, doc.get("name"))
        return _info(dict(doc))

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
            with self.repo.transaction(durable=False) as tx:
                try:
                    outcome = apply_batch(
                        tx.tables, [p.submission for p in batch], received_at=self._now(),
                        is_duplicate=self.sales_db.has,
                    )
                except Exception:
                    if len(batch) == 1:
                        raise
                    # An event (or a document it touches) the rules did not foresee: isolate it, so
                    # the other events of the batch are not refused with it.
                    logger.exception("applying a batch of %d events failed; applying them one by one", len(batch))
                    outcome = None
                if outcome is None or not outcome.changed:
                    tx.skip()
                else:
                    tables = dict(outcome.tables)
                    if outcome.applied:
                        last = self.sales_db.append(zip(outcome.applied, outcome.deltas, strict=True))
                        meta = {k: dict(v) for k, v in tables.get("meta", {}).items()}
                        meta.setdefault("1", {})[LEDGER_SEQ] = last
                        tables["meta"] = meta
                    if not _write_now(tx.tables, tables, outcome.deltas):
                        tx.defer()  # durable in the ledger; store.json follows (see the module docstring)
                    tx.replace_tables(tables)
            if outcome is None:
                for p in batch:
                    self._commit([p])
                return
        except BaseException as exc:
            logger.error("could not apply %d terminal event(s) (%s, %s): %s", len(batch), self.sales_db.path,
                         self.store_path, exc)
            error = exc if isinstance(exc, StorageError) else StorageError(f"{self.store_path}: {exc}")
            for p in batch:
                if p.result is None:
                    p.error = error
                p.wake.set()
            if not isinstance(exc, Exception):
                raise
            return
        self._schedule_flush()
        for p, result in zip(batch, outcome.results, strict=True):
            p.result = result
            p.wake.set()
            if result.negative_skus:
                logger.warning(
                    "STOCK DISCREPANCY: event %s from terminal %s left stock below zero for %s",
                    p.submission.event.id, p.submission.terminal_id, ", ".join(result.negative_skus),
                )

    # -- reads for the admin page and exports ----------------------------------------------------
    def sales(self, *, since: float | None = None) -> list[dict[str, Any]]:
        """Ledger documents, oldest first; with ``since`` (unix seconds) only those received at or after it."""
        return self.sales_db.docs(since=since)

    def count(self) -> int:
        """How many events the ledger holds."""
        return self.sales_db.count()

    def products(self) -> list[dict[str, Any]]:
        return list(self._view().get("products", {}).values())

    def negative_stock(self) -> list[dict[str, Any]]:
        """Products whose stock went below zero (sales recorded for stock the shelf did not have)."""
        negative = [p for p in self.products() if isinstance(p.get("stock"), int) and p["stock"] < 0]
        return sorted(negative, key=lambda p: str(p.get("sku", "")))
