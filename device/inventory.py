"""The device's read-only view of the admin-owned store file (products and the slot map).

The admin is the only writer of ``store.json``; the device re-reads it when its mtime changes and
keeps the last good view if a read fails (a running shelf keeps its last good state).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartshelf.core.errors import SmartShelfError
from smartshelf.core.storage import open_db

logger = logging.getLogger(__name__)

STORE_FILE = "store.json"


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    stock: int
    price: int | None = None
    currency: str = "INR"
    brand: str | None = None
    gender: str | None = None
    category: str | None = None
    slot: str | None = None
    item_id: str | None = None
    image: str | None = None
    #: Units sold through the paired terminals (kept by the admin), for the catalogue prior.
    sold: int = 0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Product:
        return cls(
            sku=str(doc["sku"]),
            name=str(doc.get("name") or doc["sku"]),
            stock=int(doc.get("stock") or 0),
            price=None if doc.get("price") is None else int(doc["price"]),
            currency=str(doc.get("currency") or "INR"),
            brand=doc.get("brand"),
            gender=doc.get("gender"),
            category=doc.get("category"),
            slot=None if doc.get("slot") in (None, "") else str(doc["slot"]),
            item_id=None if doc.get("item_id") in (None, "") else str(doc["item_id"]),
            image=doc.get("image"),
            sold=max(0, int(doc.get("sold") or 0)),
        )

    def screen_fields(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "name": self.name,
            "brand": self.brand,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "slot": self.slot,
            "image": self.image,
        }


class StoreView:
    """Products and slot pins as last read from ``<data_dir>/store.json``."""

    def __init__(self, path: Path, *, default_slot_pins: Mapping[str, int] | None = None) -> None:
        self.path = Path(path)
        self.default_slot_pins = dict(default_slot_pins or {})
        self.products: dict[str, Product] = {}
        self.slot_pins: dict[str, int | None] = dict(self.default_slot_pins)
        #: The A/B control share staff set in the shop settings (None: not set, use the config's).
        self.generic_share: float | None = None
        #: Incremented whenever the view changes (products or slots), for derived caches.
        self.version = 0
        self._stamp: tuple[int, int] | None = None

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed; True when the view changed. Errors keep the last view."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stamp is not None or force:
                logger.warning("%s does not exist; the shelf has no products", self.path)
            self._stamp = None
            changed = bool(self.products)
            self.products = {}
            self.slot_pins = dict(self.default_slot_pins)
            self.version += changed
            return changed
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp and not force:
            return False
        try:
            db = open_db(self.path, read_only=True)
            products = {}
            for doc in db.table("products").all():
                product = Product.from_doc(doc)
                products[product.sku] = product
            slots = {str(d["slot"]): (None if d.get("pin") is None else int(d["pin"])) for d in db.table("slots").all()}
            settings = db.table("settings").all()
            db.close()
            share = settings[0].get("generic_share") if settings else None
            share = float(share) if isinstance(share, (int, float)) and 0.0 <= float(share) <= 1.0 else None
        except (SmartShelfError, OSError, KeyError, TypeError, ValueError) as exc:
            logger.error("cannot read %s (%s); keeping the previous product list", self.path, exc)
            return False
        self._stamp = stamp
        self.products = products
        self.slot_pins = slots or dict(self.default_slot_pins)
        self.generic_share = share
        self.version += 1
        logger.info("store view: %d products, %d slots from %s", len(products), len(self.slot_pins), self.path)
        return True

    def on_slots(self) -> list[Product]:
        """Products placed on a slot (what the shelf may light), in or out of stock."""
        return [p for p in self.products.values() if p.slot is not None]

    def candidates(self) -> dict[str, Product]:
        """sku -> product for what the shelf can recommend: in stock and on a slot.

        Whatever ids a product has: the store model (:mod:`device.recommend.blend`) ranks products the
        factor file does not know by the catalogue prior.
        """
        return {p.sku: p for p in self.products.values() if p.stock > 0 and p.slot is not None}
