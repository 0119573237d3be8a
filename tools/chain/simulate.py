"""A chain simulator: stores x shelves x segments x items, written as the head office's Parquet tables.

Sized from real data: the segment mix is MovieLens' (the share of each gender x age bracket among its
users, minors left out as the shelves leave them out) and the catalogue is Myntra's (its product ids
and target gender). Tastes are synthetic with a known structure: a rank-``rank`` latent space where
each segment has a chain-wide vector and each store a deviation of it (``store_spread``), items have
a Zipf popularity and a pull toward their target gender. Each store stocks its own random part of the
catalogue under its own item ids (the catalogue map says which chain item each is).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.recommend.data import SEGMENT_LABELS, load_movielens

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class ChainSpec:
    interactions: int = 100_000
    stores: int = 20
    shelves_per_store: int = 4
    items_per_store: int = 2_000
    rank: int = 8
    store_spread: float = 0.5
    seed: int = 0


def movielens_segment_mix(directory: Path | None = None) -> np.ndarray:
    """Share of each of the 16 segments among MovieLens' adult users (minors' segments 0)."""
    data = load_movielens(directory or DATA / "movielens-100k")
    seg = data.user_segment[data.user_segment >= 0]
    counts = np.bincount(seg, minlength=len(SEGMENT_LABELS)).astype(float)
    for i, label in enumerate(SEGMENT_LABELS):
        if label.endswith(("0-12", "13-17")):
            counts[i] = 0.0
    return counts / counts.sum()


def myntra_catalogue(path: Path | None = None) -> tuple[list[str], np.ndarray]:
    """(product ids, target gender: 0 women, 1 men, 0.5 unisex/other) of the Myntra catalogue."""
    path = path or DATA / "myntra" / "myntra_products_catalog.csv"
    ids, gender = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row.get("Product_ID"):
                continue
            ids.append(row["Product_ID"].strip())
            g = (row.get("Gender") or "").strip().lower()
            gender.append(0.0 if g in ("women", "girls") else 1.0 if g in ("men", "boys") else 0.5)
    return ids, np.array(gender)


def simulate(spec: ChainSpec, out_dir: Path) -> dict[str, object]:
    """Write ``interactions/store=*.parquet`` and ``catalogue_map.parquet`` under ``out_dir``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tools.chain.schema import arrow_schema, map_schema

    rng = np.random.default_rng(spec.seed)
    mix = movielens_segment_mix()
    chain_ids, target = myntra_catalogue()
    n_items = len(chain_ids)
    seg_gender = np.array([0.0 if s.startswith("female/") else 1.0 for s in SEGMENT_LABELS])
    item_f = rng.normal(size=(n_items, spec.rank))
    seg_v = rng.normal(size=(len(SEGMENT_LABELS), spec.rank))
    popularity = np.log(1.0 / np.arange(1, n_items + 1) ** 1.1)[rng.permutation(n_items)]
    # Gender pull: a woman's segment likes women's items more, unisex in between.
    gender_pull = -2.0 * np.abs(seg_gender[:, None] - target[None, :])
    out_dir = Path(out_dir)
    (out_dir / "interactions").mkdir(parents=True, exist_ok=True)
    per_store = np.full(spec.stores, spec.interactions // spec.stores)
    per_store[: spec.interactions - per_store.sum()] += 1
    map_rows: dict[str, list[str]] = {"store": [], "item": [], "chain_item": []}
    t0 = 1_700_000_000.0
    for s in range(spec.stores):
        store = f"store-{s:03d}"
        stocked = np.sort(rng.choice(n_items, size=min(spec.items_per_store, n_items), replace=False))
        own_ids = np.array([f"{store}-sku-{k:05d}" for k in range(stocked.size)])
        map_rows["store"] += [store] * stocked.size
        map_rows["item"] += own_ids.tolist()
        map_rows["chain_item"] += [chain_ids[i] for i in stocked]
        store_v = seg_v + spec.store_spread * rng.normal(size=seg_v.shape)
        logits = store_v @ item_f[stocked].T + popularity[stocked] + gender_pull[:, stocked]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        seg_counts = rng.multinomial(per_store[s], mix)
        segs, items = [], []
        for g in np.flatnonzero(seg_counts):
            segs.append(np.full(seg_counts[g], g))
            items.append(rng.choice(stocked.size, size=seg_counts[g], p=probs[g]))
        seg_idx = np.concatenate(segs) if segs else np.zeros(0, dtype=int)
        item_idx = np.concatenate(items) if items else np.zeros(0, dtype=int)
        n = seg_idx.size
        labels = np.array(SEGMENT_LABELS)
        table = pa.table({
            "store": pa.array([store] * n, pa.string()),
            "shelf": pa.array([f"shelf-{k}" for k in rng.integers(0, spec.shelves_per_store, n)], pa.string()),
            "segment": pa.array(labels[seg_idx].tolist(), pa.string()),
            "item": pa.array(own_ids[item_idx].tolist(), pa.string()),
            "time": pa.array(t0 + np.sort(rng.uniform(0, 90 * 86400, n)), pa.float64()),
            "outcome": pa.array(["bought"] * n, pa.string()),
        }, schema=arrow_schema())
        pq.write_table(table, out_dir / "interactions" / f"store={store}.parquet")
    pq.write_table(pa.table(map_rows, schema=map_schema()), out_dir / "catalogue_map.parquet")
    logger.info("simulated %d interactions in %d stores under %s", spec.interactions, spec.stores, out_dir)
    return {"interactions": int(spec.interactions), "stores": spec.stores, "items": n_items,
            "items_per_store": spec.items_per_store, "segment_mix": dict(zip(SEGMENT_LABELS, mix.round(4).tolist()))}
