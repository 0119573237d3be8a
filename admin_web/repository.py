"""The one place that touches store.json (products, slots, terminals, and the sales ledger's mark).

Every read and write goes through an :class:`InventoryRepository`; views never call TinyDB, and the
terminals area (:class:`~admin_web.terminals.ledger.TerminalLedger`) changes stock and terminals
through :meth:`InventoryRepository.transaction` too, so the admin process has one owner of the file,
one lock and one transaction helper. (The sales themselves live in their own append-only file,
``ledger.sqlite3``, owned by the TerminalLedger.)
Thread safety: one re-entrant thread lock serialises all access inside the process; writes also
hold the inter-process :class:`~smartshelf.core.storage.FileLock` (CLI commands take it too), so each
read-modify-write is atomic. Multi-table changes use :meth:`InventoryRepository.transaction`,
which writes the whole file once (a sale and its stock change apply whole or not at all).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from admin_web.errors import Conflict, NotFound, ValidationError
from admin_web.products import MAX_PRICE, MAX_STOCK, now_iso, stock_state, validate_product, validate_slot
from admin_web.shop import ShopSettings, settings_from_doc, validate_settings
from smartshelf.core.schema import Spec, bounded_int, check_table
from smartshelf.core.storage import FileLock, SkipWrite, open_db, write_transaction

STORE_FILE = "store.json"
TABLES = ("products", "slots", "terminals", "settings", "meta")


class SlotTaken(Conflict):
    """Putting a product on a slot would take another product off the shelf (or move this one from
    its slot): nothing changed; repeat with ``move=True`` to do it. ``displaced`` is the product now
    on the slot (sku, name, slot) or None, ``moved_from`` the slot the product leaves or None."""

    def __init__(self, sku: str, slot: str, displaced: dict[str, Any] | None, moved_from: str | None) -> None:
        parts = []
        if displaced is not None:
            parts.append(f"slot {slot} holds {displaced['sku']} ({displaced.get('name')}), which would be taken off the shelf")
        if moved_from is not None:
            parts.append(f"{sku} would leave slot {moved_from}")
        super().__init__("; ".join(parts) + ": confirm the move to do it")
        self.sku = sku
        self.slot = slot
        self.displaced = displaced
        self.moved_from = moved_from


@dataclass(frozen=True)
class Saved:
    """A saved product and what the save moved: the product taken off ``doc['slot']``, the slot it left."""

    doc: dict[str, Any]
    displaced: dict[str, Any] | None = None
    moved_from: str | None = None

    def moves(self) -> list[str]:
        """What happened to the shelf, in words (empty when nothing moved)."""
        out = []
        if self.moved_from:
            out.append(f"{self.doc['sku']} moved from slot {self.moved_from} to {self.doc['slot'] or 'no slot'}")
        if self.displaced:
            out.append(f"{self.displaced['sku']} ({self.displaced.get('name')}) was taken off slot {self.displaced['slot']}")
        return out

_NULLABLE_TEXT = (str, type(None))
PRODUCT_SCHEMA: dict[str, Spec] = {
    "sku": str, "name": str, "brand": _NULLABLE_TEXT, "gender": _NULLABLE_TEXT, "category": _NULLABLE_TEXT,
    "price": bounded_int(0, MAX_PRICE), "currency": str, "stock": bounded_int(-MAX_STOCK, MAX_STOCK),
    "slot": _NULLABLE_TEXT, "item_id": _NULLABLE_TEXT, "low_stock": bounded_int(0, MAX_STOCK, nullable=True),
    "image": _NULLABLE_TEXT, "updated_at": _NULLABLE_TEXT, "sold": bounded_int(0, 10**12, nullable=True),
}
SLOT_SCHEMA: dict[str, Spec] = {"slot": str, "pin": bounded_int(2, 27, nullable=True), "label": _NULLABLE_TEXT}


def check_store(path: Path, tables: Any) -> None:
    """store.json against its schema (products and slots; the terminals area checks its tables)."""
    check_table(path, tables, "products", PRODUCT_SCHEMA, required=("sku", "name", "price", "stock"))
    check_table(path, tables, "slots", SLOT_SCHEMA, required=("slot",))
    for name in ("sales", "terminals", "settings", "meta"):
        check_table(path, tables, name, {})


class StoreTransaction:
    """Raw access to the tables during :meth:`InventoryRepository.transaction` (all written at once).

    ``table(name)`` returns TinyDB's raw mapping ``{doc_id (str): doc}``; documents are plain dicts
    that may be changed in place.
    """

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self._tables = tables
        self.deferred = False

    def defer(self) -> None:
        """Keep this change in memory only, written with the next write or flush: only for a change
        durable in another file that the repository's reconciler re-applies (a sale's stock)."""
        self.deferred = True

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        """All raw tables (for code that computes new tables, such as the terminals' apply)."""
        return self._tables

    def replace_tables(self, tables: dict[str, dict[str, Any]]) -> None:
        """Make ``tables`` the content written at the end of the transaction."""
        self._tables.clear()
        self._tables.update(tables)

    def skip(self) -> None:
        """End the transaction here without writing (nothing changed)."""
        raise SkipWrite

    def meta(self, key: str, default: Any = None) -> Any:
        return self.table("meta").get("1", {}).get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        self.table("meta").setdefault("1", {})[key] = value

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        return self._tables.setdefault(name, {})

    def all(self, name: str) -> list[dict[str, Any]]:
        return list(self.table(name).values())

    def find(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        return [d for d in self.table(name).values() if all(d.get(k) == v for k, v in fields.items())]

    def find_one(self, name: str, **fields: Any) -> dict[str, Any] | None:
        found = self.find(name, **fields)
        return found[0] if found else None

    def insert(self, name: str, doc: Mapping[str, Any]) -> int:
        table = self.table(name)
        doc_id = max((int(k) for k in table), default=0) + 1
        table[str(doc_id)] = dict(doc)
        return doc_id

    def remove(self, name: str, **fields: Any) -> int:
        table = self.table(name)
        gone = [k for k, d in table.items() if all(d.get(f) == v for f, v in fields.items())]
        for k in gone:
            del table[k]
        return len(gone)

    def product(self, sku: str) -> dict[str, Any] | None:
        return self.find_one("products", sku=sku)


class InventoryRepository:
    """Products and slots in ``<data_dir>/store.json`` (TinyDB through AtomicJSONStorage)."""

    def __init__(self, data_dir: str | Path, *, configured_slots: Callable[[], Iterable[str]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        #: Slot names from the config (``[slots]``), used when store.json has no slots table yet.
        self.configured_slots = configured_slots or (lambda: ())
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / STORE_FILE
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_db(self.path)
        #: the clock of :meth:`deferred_since` (a bench's simulated one)
        self.monotonic = monotonic
        self.db.storage.monotonic = monotonic
        self.file_lock = FileLock(self.path)
        self._lock = threading.RLock()
        self._alerts_cache: tuple[Any, list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._products_cache: tuple[Any, list[dict[str, Any]], dict[str, dict[str, Any]]] | None = None

    def close(self) -> None:
        """Write what is kept in memory only, then close."""
        with self._lock:
            try:
                self.flush()
            finally:
                self.db.close()

    def set_reconciler(self, reconcile: Callable[[dict[str, Any]], bool]) -> None:
        """``reconcile(tables)`` re-applies, in memory, changes durable elsewhere that a freshly read
        store.json lacks (the sales ledger's stock changes); returns whether it changed anything."""
        with self._lock:
            self.db.storage.reconcile = reconcile
            self.db.storage.invalidate()
            self.db.storage.read()  # reconciled now: flush() writes what it changed

    def deferred_since(self) -> float | None:
        """Monotonic time of the oldest change not yet written to store.json (None: the file is current)."""
        return self.db.storage.deferred_since

    def flush(self) -> bool:
        """Write the changes kept in memory only (without fsyncs: they are durable elsewhere)."""
        with self._lock:
            if self.db.storage.deferred_since is None:
                return False
            with self.file_lock:
                return bool(self.db.storage.flush(durable=False))

    def validate(self) -> None:
        """Check store.json against its schema; StorageError names the file, document and key."""
        with self._lock:
            check_store(self.path, self.db.storage.read() or {})

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[StoreTransaction]:
        """Lock, read store.json once, yield a :class:`StoreTransaction`, write once on success.

        ``durable=False`` writes without fsyncs (still atomic): only for changes that are durable in
        another file already (a sale's stock change, replayed from the sales ledger after a power cut).
        A transaction that calls :meth:`StoreTransaction.defer` is kept in memory only (see :meth:`flush`).
        """
        holder: list[StoreTransaction] = []
        with self._lock, self.file_lock, write_transaction(self.db, durable=durable,
                                                           defer=lambda: holder[0].deferred) as tables:
            holder.append(StoreTransaction(tables))
            yield holder[0]

    def tables(self) -> dict[str, dict[str, Any]]:
        """The current raw tables, read-only (never mutate them): shared with the storage's cache."""
        with self._lock:
            return self.db.storage.read() or {}

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the thread lock for a series of reads (TinyDB handles are not thread-safe)."""
        with self._lock:
            yield

    def table_all(self, name: str) -> list[dict[str, Any]]:
        """Plain-dict copies of every document of a table (for read-only use by other areas)."""
        with self._lock:
            return [dict(d) for d in self.db.table(name).all()]

    # -- products -----------------------------------------------------------------------------
    def _snapshot(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Products sorted by sku and by sku, rebuilt only when store.json changed (any writer)."""
        with self._lock:
            storage = self.db.storage
            tables = storage.read() or {}
            version = getattr(storage, "version", None)
            if version is not None and self._products_cache is not None and self._products_cache[0] == version:
                return self._products_cache[1], self._products_cache[2]
            products = sorted((dict(d) for d in tables.get("products", {}).values()), key=lambda p: p["sku"])
            by_sku = {p["sku"]: p for p in products}
            self._products_cache = (version, products, by_sku)
            return products, by_sku

    def list_products(self, *, search: str | None = None) -> list[dict[str, Any]]:
        """All products sorted by sku (optionally filtered). The dicts are shared: treat them as read-only."""
        products, _ = self._snapshot()
        if search:
            needle = search.strip().lower()
            return [
                p for p in products
                if any(needle in str(p.get(f) or "").lower() for f in ("sku", "name", "brand", "category", "slot"))
            ]
        return list(products)

    def stock_alerts(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(discrepancies: stock < 0, low: 0 <= stock <= low_stock), cached until store.json changes."""
        with self._lock:
            products, _ = self._snapshot()
            cached = self._alerts_cache
            if cached is not None and cached[0] is products:
                return cached[1], cached[2]
            states = [(p, stock_state(p)) for p in products]
            discrepancies = [p for p, s in states if s == "discrepancy"]
            low = [p for p, s in states if s in ("low", "out")]
            self._alerts_cache = (products, discrepancies, low)
            return discrepancies, low

    def products_by_sku(self) -> dict[str, dict[str, Any]]:
        """sku -> product (shared, read-only), cached until store.json changes."""
        return self._snapshot()[1]

    def count_products(self) -> int:
        return len(self._snapshot()[0])

    def get_product(self, sku: str) -> dict[str, Any]:
        doc = self._snapshot()[1].get(sku)
        if doc is None:
            raise NotFound(f"no product with sku {sku!r}")
        return dict(doc)

    # -- shop settings ------------------------------------------------------------------------
    def settings(self) -> ShopSettings:
        with self._lock:
            docs = self.db.table("settings").all()
        return settings_from_doc(docs[0] if docs else None)

    def set_settings(self, data: Mapping[str, Any]) -> ShopSettings:
        with self.transaction() as tx:
            table = tx.table("settings")
            current = settings_from_doc(next(iter(table.values()), None))
            new = validate_settings(data, current)
            table.clear()
            table["1"] = new.to_dict()
        return new

    def slot_names(self, tx: StoreTransaction | None = None) -> set[str]:
        """The shelf's slots: store.json's slots table, else the config's ``[slots]`` (may be empty)."""
        if tx is not None:
            names = {str(d["slot"]) for d in tx.all("slots")}
        else:
            with self._lock:
                names = {str(d["slot"]) for d in self.db.table("slots").all()}
        return names or {str(s) for s in self.configured_slots()}

    def _settings_in(self, tx: StoreTransaction) -> ShopSettings:
        return settings_from_doc(next(iter(tx.table("settings").values()), None))

    def _place(self, tx: StoreTransaction, doc: dict[str, Any], previous_slot: str | None, move: bool) -> Saved:
        """Check (and with ``move`` make) room for ``doc`` on its slot; raises SlotTaken otherwise."""
        slot = doc.get("slot")
        holder = None
        if slot is not None:
            holder = next((p for p in tx.find("products", slot=slot) if p["sku"] != doc["sku"]), None)
        moved_from = previous_slot if previous_slot and slot and previous_slot != slot else None
        displaced = {"sku": holder["sku"], "name": holder.get("name"), "slot": slot} if holder else None
        if (displaced or moved_from) and not move:
            raise SlotTaken(doc["sku"], str(slot), displaced, moved_from)
        if holder is not None:
            holder["slot"] = None
            holder["updated_at"] = now_iso()
        return Saved(doc, displaced, moved_from)

    def create_product(self, data: Mapping[str, Any], *, move: bool = False) -> dict[str, Any]:
        return self.save_product(data, move=move).doc

    def update_product(self, sku: str, data: Mapping[str, Any], *, move: bool = False) -> dict[str, Any]:
        return self.save_product(data, sku=sku, move=move).doc

    def save_product(self, data: Mapping[str, Any], *, sku: str | None = None, move: bool = False) -> Saved:
        """Create (``sku`` None) or update a product. Putting it on a slot another product holds, or
        moving it from its slot, raises :class:`SlotTaken` (nothing changed) unless ``move``."""
        with self.transaction() as tx:
            shop, slots = self._settings_in(tx), self.slot_names(tx)
            if sku is None:
                doc = validate_product(data, shop=shop, slots=slots)
                if tx.product(doc["sku"]) is not None:
                    raise Conflict(f"a product with sku {doc['sku']!r} already exists")
                saved = self._place(tx, doc, None, move)
                tx.insert("products", doc)
                return saved
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            doc = validate_product(data, existing=current, shop=shop, slots=slots if "slot" in data else None)
            saved = self._place(tx, doc, current.get("slot"), move)
            current.clear()
            current.update(doc)
        return Saved(dict(doc), saved.displaced, saved.moved_from)

    def set_image(self, sku: str, image: str | None) -> str | None:
        """Set the product's image file name; returns the previous one (for the caller to delete)."""
        with self.transaction() as tx:
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            previous = current.get("image")
            current["image"] = image
            current["updated_at"] = now_iso()
        return previous

    def delete_product(self, sku: str) -> dict[str, Any]:
        with self.transaction() as tx:
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            removed = dict(current)
            tx.remove("products", sku=sku)
        return removed

    def restock(self, sku: str, quantity: int) -> dict[str, Any]:
        """Add ``quantity`` (> 0) units to the product's stock."""
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_STOCK:
            raise ValidationError("quantity", f"must be a whole number from 1 to {MAX_STOCK}, got {quantity!r}")
        with self.transaction() as tx:
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            current["stock"] = int(current.get("stock") or 0) + quantity
            current["updated_at"] = now_iso()
            return dict(current)

    def set_stock(self, sku: str, stock: int | None, *, add: int | None = None) -> dict[str, Any]:
        """Set the stock to ``stock`` or add ``add`` (may be negative); the result stays within
        +-MAX_STOCK."""
        with self.transaction() as tx:
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            new = stock if stock is not None else int(current.get("stock") or 0) + int(add or 0)
            if not -MAX_STOCK <= new <= MAX_STOCK:
                raise ValidationError("stock", f"would be {new}; must stay between {-MAX_STOCK} and {MAX_STOCK}")
            current["stock"] = new
            current["updated_at"] = now_iso()
            return dict(current)

    def import_products(self, docs: Iterable[Mapping[str, Any]], *, keep: Iterable[str] = ()) -> tuple[int, int]:
        """Upsert already-validated product docs in ONE write; returns (created, updated).

        For existing products the fields named in ``keep`` (e.g. stock, slot for a catalogue
        import) and the image keep their current values.
        """
        keep = set(keep) | {"image", "sold"}
        created = updated = 0
        with self.transaction() as tx:
            by_sku = {d["sku"]: d for d in tx.table("products").values()}
            slots_taken = {d["slot"]: d["sku"] for d in by_sku.values() if d.get("slot")}
            for doc in docs:
                current = by_sku.get(doc["sku"])
                if current is None:
                    new = dict(doc)
                    tx.insert("products", new)
                    by_sku[new["sku"]] = new
                    created += 1
                else:
                    kept = {k: current.get(k) for k in keep}
                    current.update(doc)
                    current.update(kept)
                    new = current
                    updated += 1
                slot = new.get("slot")
                if slot and slots_taken.get(slot, new["sku"]) != new["sku"]:
                    raise ValidationError("slot", f"{new['sku']}: slot {slot} already holds {slots_taken[slot]}")
                if slot:
                    slots_taken[slot] = new["sku"]
        return created, updated

    # -- slots --------------------------------------------------------------------------------
    def list_slots(self) -> list[dict[str, Any]]:
        with self._lock:
            slots = [dict(d) for d in self.db.table("slots").all()]
        return sorted(slots, key=lambda s: s["slot"])

    def set_slot(self, data: Mapping[str, Any]) -> dict[str, Any]:
        doc = validate_slot(data)
        with self.transaction() as tx:
            if doc["pin"] is not None:
                for other in tx.find("slots", pin=doc["pin"]):
                    if other["slot"] != doc["slot"]:
                        raise ValidationError("pin", f"GPIO{doc['pin']} is already used by slot {other['slot']}")
            current = tx.find_one("slots", slot=doc["slot"])
            if current is None:
                tx.insert("slots", doc)
            else:
                current.clear()
                current.update(doc)
        return doc

    def delete_slot(self, slot: str) -> None:
        with self.transaction() as tx:
            if not tx.remove("slots", slot=slot):
                raise NotFound(f"no slot {slot!r}")
            for product in tx.find("products", slot=slot):
                product["slot"] = None
                product["updated_at"] = now_iso()

    def assign_slot(self, slot: str, sku: str | None, *, move: bool = False) -> Saved | None:
        """Put product ``sku`` (or nothing) in ``slot``. Taking another product off the slot or moving
        ``sku`` from its own slot raises :class:`SlotTaken` (nothing changed) unless ``move``."""
        with self.transaction() as tx:
            if tx.find_one("slots", slot=slot) is None:
                raise NotFound(f"no slot {slot!r}")
            if not sku:
                for product in tx.find("products", slot=slot):
                    product["slot"] = None
                    product["updated_at"] = now_iso()
                return None
            target = tx.product(sku)
            if target is None:
                raise NotFound(f"no product with sku {sku!r}")
            previous = target.get("slot")
            saved = self._place(tx, {**target, "slot": slot}, previous, move)
            target["slot"] = slot
            target["updated_at"] = now_iso()
            return Saved(dict(target), saved.displaced, saved.moved_from)
