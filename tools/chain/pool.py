"""Why pool: NDCG@10 of per-store models against the pooled chain model, on held-out users of each store.

    smartshelf chain pool --stores 8 --seed 0 --out docs/measurements/chain-pool.json

MovieLens 100K users are dealt to ``stores`` simulated stores of unequal size (Dirichlet shares, so some
stores have little data). Within each store, ``test_fraction`` of its users are held out. What a store
learns from is what shelves see: (segment, item) for every like (rating >= 4) of its training users, no
person. Scored, on every held-out user of every store (their segment's top 10 against their likes):

- **per-store**: each store trains alone with the shelf's own trainer (``device.recommend.train``,
  segment level, rank and shrink fixed);
- **per-store segment popularity**: each store's most-liked items per segment (the usual baseline);
- **chain, pooled + shrinkage**: :func:`tools.chain.trainer.train_chain` on Spark over every store's
  training data, each store's segment vectors shrunk toward the chain's by its evidence;
- **chain, pooled, no store term**: the chain's segment vectors for every store (shrink -> infinity).

The held-out users never reach any trainer; nothing is tuned on them.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from device.recommend.data import SEGMENT_LABELS, Interactions, load_movielens
from device.recommend.metrics import SparseRelevance, precision_ndcg, top_n

logger = logging.getLogger(__name__)


def deal_users(n_users: int, stores: int, seed: int, concentration: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(np.full(stores, concentration))
    return rng.choice(stores, size=n_users, p=shares)


def _segment_level(data: Interactions, user_rows: np.ndarray) -> Interactions:
    """The likes of ``user_rows`` as segment-level data (users = the 16 segments)."""
    sub = data.subset_users(user_rows)
    liked = sub.liked & (sub.user_segment[sub.users] >= 0)
    return Interactions(
        user_ids=SEGMENT_LABELS, item_ids=data.item_ids, users=sub.user_segment[sub.users[liked]],
        items=sub.items[liked], values=np.ones(int(liked.sum()), dtype=np.float32), times=sub.times[liked],
        user_segment=np.arange(len(SEGMENT_LABELS)), like_threshold=None, source=data.source,
    )


def _ndcg(scores: np.ndarray, test: Interactions) -> tuple[float, int]:
    """NDCG@10 over the test users with a known segment and at least one like."""
    known = test.user_segment >= 0
    rows = np.flatnonzero(known)
    liked = test.liked
    rel = SparseRelevance(test.users[liked], test.items[liked], test.n_users, test.n_items)[rows]
    lists = top_n(scores, 10)[test.user_segment[rows]]
    _, ndcg, counted = precision_ndcg(lists, rel, 10)
    return ndcg, counted


def evaluate(*, stores: int = 8, seed: int = 0, test_fraction: float = 0.25, rank: int = 8, shrink: float = 50.0,
             spark: Any = None, movielens: Path | None = None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from device.recommend.train import TrainParams, build_model
    from tools.chain.schema import arrow_schema, map_schema
    from tools.chain.simulate import DATA
    from tools.chain.trainer import ChainParams, spark_session, train_chain
    from tools.recommender.evaluate import segment_popularity

    data = load_movielens(movielens or DATA / "movielens-100k")
    data = replace(data, like_threshold=4.0)
    store_of = deal_users(data.n_users, stores, seed)
    rng = np.random.default_rng(seed + 1)
    splits = {}
    for s in range(stores):
        users = np.flatnonzero(store_of == s)
        rng.shuffle(users)
        n_test = max(1, round(users.size * test_fraction))
        splits[s] = (np.sort(users[n_test:]), np.sort(users[:n_test]))
    own_spark = spark is None
    spark = spark or spark_session("local[*]")
    results: dict[str, list[tuple[float, int, int]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="chain-pool-") as tmp:
            root = Path(tmp)
            (root / "interactions").mkdir()
            maps: dict[str, list[str]] = {"store": [], "item": [], "chain_item": []}
            for s, (train_rows, _) in splits.items():
                seg = _segment_level(data, train_rows)
                store = f"store-{s}"
                items = np.array(data.item_ids)
                pq.write_table(pa.table({
                    "store": [store] * seg.users.size, "shelf": ["shelf-0"] * seg.users.size,
                    "segment": np.array(SEGMENT_LABELS)[seg.users].tolist(),
                    "item": [f"{store}:{i}" for i in items[seg.items]], "time": seg.times.astype(float),
                    "outcome": ["bought"] * seg.users.size,
                }, schema=arrow_schema()), root / "interactions" / f"{store}.parquet")
                maps["store"] += [store] * items.size
                maps["item"] += [f"{store}:{i}" for i in items]
                maps["chain_item"] += items.tolist()
            pq.write_table(pa.table(maps, schema=map_schema()), root / "map.parquet")
            chain = train_chain(spark, str(root / "interactions"), str(root / "map.parquet"),
                                ChainParams(rank=rank, shrink=shrink, seed=seed))
        for s, (train_rows, test_rows) in splits.items():
            store = f"store-{s}"
            test = data.subset_users(test_rows)
            seg_train = _segment_level(data, train_rows)
            evidence = int(seg_train.users.size)
            per_store = build_model(seg_train, TrainParams(rank=rank, shrink=10.0), level="segment")
            pop = segment_popularity(data.subset_users(train_rows))
            pooled = chain.store_model(store)
            order = np.array([pooled.item_index[f"{store}:{i}"] for i in data.item_ids])
            pooled_scores = np.stack([pooled.scores(label) for label in SEGMENT_LABELS])[:, order]
            col = {c: j for j, c in enumerate(chain.item_ids)}
            rows = np.array([col.get(i, 0) for i in data.item_ids])
            chain_only = chain.chain_vectors @ chain.item_factors[rows].T + chain.chain_popularity[rows]
            unseen = np.array([i not in col for i in data.item_ids])
            chain_only[:, unseen] = -np.inf
            for name, scores in (
                ("per-store (shelf trainer)", np.stack([per_store.scores(label) for label in SEGMENT_LABELS])),
                ("per-store segment popularity", pop),
                ("chain pooled + per-store shrinkage (Spark ALS)", pooled_scores),
                ("chain pooled, no store term", chain_only),
            ):
                ndcg, counted = _ndcg(scores, test)
                results.setdefault(name, []).append((ndcg, counted, evidence))
    finally:
        if own_spark:
            spark.stop()
    table = {}
    for name, per in results.items():
        weights = np.array([c for _, c, _ in per], dtype=float)
        values = np.array([v for v, _, _ in per])
        small = np.array([e for _, _, e in per]) < np.median([e for _, _, e in per])
        table[name] = {
            "ndcg@10": round(float(values @ weights / weights.sum()), 4),
            "ndcg@10_smaller_half_of_stores": round(float(values[small] @ weights[small] / max(weights[small].sum(), 1)), 4),
            "per_store": [round(float(v), 4) for v in values],
        }
    return {
        "stores": stores, "seed": seed, "test_fraction": test_fraction, "rank": rank, "shrink": shrink,
        "store_users": [int((store_of == s).sum()) for s in range(stores)],
        "store_likes_for_training": [e for _, _, e in next(iter(results.values()))],
        "test_users_counted": int(sum(c for _, c, _ in next(iter(results.values())))),
        "methods": table,
    }
