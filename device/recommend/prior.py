"""A prior factor file for a store with no sales yet, from catalogue attributes alone.

Nothing here is learned: the leanings below are hand-set heuristics, stated openly so staff know what
the shelf shows before any sales exist. Replace the file with ``smartshelf factors retrain`` once the
store has a sales ledger.

Item factors (one column each):

``femininity``
    +1 Women/Girls, -1 Men/Boys, 0 Unisex.
``kids``
    1 for Boys/Girls/Unisex Kids, else 0.
``price``
    z-score of log(price) within the catalogue, clipped to [-2.5, 2.5].
one column per category
    1 for the item's category (given in the CSV, else derived from keywords of the product name).

Segment vectors put +1 (female) / -1 (male) on ``femininity`` so that an item for the shopper's gender
gains 1 and one for the other gender loses 1 (unisex: 0), a kids' weight by age bracket (strongly
positive under 13, negative for adults), a price leaning (teens and young adults toward cheaper items,
35-54 toward dearer ones) and small per-age category leanings (e.g. sportswear and casual wear for
13-24, formal wear for 25-54, ethnic wear rising with age), listed in ``CATEGORY_LEANINGS``. The generic
vector is gender-neutral and mildly against kids' items. The popularity prior is 0 for every item.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from device.recommend.data import SEGMENT_LABELS, DataError
from device.recommend.factors import FactorModel
from smartshelf.core.types import AGE_BRACKETS

logger = logging.getLogger(__name__)

#: Category keyword rules, checked in this order against the lower-cased product name (whole words).
CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "home",
        (
            "curtain",
            "curtains",
            "cushion",
            "covers",
            "cover",
            "mug",
            "placemat",
            "placemats",
            "carpet",
            "rug",
            "lamp",
            "bowls",
            "mugs",
            "jar",
            "jars",
            "frame",
            "cups",
            "kulladhs",
            "khullad",
            "bedsheet",
            "dohar",
            "towel",
            "planter",
            "showpiece",
            "shelf",
            "bin",
            "pot",
            "cup",
        ),
    ),
    (
        "beauty",
        (
            "perfume",
            "perfumes",
            "deodorant",
            "lipstick",
            "kajal",
            "eyeliner",
            "nail",
            "foundation",
            "fragrance",
            "eau",
            "serum",
            "moisturiser",
            "shampoo",
            "edt",
            "edp",
            "ml",
            "lip",
            "concealer",
            "eyeshadow",
            "face wash",
            "mascara",
        ),
    ),
    (
        "jewellery",
        (
            "earrings",
            "necklace",
            "jhumkas",
            "ring",
            "bracelet",
            "studs",
            "chandbalis",
            "bangles",
            "tikka",
            "pendant",
            "anklet",
            "jewellery",
            "jewellery set",
            "mangalsutra",
            "rakhi",
            "bangle",
            "nosepin",
            "tika",
            "jewelry",
            "maang tikka",
        ),
    ),
    (
        "footwear",
        (
            "shoes",
            "sneakers",
            "sandals",
            "heels",
            "flats",
            "flip-flops",
            "boots",
            "loafers",
            "slippers",
            "derbys",
            "brogues",
            "slip-ons",
            "mules",
            "wedges",
            "ballerinas",
            "pumps",
            "clogs",
            "mojaris",
            "oxfords",
        ),
    ),
    (
        "bags",
        (
            "bag",
            "backpack",
            "handbag",
            "trolley",
            "wallet",
            "clutch",
            "tote",
            "pouch",
            "duffle",
            "laptop sleeve",
        ),
    ),
    (
        "innerwear",
        (
            "bra",
            "bras",
            "briefs",
            "boxers",
            "trunks",
            "innerwear",
            "lingerie",
            "camisole",
            "nightdress",
            "night suit",
            "pyjamas",
            "pyjama",
            "lounge",
            "thermal",
            "socks",
            "shapewear",
            "panties",
            "brief",
            "hipster",
            "hipsters",
            "bikini",
        ),
    ),
    (
        "ethnic",
        (
            "kurta",
            "kurti",
            "kurtas",
            "saree",
            "sari",
            "lehenga",
            "salwar",
            "churidar",
            "dupatta",
            "sherwani",
            "nehru",
            "anarkali",
            "dhoti",
            "bandhgala",
            "palazzos",
            "patiala",
            "ethnic",
            "choli",
            "kurta set",
        ),
    ),
    ("formal", ("suit", "blazer", "formal", "waistcoat", "tie", "cufflinks", "tuxedo")),
    (
        "sportswear",
        (
            "sports",
            "track",
            "tracksuit",
            "running",
            "training",
            "gym",
            "joggers",
            "jogger",
            "yoga",
            "dri-fit",
            "athleisure",
            "cycling",
            "tights",
            "trackpants",
            "track pants",
        ),
    ),
    (
        "accessories",
        (
            "watch",
            "sunglasses",
            "belt",
            "cap",
            "scarf",
            "stole",
            "beanie",
            "gloves",
            "muffler",
            "umbrella",
            "hat",
        ),
    ),
    (
        "casual",
        (
            "t-shirt",
            "t-shirts",
            "tshirt",
            "jeans",
            "shirt",
            "top",
            "dress",
            "shorts",
            "skirt",
            "sweatshirt",
            "jacket",
            "hoodie",
            "sweater",
            "trousers",
            "chinos",
            "leggings",
            "jeggings",
            "jumpsuit",
            "shrug",
            "cardigan",
            "tunic",
            "pants",
            "cargos",
            "playsuit",
            "culottes",
            "pullover",
            "bomber",
            "treggings",
            "co-ords",
            "capris",
            "dungarees",
        ),
    ),
)
CATEGORIES: tuple[str, ...] = tuple(name for name, _ in CATEGORY_KEYWORDS) + ("other",)

#: Per age bracket: (kids weight, price leaning).
AGE_LEANINGS: Mapping[str, tuple[float, float]] = {
    "0-12": (1.5, 0.0),
    "13-17": (0.2, -0.3),
    "18-24": (-0.8, -0.25),
    "25-34": (-0.3, 0.1),
    "35-44": (-0.3, 0.25),
    "45-54": (-0.6, 0.25),
    "55-64": (-0.8, 0.15),
    "65+": (-0.8, 0.0),
}

#: Per category, the leaning of each age bracket (order of AGE_BRACKETS). Small next to the gender term.
CATEGORY_LEANINGS: Mapping[str, tuple[float, ...]] = {
    #              0-12  13-17 18-24 25-34 35-44 45-54 55-64  65+
    "ethnic": (0.0, 0.0, 0.0, 0.1, 0.25, 0.3, 0.35, 0.35),
    "formal": (-0.3, -0.2, 0.0, 0.2, 0.25, 0.2, 0.1, 0.0),
    "sportswear": (0.1, 0.3, 0.3, 0.15, 0.05, -0.1, -0.1, -0.1),
    "casual": (0.2, 0.3, 0.3, 0.15, 0.0, -0.1, -0.1, -0.1),
    "footwear": (0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05),
    "bags": (-0.2, 0.0, 0.05, 0.1, 0.1, 0.1, 0.05, 0.0),
    "jewellery": (-0.2, 0.0, 0.1, 0.1, 0.1, 0.1, 0.05, 0.0),
    "accessories": (-0.1, 0.05, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05),
    "innerwear": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "beauty": (-0.4, 0.05, 0.1, 0.1, 0.1, 0.05, 0.0, 0.0),
    "home": (-0.4, -0.3, -0.1, 0.1, 0.15, 0.15, 0.15, 0.15),
    "other": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}

_GENDER_CODES: Mapping[str, tuple[float, float]] = {  # (femininity, kids)
    "women": (1.0, 0.0),
    "woman": (1.0, 0.0),
    "female": (1.0, 0.0),
    "f": (1.0, 0.0),
    "men": (-1.0, 0.0),
    "man": (-1.0, 0.0),
    "male": (-1.0, 0.0),
    "m": (-1.0, 0.0),
    "girls": (1.0, 1.0),
    "boys": (-1.0, 1.0),
    "unisex kids": (0.0, 1.0),
    "kids": (0.0, 1.0),
    "unisex": (0.0, 0.0),
    "": (0.0, 0.0),
}

_COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = {
    "sku": ("sku", "item", "product_id", "productid", "id"),
    "name": ("name", "product_name", "productname"),
    "gender": ("gender", "target_gender"),
    "category": ("category",),
    "price": ("price", "price_inr", "price (inr)"),
}


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    name: str
    gender: str
    category: str
    price: float


def category_of(name: str) -> str:
    """Category from product-name keywords (first matching rule in CATEGORY_KEYWORDS), else 'other'."""
    text = " " + re.sub(r"[^a-z0-9\-]+", " ", name.lower()) + " "
    for category, words in CATEGORY_KEYWORDS:
        if any(f" {w} " in text for w in words):
            return category
    return "other"


def read_catalog(path: str | Path) -> list[CatalogItem]:
    """Read a catalogue CSV: ``sku,name,gender,price[,category,...]`` or the raw Myntra columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"catalogue file {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = {f.strip().lower(): f for f in (reader.fieldnames or []) if f}
        columns: dict[str, str] = {}
        for key, aliases in _COLUMN_ALIASES.items():
            for alias in aliases:
                if alias in header:
                    columns[key] = header[alias]
                    break
        missing = [k for k in ("sku", "name", "price") if k not in columns]
        if missing:
            raise DataError(
                f"catalogue {path} lacks column(s) {', '.join(missing)} (found {', '.join(header)})"
            )
        items: list[CatalogItem] = []
        seen: set[str] = set()
        for line_no, row in enumerate(reader, 2):
            where = f"{path} line {line_no}"
            sku = (row.get(columns["sku"]) or "").strip()
            if not sku:
                raise DataError(f"{where}: empty sku")
            if sku in seen:
                raise DataError(f"{where}: duplicate sku {sku!r}")
            seen.add(sku)
            name = (row.get(columns["name"]) or "").strip()
            gender = (row.get(columns["gender"]) or "").strip().lower() if "gender" in columns else ""
            if gender not in _GENDER_CODES:
                raise DataError(
                    f"{where}: gender {gender!r} is not one of Women, Men, Unisex, Girls, Boys, Unisex Kids"
                )
            price_text = (row.get(columns["price"]) or "").strip()
            try:
                price = float(price_text)
            except ValueError:
                raise DataError(f"{where}: price {price_text!r} is not a number") from None
            if not math.isfinite(price) or price <= 0:
                raise DataError(f"{where}: price {price_text!r} must be positive")
            category = (row.get(columns["category"]) or "").strip().lower() if "category" in columns else ""
            if category and category not in CATEGORIES:
                raise DataError(f"{where}: category {category!r} is not one of {', '.join(CATEGORIES)}")
            items.append(CatalogItem(sku, name, gender, category or category_of(name), price))
    if not items:
        raise DataError(f"catalogue {path} has no products")
    return items


