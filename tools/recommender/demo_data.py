"""Regenerates the demo catalogue (device/demo/catalog.csv) and its prior factor file
(device/demo/factors.npz) from the Myntra product catalogue.

Selection is deterministic: rows of the Myntra CSV in ProductID order, keeping names that are plain
ASCII, a price between 300 and 8000 INR and a colour, then filling the quota of each (target gender,
category) cell in :data:`QUOTAS` with products of distinct brands. The output is interleaved so that the
first 12 rows (the demo shelf's slots) mix women's, men's, unisex and kids' products.

Command: ``smartshelf factors demo-data --myntra ../shared/data/myntra/myntra_products_catalog.csv``
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from device.recommend.data import DataError
from device.recommend.factors import _file_mode
from device.recommend.prior import CatalogItem, build_prior, category_of
from smartshelf.core.storage import atomic_write_bytes

#: (Myntra gender, category, how many).
QUOTAS: tuple[tuple[str, str, int], ...] = (
    ("Women", "casual", 3),
    ("Women", "ethnic", 3),
    ("Women", "footwear", 2),
    ("Women", "bags", 1),
    ("Women", "jewellery", 1),
    ("Women", "sportswear", 1),
    ("Women", "beauty", 1),
    ("Men", "casual", 3),
    ("Men", "formal", 2),
    ("Men", "ethnic", 1),
    ("Men", "footwear", 2),
    ("Men", "sportswear", 1),
    ("Men", "accessories", 1),
    ("Men", "beauty", 1),
    ("Unisex", "bags", 1),
    ("Unisex", "accessories", 1),
    ("Unisex", "footwear", 1),
    ("Unisex Kids", "casual", 1),
    ("Boys", "casual", 2),
    ("Boys", "footwear", 1),
    ("Girls", "casual", 2),
    ("Girls", "ethnic", 1),
)
FIELDS = ("sku", "name", "brand", "gender", "category", "price", "colour")
MIN_PRICE, MAX_PRICE = 300, 8000


def select_demo_rows(myntra_csv: Path) -> list[dict[str, str]]:
    if not myntra_csv.is_file():
        raise DataError(f"Myntra catalogue {myntra_csv} does not exist")
    with open(myntra_csv, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"Product_ID", "Product_Name", "Product_Brand", "Gender", "Price", "Primary_Color"}
    if not rows or not needed <= set(rows[0]):
        raise DataError(f"{myntra_csv}: expected the Myntra columns {', '.join(sorted(needed))}")

    def col(row: dict[str, str], name: str) -> str:
        return (row.get(name) or "").strip()

    rows.sort(key=lambda r: int(col(r, "Product_ID")) if col(r, "Product_ID").isdigit() else 0)
    cells: dict[tuple[str, str], list[dict[str, str]]] = {(g, c): [] for g, c, _ in QUOTAS}
    quota = {(g, c): n for g, c, n in QUOTAS}
    for row in rows:
        name = col(row, "Product_Name")
        price = col(row, "Price")
        colour = col(row, "Primary_Color")
        if not name.isascii() or not price.isdigit() or not colour or "," in name:
            continue
        if not MIN_PRICE <= int(price) <= MAX_PRICE:
            continue
        key = (col(row, "Gender"), category_of(name))
        chosen = cells.get(key)
        if chosen is None or len(chosen) >= quota[key]:
            continue
        brand = col(row, "Product_Brand")
        if any(r["brand"] == brand for r in chosen):
            continue
        chosen.append(
            {
                "sku": col(row, "Product_ID"),
                "name": name,
                "brand": brand,
                "gender": key[0],
                "category": key[1],
                "price": price,
                "colour": colour,
            }
        )
    short = [f"{g}/{c}" for (g, c), got in cells.items() if len(got) < quota[(g, c)]]
    if short:
        raise DataError(f"{myntra_csv}: not enough products for {', '.join(short)}")
    # Interleave by gender group so that any prefix (the first 12 slots) is mixed.
    groups = {
        g: [r for (gg, _), rs in cells.items() if gg == g for r in rs]
        for g in ("Women", "Men", "Unisex", "Unisex Kids", "Boys", "Girls")
    }
    for g, group in groups.items():  # alternate categories inside a group too
        keys = [(sum(1 for x in group[:i] if x["category"] == r["category"]), i) for i, r in enumerate(group)]
        groups[g] = [r for _, r in sorted(zip(keys, group), key=lambda pair: pair[0])]
    order = ("Women", "Men", "Women", "Men", "Unisex", "Girls", "Boys", "Unisex Kids")
    out: list[dict[str, str]] = []
    while any(groups.values()):
        for g in order:
            if groups[g]:
                out.append(groups[g].pop(0))
    return out


def _write_csv_atomic(path: Path, rows: list[dict[str, str]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode("utf-8"), mode=_file_mode())


def write_demo_data(myntra_csv: Path, out_dir: Path) -> tuple[Path, Path]:
    rows = select_demo_rows(Path(myntra_csv))
    catalog = Path(out_dir) / "catalog.csv"
    _write_csv_atomic(catalog, rows)
    items = [
        CatalogItem(r["sku"], r["name"], r["gender"].lower(), r["category"], float(r["price"])) for r in rows
    ]
    model = build_prior(items, source="device/demo/catalog.csv (Myntra subset)")
    factors = model.save(Path(out_dir) / "factors.npz")
    return catalog, factors
