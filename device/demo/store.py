"""The demo store: a shelf of real catalogue products (device/demo/catalog.csv), its factor file
(device/demo/factors.npz), its drawn product pictures (device/demo/images) and the replayed shopper
(device/demo/frames), in a throw-away data dir."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from device.inventory import STORE_FILE
from smartshelf.core.config import (
    CameraConfig,
    Config,
    KioskConfig,
    LedsConfig,
    PresenceConfig,
    ShelfConfig,
    VisitConfig,
)
from smartshelf.core.storage import open_db

DEMO_DIR = Path(__file__).resolve().parent
FRAMES_DIR = DEMO_DIR / "frames"
CATALOG = DEMO_DIR / "catalog.csv"
FACTORS = DEMO_DIR / "factors.npz"
#: Drawn product pictures, one ``<sku>.png`` per catalogue product (made by tools/product_pictures.py).
IMAGES_DIR = DEMO_DIR / "images"
ROWS, COLUMNS = "ABC", 4
#: Demo wiring: slot -> BCM pin (12 slots, 3 rows of 4).
DEMO_PINS = dict(
    zip(
        [f"{r}{c}" for r in ROWS for c in range(1, COLUMNS + 1)],
        [5, 6, 12, 13, 16, 17, 19, 20, 21, 22, 26, 27],
    )
)


def demo_products(catalog: Path = CATALOG) -> list[dict]:
    """Catalogue rows as store products: the first 12 go on slots, every 5th shelf item is sold out."""
    with catalog.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    slots = list(DEMO_PINS)
    products = []
    for i, row in enumerate(rows):
        slot = slots[i] if i < len(slots) else None
        products.append(
            {
                "sku": row["sku"],
                "name": row["name"],
                "brand": row.get("brand") or None,
                "gender": row.get("gender") or None,
                "category": row.get("category") or None,
                "price": int(float(row["price"])) * 100,
                "currency": "INR",
                "stock": 0 if slot and i % 5 == 4 else 6,
                "slot": slot,
                "item_id": row["sku"],
                "low_stock": 2,
                "image": f"{row['sku']}.png" if (IMAGES_DIR / f"{row['sku']}.png").is_file() else None,
            }
        )
    return products


def prepare_demo(data_dir: Path, *, kiosk_port: int = 8081, loop: bool = False) -> Config:
    """Write the demo store and factor file into ``data_dir`` and return the demo config."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = open_db(data_dir / STORE_FILE)
    db.drop_tables()
    db.table("products").insert_multiple(demo_products())
    db.table("slots").insert_multiple({"slot": s, "pin": p, "label": None} for s, p in DEMO_PINS.items())
    db.close()
    shutil.copyfile(FACTORS, data_dir / "factors.npz")
    (data_dir / "images").mkdir(exist_ok=True)
    for picture in IMAGES_DIR.glob("*.png"):
        shutil.copyfile(picture, data_dir / "images" / picture.name)
    return Config(
        shelf=ShelfConfig(name="Demo shelf", data_dir=data_dir),
        camera=CameraConfig(type="replay", source=str(FRAMES_DIR), loop=loop, fps=10.0),
        presence=PresenceConfig(type="camera_motion", hold_s=2.0),
        leds=LedsConfig(type="terminal"),
        # The clip is short (3.6 s): the shopper counts as gone after 0.6 s without a face, so the
        # lights go back to idle before the clip ends and a replayed clip is a new visit.
        visit=VisitConfig(leave_after_s=0.6),
        kiosk=KioskConfig(port=kiosk_port),
        slots=dict(DEMO_PINS),
    )
