"""The chain trainer on Apache Spark: every store's interactions in, one signed factor file per store out.

    smartshelf chain train --interactions DIR --map catalogue_map.parquet --key head-office.key --out DIR
    spark-submit --master spark://... tools/chain/trainer.py --interactions hdfs://... (same options)

Method (Spark MLlib's ALS, implicit feedback):

1. Each store's items are mapped to chain items (the catalogue map); unmapped rows are counted and left out.
2. Evidence per (store, segment, chain item) = sum of the outcome weights (a sale 1, a pick only shown 0).
3. ALS with ``implicitPrefs`` factorises a matrix whose rows are every (store, segment) *and* every chain
   segment (the same evidence summed over stores) and one "everyone" row, columns the chain's items. One
   fit, so every row lives in the same item space and the item factors learn from all stores.
4. Each store's segment vector is shrunk toward the chain's: ``v = (n u_store + lambda u_chain) / (n + lambda)``
   with ``n`` the store's evidence for that segment; a store with little data gets the chain's vector, one
   with a lot keeps its own.
5. Per store: the factor file of its own catalogue (its own item ids, so its inventory's ``item_id`` fields
   need no change), signed with the head office's Ed25519 key, in the format ``device.recommend.factors``
   loads. ``popularity`` is 0: the "everyone" row is the global vector (non-personalised picks).

Why ALS and not a distributed SVD: the data is implicit (counts of sales, no explicit dislikes) and sparse;
ALS with implicit preferences weights what was bought by its confidence and treats the rest as weak
negatives, its cost grows with the non-zeros (not with stores x segments x items) and MLlib runs it
blocked across the cluster. A distributed SVD (``RowMatrix.computeSVD``) factorises the matrix as given,
zeros included, with no confidence weighting, which is the single-shelf trainer's centred-share SVD
on one machine but not what a sparse chain-sized matrix wants.
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
EVERYONE = "everyone"


@dataclass(frozen=True)
class ChainParams:
    rank: int = 16
    reg: float = 0.05
    alpha: float = 10.0
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
    return spark


@dataclass
class ChainModel:
    item_ids: list[str]                      # chain item ids, the column order of item_factors
    item_factors: np.ndarray                 # (items, k)
    store_vectors: dict[str, np.ndarray]     # store -> (16, k), already shrunk
    chain_vectors: np.ndarray                # (16, k)
    global_vector: np.ndarray                # (k,)
    evidence: dict[str, np.ndarray]          # store -> (16,) weighted interactions
    catalogues: dict[str, list[tuple[str, str]]]  # store -> [(own item id, chain item id)]
    stats: dict[str, Any]

    def store_model(self, store: str, *, source: str = "") -> FactorModel:
        index = {c: i for i, c in enumerate(self.item_ids)}
        pairs = sorted(self.catalogues[store])
        k = self.item_factors.shape[1]
        # An item nobody in the chain bought yet has no factors: a zero vector (score 0, below what sells).
        factors = np.zeros((len(pairs), k))
        known = [j for j, (_, chain) in enumerate(pairs) if chain in index]
        factors[known] = self.item_factors[[index[pairs[j][1]] for j in known]]
        return FactorModel(
            item_ids=tuple(own for own, _ in pairs),
            item_factors=factors.astype(np.float32),
            segment_ids=SEGMENT_LABELS,
            segment_vectors=self.store_vectors.get(store, self.chain_vectors).astype(np.float32),
            global_vector=self.global_vector.astype(np.float32),
            popularity=np.zeros(len(pairs), dtype=np.float32),
            metadata={
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": source,
                "method": "chain-als-implicit-shrunk",
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
    everyone = (per_store.groupBy("chain_item").agg(F.sum("w").alias("w"))
                .withColumn("store", F.lit(CHAIN)).withColumn("segment", F.lit(EVERYONE)))
    cols = ["store", "segment", "chain_item", "w"]
    matrix = per_store.select(cols).unionByName(per_chain.select(cols)).unionByName(everyone.select(cols))
    # Small dimensions (rows: stores x 16 + 17; items: the chain's catalogue) are indexed on the driver.
    row_keys = sorted({(r.store, r.segment) for r in matrix.select("store", "segment").distinct().collect()})
    item_ids = sorted(r.chain_item for r in matrix.select("chain_item").distinct().collect())
    row_index = spark.createDataFrame([(s, g, i) for i, (s, g) in enumerate(row_keys)], ["store", "segment", "row"])
    item_index = spark.createDataFrame([(c, i) for i, c in enumerate(item_ids)], ["chain_item", "col"])
    indexed = matrix.join(F.broadcast(row_index), ["store", "segment"]).join(F.broadcast(item_index), "chain_item")
    als = ALS(rank=params.rank, maxIter=params.iterations, regParam=params.reg, alpha=params.alpha,
              implicitPrefs=True, userCol="row", itemCol="col", ratingCol="w", seed=params.seed,
              coldStartStrategy="drop", nonnegative=False, numUserBlocks=params.blocks,
              numItemBlocks=params.blocks)
    fit_started = time.perf_counter()
    model = als.fit(indexed)
    item_factors = np.zeros((len(item_ids), params.rank))
    for r in model.itemFactors.collect():
        item_factors[r.id] = r.features
    user_factors = np.zeros((len(row_keys), params.rank))
    for r in model.userFactors.collect():
        user_factors[r.id] = r.features
    fit_seconds = time.perf_counter() - fit_started
    evidence_rows = per_store.groupBy("store", "segment").agg(F.sum("w").alias("n")).collect()
    catalogue_rows = cmap.select("store", "item", "chain_item").collect()
    rows.unpersist()

    key_row = {key: i for i, key in enumerate(row_keys)}
    seg_pos = {s: i for i, s in enumerate(SEGMENT_LABELS)}
    k = params.rank
    chain_vectors = np.zeros((len(SEGMENT_LABELS), k))
    for s, g in enumerate(SEGMENT_LABELS):
        if (CHAIN, g) in key_row:
            chain_vectors[s] = user_factors[key_row[(CHAIN, g)]]
    global_vector = user_factors[key_row[(CHAIN, EVERYONE)]] if (CHAIN, EVERYONE) in key_row else np.zeros(k)
    for s, g in enumerate(SEGMENT_LABELS):  # a segment nobody in the chain bought for: the global vector
        if (CHAIN, g) not in key_row:
            chain_vectors[s] = global_vector
    evidence: dict[str, np.ndarray] = {}
    for r in evidence_rows:
        evidence.setdefault(r.store, np.zeros(len(SEGMENT_LABELS)))[seg_pos[r.segment]] = float(r.n)
    catalogues: dict[str, list[tuple[str, str]]] = {}
    for r in catalogue_rows:
        catalogues.setdefault(r.store, []).append((r.item, r.chain_item))
    store_vectors: dict[str, np.ndarray] = {}
    for store in catalogues:
        n = evidence.get(store, np.zeros(len(SEGMENT_LABELS)))
        own = np.array([user_factors[key_row[(store, g)]] if (store, g) in key_row else chain_vectors[s]
                        for s, g in enumerate(SEGMENT_LABELS)])
        share = (n / (n + params.shrink))[:, None]
        store_vectors[store] = share * own + (1 - share) * chain_vectors
    stats = {
        "params": asdict(params),
        "interactions": int(n_rows),
        "unmapped_interactions": int(n_unmapped),
        "stores": len(catalogues),
        "chain_items": len(item_ids),
        "matrix_rows": len(row_keys),
        "fit_seconds": round(fit_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    logger.info("chain model: %s", json.dumps(stats))
    return ChainModel(item_ids, item_factors, store_vectors, chain_vectors, global_vector, evidence, catalogues, stats)


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