def build_prior(items: Sequence[CatalogItem], *, source: str = "") -> FactorModel:
    """The heuristic prior model for a catalogue (see the module docstring)."""
    n_cat = len(CATEGORIES)
    k = 3 + n_cat
    factors = np.zeros((len(items), k), dtype=np.float64)
    log_price = np.log(np.array([it.price for it in items]))
    spread = log_price.std()
    price_z = (log_price - log_price.mean()) / spread if spread > 1e-9 else np.zeros_like(log_price)
    for row, item in enumerate(items):
        femininity, kids = _GENDER_CODES[item.gender]
        factors[row, 0] = femininity
        factors[row, 1] = kids
        factors[row, 2] = float(np.clip(price_z[row], -2.5, 2.5))
        factors[row, 3 + CATEGORIES.index(item.category)] = 1.0
    vectors = np.zeros((len(SEGMENT_LABELS), k))
    for s, label in enumerate(SEGMENT_LABELS):
        gender, bracket = label.split("/", 1)
        b = AGE_BRACKETS.index(bracket)
        kids_w, price_w = AGE_LEANINGS[bracket]
        vectors[s, 0] = 1.0 if gender == "female" else -1.0
        vectors[s, 1] = kids_w
        vectors[s, 2] = price_w
        for c, category in enumerate(CATEGORIES):
            vectors[s, 3 + c] = CATEGORY_LEANINGS[category][b]
    global_vector = np.zeros(k)
    global_vector[1] = -0.5
    counts = {c: sum(1 for it in items if it.category == c) for c in CATEGORIES}
    metadata = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source or "catalogue",
        "method": "catalogue-prior",
        "rank": k,
        "dimensions": ["femininity", "kids", "log_price_z"] + [f"category:{c}" for c in CATEGORIES],
        "n_items": len(items),
        "n_users": 0,
        "categories": {c: n for c, n in counts.items() if n},
        "metrics": {},
        "note": "hand-set heuristics from catalogue attributes; no sales data",
    }
    return FactorModel(
        item_ids=tuple(it.sku for it in items),
        item_factors=factors.astype(np.float32),
        segment_ids=SEGMENT_LABELS,
        segment_vectors=vectors.astype(np.float32),
        global_vector=global_vector.astype(np.float32),
        popularity=np.zeros(len(items), dtype=np.float32),
        metadata=metadata,
    )


