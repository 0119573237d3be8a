"""``smartshelf chain ...``: the head office's commands (development checkout / head-office install only)."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from smartshelf.core.commands import command_group

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    from tools.chain import trainer

    sub = command_group(subparsers, "chain", help="head office: chain simulator, Spark trainer, measurements")
    p = sub.add_parser("simulate", help="write a simulated chain's Parquet tables")
    p.add_argument("--interactions", type=float, default=1e5)
    p.add_argument("--stores", type=int, default=20)
    p.add_argument("--items-per-store", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("ingest", help="a store's CSV export to Parquet")
    p.add_argument("csv", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("train", help="train on Spark; one (signed) factor file per store")
    trainer.add_arguments(p)
    p.set_defaults(func=trainer.run_from_args)

    p = sub.add_parser("scale", help="Spark vs the single-machine trainer at growing sizes")
    p.add_argument("--sizes", default="1e5,1e6,1e7", help="interaction counts, comma-separated")
    p.add_argument("--stores", type=int, default=50)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per trainer run")
    p.add_argument("--out", type=Path, help="JSON report")
    p.add_argument("--plot", type=Path, help="PNG of time vs size")
    p.set_defaults(func=_cmd_scale)

    p = sub.add_parser("pool", help="why pool: per-store models vs the pooled chain model on MovieLens")
    p.add_argument("--stores", type=int, default=8)
    p.add_argument("--seeds", default="0", help="comma-separated seeds (one split each)")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=_cmd_pool)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from tools.chain.simulate import ChainSpec, simulate

    info = simulate(ChainSpec(interactions=int(args.interactions), stores=args.stores,
                              items_per_store=args.items_per_store, seed=args.seed), args.out)
    print(json.dumps(info))
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from tools.chain.ingest import csv_to_parquet

    print(f"wrote {csv_to_parquet(args.csv, args.out)} interaction(s) to {args.out}")
    return 0


def _cmd_scale(args: argparse.Namespace) -> int:
    from tools.chain import scale

    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="chain-scale-") as tmp:
        rows = scale.measure(sizes, Path(tmp), stores=args.stores, timeout=args.timeout)
    text = json.dumps(rows, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    if args.plot:
        scale.plot(rows, args.plot)
    print(text)
    return 0


def _cmd_pool(args: argparse.Namespace) -> int:
    from tools.chain import pool
    from tools.chain.trainer import spark_session

    spark = spark_session("local[*]")
    try:
        reports = [pool.evaluate(stores=args.stores, seed=int(s), spark=spark) for s in args.seeds.split(",")]
    finally:
        spark.stop()
    text = json.dumps(reports, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0
