"""The one place that touches store.json (products, slots, and for the terminals area sales/terminals).

Every read and write goes through an :class:`InventoryRepository`; views never call TinyDB.
Thread safety: one re-entrant thread lock serialises all access inside the process; writes also
hold the inter-process :class:`~smartshelf.core.storage.FileLock` (CLI commands take it too), so each
read-modify-write is atomic. Multi-table changes use :meth:`InventoryRepository.transaction`,
which writes the whole file once (a sale and its stock change apply whole or not at all).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from admin_web.errors import Conflict, NotFound, ValidationError
from admin_web.products import now_iso, stock_state, validate_product, validate_slot
from smartshelf.core.storage import FileLock, open_db, write_transaction

STORE_FILE = "store.json"
TABLES = ("products", "slots", "sales", "terminals")


class StoreTransaction:
    """Raw access to the tables during :meth:`InventoryRepository.transaction` (all written at once).

    ``table(name)`` returns TinyDB's raw mapping ``{doc_id (str): doc}``; documents are plain dicts
    that may be changed in place.
    """

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self._tables = tables

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

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / STORE_FILE
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_db(self.path)
        self.file_lock = FileLock(self.path)
        self._lock = threading.RLock()
        self._alerts_cache: tuple[Any, list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._products_cache: tuple[Any, list[dict[str, Any]], dict[str, dict[str, Any]]] | None = None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """Lock, read store.json once, yield a :class:`StoreTransaction`, write once on success."""
        with self._lock, self.file_lock, write_transaction(self.db) as tables:
            yield StoreTransaction(tables)

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

    def _check_slot_free(self, tx: StoreTransaction, slot: str | None, sku: str) -> None:
        if slot is None:
            return
        for other in tx.find("products", slot=slot):
            if other["sku"] != sku:
                raise ValidationError("slot", f"slot {slot} already holds product {other['sku']}")

    def create_product(self, data: Mapping[str, Any]) -> dict[str, Any]:
        doc = validate_product(data)
        with self.transaction() as tx:
            if tx.product(doc["sku"]) is not None:
                raise Conflict(f"a product with sku {doc['sku']!r} already exists")
            self._check_slot_free(tx, doc["slot"], doc["sku"])
            tx.insert("products", doc)
        return doc

    def update_product(self, sku: str, data: Mapping[str, Any]) -> dict[str, Any]:
        with self.transaction() as tx:
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            doc = validate_product(data, existing=current)
            self._check_slot_free(tx, doc["slot"], sku)
            current.clear()
            current.update(doc)
        return dict(doc)

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
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise ValidationError("quantity", f"must be a whole number above 0, got {quantity!r}")
        with self.transaction() as tx:
            current = tx.product(sku)
            if current is None:
                raise NotFound(f"no product with sku {sku!r}")
            current["stock"] = int(current.get("stock") or 0) + quantity
            current["updated_at"] = now_iso()
            return dict(current)

    def import_products(self, docs: Iterable[Mapping[str, Any]], *, keep: Iterable[str] = ()) -> tuple[int, int]:
        """Upsert already-validated product docs in ONE write; returns (created, updated).

        For existing products the fields named in ``keep`` (e.g. stock, slot for a catalogue
        import) and the image keep their current values.
        """
        keep = set(keep) | {"image"}
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

    def assign_slot(self, slot: str, sku: str | None) -> None:
        """Put product ``sku`` (or nothing) in ``slot``; the product previously there is unassigned."""
        with self.transaction() as tx:
            if tx.find_one("slots", slot=slot) is None:
                raise NotFound(f"no slot {slot!r}")
            target = None
            if sku:
                target = tx.product(sku)
                if target is None:
                    raise NotFound(f"no product with sku {sku!r}")
            for product in tx.find("products", slot=slot):
                product["slot"] = None
                product["updated_at"] = now_iso()
            if target is not None:
                target["slot"] = slot
                target["updated_at"] = now_iso()