#: Weight of "what sells" in the prior: the best seller's popularity (others by log of units sold).
SOLD_WEIGHT = 0.4


def prior_from_products(
    products: Sequence[Any], *, sold: Mapping[str, int] | None = None
) -> FactorModel | None:
    """The catalogue prior of a store's own products, keyed by **sku** (``device.inventory.Product``-like
    objects with ``sku``, ``name``, ``gender``, ``category``, ``price`` in minor units and optionally
    ``sold``); None if there are none. Every product counts, whatever ids it has.

    Units sold (``sold`` mapping, else the products' ``sold`` attribute) add a popularity of up to
    :data:`SOLD_WEIGHT` (log of units sold, relative to the best seller): what sells comes first among
    otherwise equal products. The device uses it in memory; nothing is written.
    """
    items: list[CatalogItem] = []
    counts: list[int] = []
    seen: set[str] = set()
    for p in products:
        if not p.sku or p.sku in seen:
            continue
        seen.add(p.sku)
        items.append(lenient_item(p.sku, p.name, p.gender or "", p.category or "", float(p.price or 0) / 100.0))
        n = sold.get(p.sku, 0) if sold is not None else getattr(p, "sold", 0)
        counts.append(max(0, int(n or 0)))
    if not items:
        return None
    return with_sold(build_prior(items, source="store.json (in memory)"), counts)


