"""The chain trainer on Apache Spark: every store's interactions in, one signed factor file per store out.

    smartshelf chain train --interactions DIR --map catalogue_map.parquet --key head-office.key --out DIR
    spark-submit --master spark://... tools/chain/trainer.py --interactions hdfs://... (same options)

Method (Spark MLlib's ALS on the centred purchase shares):

1. Each store's items are mapped to chain items (the catalogue map); unmapped rows are counted and left out.
2. Evidence per (store, segment, chain item) = sum of the outcome weights (a sale 1, a pick only shown 0);
   the chain's rows are the same summed over stores.
3. Every row's purchase share (scaled to mean 1 over the chain's items) minus the chain's share of the item
   is one cell of a (stores x 16 + 16) x items matrix, bought or not. ALS (explicit, small ``regParam``)
   fits it at rank k: the same quantity the shelf's own segment-level trainer factorises with an SVD on one
   machine (``device.recommend.train``), here distributed and for every store at once, so every row lives
   in one item space learned from all stores.
4. Each store's segment vector is shrunk toward the chain's: ``v = (n u_store + lambda u_chain) / (n + lambda)``
   with ``n`` the store's evidence for that segment; a store with little data gets the chain's vector, one
   with a lot keeps its own. Its popularity (its own purchase share) is shrunk toward the chain's alike.
5. Per store: the factor file of its own catalogue (its own item ids, so its inventory's ``item_id`` fields
   need no change), signed with the head office's Ed25519 key, in the format ``device.recommend.factors``
   loads; global vector 0, so non-personalised picks follow the (shrunk) popularity.

Why ALS and not a distributed SVD (``RowMatrix.computeSVD``): both fit the same low-rank model of the
centred matrix; ALS is MLlib's maintained, blocked factoriser in the DataFrame API (it reads the cells
as rows, partitions them by row and item blocks, and never needs the Gram matrix or a dense local copy),
and it keeps working when the matrix is too big to hold on one machine; computeSVD sits in the older
RDD API and gathers a k x n Gram-based problem at the driver. Tried first and measured worse:
ALS with ``implicitPrefs`` on the raw counts (NDCG@10 0.11-0.15 against 0.35 for per-store popularity in
``smartshelf chain pool``): implicit ALS turns every count into "bought at least once", and an aggregated
segment row has bought nearly every popular item, so the ranking signal (how much more) is lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from device.recommend.data import SEGMENT_LABELS
from device.recommend.factors import FactorModel

logger = logging.getLogger(__name__)

CHAIN = "__chain__"


@dataclass(frozen=True)
class ChainParams:
    rank: int = 16
    reg: float = 0.01
    iterations: int = 10
    shrink: float = 50.0
    """lambda: evidence (weighted interactions) at which a store's own vector and the chain's weigh equally."""
    seed: int = 0
    blocks: int = 10
    """ALS user and item blocks (MLlib's default 10); about the number of cores in local mode."""


def spark_session(master: str | None = "local[*]", app: str = "smartshelf-chain", *, shuffle_partitions: int = 8,
                  **conf: str) -> Any:
    """A SparkSession; ``master=None`` leaves it to spark-submit. Local sessions bind to loopback only."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            builder = (builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
                       .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                       .config("spark.sql.shuffle.partitions", str(shuffle_partitions)))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # py4j logs its shutdown at interpreter exit, after pytest or the CLI closed their streams
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return spark


@dataclass
class ChainModel:
    item_ids: list[str]                      # chain item ids, the column order of item_factors
    item_factors: np.ndarray                 # (items, k)
    store_vectors: dict[str, np.ndarray]     # store -> (16, k), already shrunk
    chain_vectors: np.ndarray                # (16, k)
    global_vector: np.ndarray                # (k,) zeros: generic picks follow popularity
    evidence: dict[str, np.ndarray]          # store -> (16,) weighted interactions
    catalogues: dict[str, list[tuple[str, str]]]  # store -> [(own item id, chain item id)]
    stats: dict[str, Any]
    store_popularity: dict[str, np.ndarray]  # store -> (items,) purchase share, shrunk toward the chain's
    chain_popularity: np.ndarray             # (items,) the chain's purchase share (mean 1)

    def store_model(self, store: str, *, source: str = "") -> FactorModel:
        index = {c: i for i, c in enumerate(self.item_ids)}
        pairs = sorted(self.catalogues[store])
        k = self.item_factors.shape[1]
        # An item nobody in the chain bought yet has no factors: a zero vector (score 0, below what sells).
        factors = np.zeros((len(pairs), k))
        popularity = np.zeros(len(pairs))
        known = [j for j, (_, chain) in enumerate(pairs) if chain in index]
        rows = [index[pairs[j][1]] for j in known]
        factors[known] = self.item_factors[rows]
        popularity[known] = self.store_popularity.get(store, self.chain_popularity)[rows]
        return FactorModel(
            item_ids=tuple(own for own, _ in pairs),
            item_factors=factors.astype(np.float32),
            segment_ids=SEGMENT_LABELS,
            segment_vectors=self.store_vectors.get(store, self.chain_vectors).astype(np.float32),
            global_vector=self.global_vector.astype(np.float32),
            popularity=popularity.astype(np.float32),
            metadata={
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": source,
                "method": "chain-als-centred-shares-shrunk",
                "rank": k,
                "store": store,
                "params": self.stats.get("params"),
                "store_evidence": {s: round(float(n), 2) for s, n in zip(SEGMENT_LABELS, self.evidence.get(
                    store, np.zeros(len(SEGMENT_LABELS))))},
                "chain": {k2: v for k2, v in self.stats.items() if k2 != "params"},
                "score": "segment_vector . item_factors + popularity",
            },
        )


def train_chain(spark: Any, interactions: str | list[str], catalogue_map: str, params: ChainParams | None = None,
                *, weights: dict[str, float] | None = None) -> ChainModel:
    """Fit the chain model from Parquet interactions (a path, a folder or a list) and the catalogue map."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from tools.chain.schema import INTERACTION_COLUMNS, MAP_COLUMNS, OUTCOME_WEIGHTS

    params = params or ChainParams()
    weights = weights or OUTCOME_WEIGHTS
    started = time.perf_counter()
    paths = [interactions] if isinstance(interactions, str) else list(interactions)
    df = spark.read.parquet(*paths)
    missing = [c for c in INTERACTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"interactions {paths}: missing column(s) {', '.join(missing)}")
    cmap = spark.read.parquet(catalogue_map)
    missing = [c for c in MAP_COLUMNS if c not in cmap.columns]
    if missing:
        raise ValueError(f"catalogue map {catalogue_map}: missing column(s) {', '.join(missing)}")
    weight = F.lit(0.0)
    for outcome, w in weights.items():
        weight = F.when(F.col("outcome") == outcome, F.lit(float(w))).otherwise(weight)
    rows = (df.where(F.col("segment").isin(list(SEGMENT_LABELS)))
              .withColumn("w", weight).where(F.col("w") > 0)
              .join(cmap.select("store", "item", "chain_item"), on=["store", "item"], how="left"))
    rows = rows.cache()
    n_rows = rows.count()
    n_unmapped = rows.where(F.col("chain_item").isNull()).count()
    mapped = rows.where(F.col("chain_item").isNotNull())
    per_store = mapped.groupBy("store", "segment", "chain_item").agg(F.sum("w").alias("w"))
    per_chain = per_store.groupBy("segment", "chain_item").agg(F.sum("w").alias("w")).withColumn("store", F.lit(CHAIN))
    store_all = per_store.groupBy("store", "chain_item").agg(F.sum("w").alias("w"))
    cols = ["store", "segment", "chain_item", "w"]
    matrix = per_store.select(cols).unionByName(per_chain.select(cols)).cache()
    # Small dimensions (rows: stores x 16 + 16; items: the chain's catalogue) are indexed on the driver,
    # and so are the per-row totals and the per-store item totals (stores x items numbers).
    item_ids = sorted(r.chain_item for r in matrix.select("chain_item").distinct().collect())
    col_of = {c: i for i, c in enumerate(item_ids)}
    n_items = len(item_ids)
    store_counts: dict[str, np.ndarray] = {}
    for r in store_all.collect():
        store_counts.setdefault(r.store, np.zeros(n_items))[col_of[r.chain_item]] = float(r.w)
    chain_counts = np.sum(list(store_counts.values()), axis=0) if store_counts else np.zeros(n_items)
    glob = chain_counts / max(chain_counts.sum(), 1e-12) * n_items  # chain-wide share, mean 1 over items
    totals = {(r.store, r.segment): float(r.n)
              for r in matrix.groupBy("store", "segment").agg(F.sum("w").alias("n")).collect()}
    row_keys = sorted(totals)
    row_index = spark.createDataFrame([(st, g, i, totals[(st, g)]) for i, (st, g) in enumerate(row_keys)],
                                      ["store", "segment", "row", "total"])
    item_index = spark.createDataFrame([(c, i, float(glob[i])) for i, c in enumerate(item_ids)],
                                       ["chain_item", "col", "glob"])
    # Every (row, item) cell, bought or not: x = the row's purchase share (mean 1) minus the chain's.
    # Explicit ALS on the full centred matrix is a distributed low-rank fit of the same quantity the
    # shelf's own trainer factorises with an SVD (device.recommend.train, segment level).
    cells = (F.broadcast(row_index).crossJoin(F.broadcast(item_index))
             .join(matrix, ["store", "segment", "chain_item"], "left")
             .select("row", "col", (F.coalesce(F.col("w"), F.lit(0.0)) / F.col("total") * F.lit(float(n_items))
                                    - F.col("glob")).alias("x")))
    als = ALS(rank=params.rank, maxIter=params.iterations, regParam=params.reg, implicitPrefs=False,
              userCol="row", itemCol="col", ratingCol="x", seed=params.seed, coldStartStrategy="drop",
              nonnegative=False, numUserBlocks=params.blocks, numItemBlocks=params.blocks)
    fit_started = time.perf_counter()
    model = als.fit(cells)
    item_factors = np.zeros((n_items, params.rank))
    for r in model.itemFactors.collect():
        item_factors[r.id] = r.features
    user_factors = np.zeros((len(row_keys), params.rank))
    for r in model.userFactors.collect():
        user_factors[r.id] = r.features
    fit_seconds = time.perf_counter() - fit_started
    catalogue_rows = cmap.select("store", "item", "chain_item").collect()
    matrix.unpersist()
    rows.unpersist()

    key_row = {key: i for i, key in enumerate(row_keys)}
    k = params.rank
    chain_vectors = np.zeros((len(SEGMENT_LABELS), k))  # a segment nobody in the chain bought for: 0 (popularity)
    for s, g in enumerate(SEGMENT_LABELS):
        if (CHAIN, g) in key_row:
            chain_vectors[s] = user_factors[key_row[(CHAIN, g)]]
    evidence = {store: np.array([totals.get((store, g), 0.0) for g in SEGMENT_LABELS])
                for store in {st for st, _ in row_keys if st != CHAIN}}
    catalogues: dict[str, list[tuple[str, str]]] = {}
    for r in catalogue_rows:
        catalogues.setdefault(r.store, []).append((r.item, r.chain_item))
    store_vectors: dict[str, np.ndarray] = {}
    store_popularity: dict[str, np.ndarray] = {}
    for store in catalogues:
        n = evidence.get(store, np.zeros(len(SEGMENT_LABELS)))
        own = np.array([user_factors[key_row[(store, g)]] if (store, g) in key_row else chain_vectors[s]
                        for s, g in enumerate(SEGMENT_LABELS)])
        share = (n / (n + params.shrink))[:, None]
        store_vectors[store] = share * own + (1 - share) * chain_vectors
        # The store's own popularity, shrunk toward the chain's the same way.
        counts = store_counts.get(store, np.zeros(n_items))
        store_popularity[store] = (counts * n_items + params.shrink * glob) / (counts.sum() + params.shrink)
    stats = {
        "params": asdict(params),
        "interactions": int(n_rows),
        "unmapped_interactions": int(n_unmapped),
        "stores": len(catalogues),
        "chain_items": n_items,
        "matrix_rows": len(row_keys),
        "matrix_cells": len(row_keys) * n_items,
        "fit_seconds": round(fit_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    logger.info("chain model: %s", json.dumps(stats))
    return ChainModel(item_ids, item_factors, store_vectors, chain_vectors, np.zeros(k), evidence, catalogues,
                      stats, store_popularity, glob)


def write_store_files(model: ChainModel, out_dir: Path, key_path: Path | None, *, source: str = "") -> list[Path]:
    """One factor file per store, ``<out>/<store>.npz``, signed when ``key_path`` is given."""
    from tools.factor_signing import load_private_key, save_signed

    out_dir.mkdir(parents=True, exist_ok=True)
    key = load_private_key(key_path) if key_path else None
    written = []
    for store in sorted(model.catalogues):
        factor_model = model.store_model(store, source=source)
        path = out_dir / f"{store}.npz"
        if key is not None:
            save_signed(factor_model, key, path)
        else:
            factor_model.save(path)
        written.append(path)
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interactions", required=True, nargs="+", help="Parquet file(s) or folder(s) of interactions")
    p.add_argument("--map", required=True, help="catalogue map Parquet (store, item, chain_item)")
    p.add_argument("--out", required=True, type=Path, help="folder for <store>.npz")
    p.add_argument("--key", type=Path, help="Ed25519 private key (PEM) to sign the files (factors keygen)")
    p.add_argument("--master", default="local[*]", help="Spark master (default local[*]; 'submit' under spark-submit)")
    p.add_argument("--rank", type=int, default=ChainParams.rank)
    p.add_argument("--shrink", type=float, default=ChainParams.shrink)
    p.add_argument("--iterations", type=int, default=ChainParams.iterations)


def run_from_args(args: argparse.Namespace) -> int:
    spark = spark_session(None if args.master == "submit" else args.master)
    try:
        model = train_chain(spark, args.interactions, args.map,
                            ChainParams(rank=args.rank, shrink=args.shrink, iterations=args.iterations))
    finally:
        spark.stop()
    paths = write_store_files(model, args.out, args.key, source=",".join(args.interactions))
    print(json.dumps({**model.stats, "files": [str(p) for p in paths], "signed": bool(args.key)}))
    return 0


if __name__ == "__main__":  # spark-submit tools/chain/trainer.py --master submit ...
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run_from_args(parser.parse_args()))
