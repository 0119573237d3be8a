"""Chain scale: Spark training time against the single-machine trainer on the same simulated data.

    smartshelf chain scale --sizes 1e5,1e6,1e7 --out docs/measurements/chain-scale.json --plot docs/chain-scale.png

For each size the simulator writes the chain's Parquet tables; then, each in its own process (so the
peak memory is that run's):

- **spark**: :func:`tools.chain.trainer.train_chain` on ``local[*]`` (this machine's cores): read, map,
  aggregate, ALS, shrink; the session start is reported apart;
- **single**: the shelf's own trainer (``device.recommend.train.build_model``, segment level, the same
  rank) on the same interactions pooled over stores: read the Parquet into memory as an
  :class:`~device.recommend.data.Interactions`, then fit. It has no per-store model: it is what one
  machine does with the whole chain's data.

Reported: wall seconds and peak RSS of each, and rows/s.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_single(data_dir: Path, rank: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from device.recommend.data import SEGMENT_LABELS, Interactions
    from device.recommend.train import TrainParams, build_model

    started = time.perf_counter()
    table = pq.read_table(data_dir / "interactions", columns=["segment", "item", "time", "store"])
    cmap = pq.read_table(data_dir / "catalogue_map.parquet").to_pydict()
    to_chain = {(s, i): c for s, i, c in zip(cmap["store"], cmap["item"], cmap["chain_item"])}
    chain_ids = sorted(set(cmap["chain_item"]))
    chain_index = {c: n for n, c in enumerate(chain_ids)}
    # Store item -> chain index, through pyarrow's dictionary encoding (one lookup per distinct value).
    keys = np.char.add(np.char.add(table["store"].to_numpy(zero_copy_only=False).astype(str), "\x1f"),
                       table["item"].to_numpy(zero_copy_only=False).astype(str))
    uniq, inverse = np.unique(keys, return_inverse=True)
    lookup = np.array([chain_index[to_chain[tuple(u.split("\x1f"))]] for u in uniq], dtype=np.int64)
    items = lookup[inverse]
    seg_uniq, seg_inv = np.unique(table["segment"].to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
    seg_lookup = np.array([SEGMENT_LABELS.index(s) for s in seg_uniq], dtype=np.int64)
    users = seg_lookup[seg_inv]
    data = Interactions(
        user_ids=SEGMENT_LABELS, item_ids=tuple(chain_ids), users=users, items=items,
        values=np.ones(items.size, dtype=np.float32), times=table["time"].to_numpy(),
        user_segment=np.arange(len(SEGMENT_LABELS)), like_threshold=None, source=str(data_dir),
    )
    load_s = time.perf_counter() - started
    fit_started = time.perf_counter()
    build_model(data, TrainParams(rank=rank, shrink=10.0), level="segment")
    fit_s = time.perf_counter() - fit_started
    return {"trainer": "single", "load_s": round(load_s, 2), "fit_s": round(fit_s, 2),
            "total_s": round(time.perf_counter() - started, 2), "peak_rss_mib": round(_peak_rss_mib(), 1)}


def run_spark(data_dir: Path, rank: int, master: str) -> dict[str, Any]:
    from tools.chain.trainer import ChainParams, spark_session, train_chain

    t0 = time.perf_counter()
    spark = spark_session(master)
    session_s = time.perf_counter() - t0
    try:
        started = time.perf_counter()
        model = train_chain(spark, str(data_dir / "interactions"), str(data_dir / "catalogue_map.parquet"),
                            ChainParams(rank=rank))
        total = time.perf_counter() - started
    finally:
        spark.stop()
    return {"trainer": "spark", "master": master, "session_s": round(session_s, 2), "fit_s": model.stats["fit_seconds"],
            "total_s": round(total, 2), "driver_peak_rss_mib": round(_peak_rss_mib(), 1),
            "matrix_rows": model.stats["matrix_rows"], "chain_items": model.stats["chain_items"]}


def _child(kind: str, data_dir: Path, rank: int, master: str, timeout: float) -> dict[str, Any]:
    code = ("import json, sys; from pathlib import Path; from tools.chain import scale; "
            f"print('RESULT ' + json.dumps(scale.run_{kind}(Path(sys.argv[1]), {rank}"
            + (f", {master!r}" if kind == "spark" else "") + ")))")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"trainer": kind, "error": f"stopped after {timeout:.0f} s"}
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"trainer": kind, "error": (result.stderr or result.stdout)[-800:]}


def measure(sizes: list[int], work: Path, *, stores: int = 50, rank: int = 16, master: str = "local[*]",
            timeout: float = 1800.0) -> list[dict[str, Any]]:
    from tools.chain.simulate import ChainSpec, simulate

    rows = []
    for n in sizes:
        data_dir = work / f"n{n}"
        t0 = time.perf_counter()
        simulate(ChainSpec(interactions=n, stores=stores), data_dir)
        sim_s = time.perf_counter() - t0
        row: dict[str, Any] = {"interactions": n, "stores": stores, "simulate_s": round(sim_s, 1),
                               "parquet_mib": round(sum(f.stat().st_size for f in data_dir.rglob("*.parquet")) / 2**20, 1)}
        row["single"] = _child("single", data_dir, rank, master, timeout)
        row["spark"] = _child("spark", data_dir, rank, master, timeout)
        logger.info("scale %d: %s", n, json.dumps(row))
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, label in (("single", "single machine (device.recommend.train)"), ("spark", "Spark local[*], ALS")):
        pts = [(r["interactions"], r[kind]["total_s"]) for r in rows if "total_s" in r[kind]]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("interactions")
    ax.set_ylabel("training time, s (2 cores)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