def with_sold(model: FactorModel, counts: Sequence[int]) -> FactorModel:
    """The prior with "what sells" as popularity: up to :data:`SOLD_WEIGHT` by log of units sold."""
    best = max(counts, default=0)
    if best <= 0:
        return model
    popularity = SOLD_WEIGHT * np.log1p(np.array(counts, dtype=np.float64)) / np.log1p(best)
    meta = dict(model.metadata)
    meta["sold_units"] = int(sum(counts))
    return FactorModel(model.item_ids, model.item_factors, model.segment_ids, model.segment_vectors,
                       model.global_vector, popularity.astype(np.float32), metadata=meta)


def lenient_item(item: str, name: str = "", gender: str = "", category: str = "", price: float = 0.0) -> CatalogItem:
    """A catalogue item from what a store recorded (free-text category, gender female/male/unisex or
    empty, price in major units, possibly 0): unknown values fall back to unisex / keywords / 1."""
    g = (gender or "unisex").strip().lower()
    c = (category or "").strip().lower()
    return CatalogItem(
        sku=item,
        name=name or item,
        gender=g if g in _GENDER_CODES else "unisex",
        category=c if c in CATEGORIES else category_of(f"{c} {name}"),
        price=price if math.isfinite(price) and price >= 1.0 else 1.0,
    )


def read_items_csv(path: str | Path) -> tuple[list[CatalogItem], list[int]]:
    """The full item list written by ``smartshelf terminal export`` (``items.csv``:
    ``item,sku,name,gender,category,price,currency,sold``; price in major units) -> (items, units sold)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"items file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    items: list[CatalogItem] = []
    sold: list[int] = []
    seen: set[str] = set()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if "item" not in (reader.fieldnames or []):
        raise DataError(f"items file {path} needs an 'item' column (found {', '.join(reader.fieldnames or [])})")
    for line_no, row in enumerate(reader, 2):
        item = (row.get("item") or "").strip()
        if not item:
            raise DataError(f"items file {path} line {line_no}: empty item")
        if item in seen:
            continue
        seen.add(item)
        try:
            price = float((row.get("price") or "0").strip() or 0)
            units = int((row.get("sold") or "0").strip() or 0)
        except ValueError:
            raise DataError(
                f"items file {path} line {line_no}: price {row.get('price')!r} or sold {row.get('sold')!r} "
                "is not a number"
            ) from None
        items.append(lenient_item(item, (row.get("name") or "").strip(), row.get("gender") or "",
                                  row.get("category") or "", price))
        sold.append(max(0, units))
    return items, sold
