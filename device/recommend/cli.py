"""``smartshelf factors ...`` (train, prior, retrain, inspect) and ``smartshelf recommend``: what a
shelf runs. The research commands (evaluate, bench, demo-data) are in ``tools.recommender.cli``.
Heavy modules are imported inside the handlers."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from smartshelf.core.commands import command_group
from smartshelf.core.errors import SmartShelfError

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    sub = command_group(subparsers, "factors", help="train, check and retrain factor files")

    p = sub.add_parser("train", help="train a factor file from MovieLens or the generic CSV format")
    _add_data_args(p)
    p.add_argument("--out", required=True, type=Path, help="factor file to write (.npz)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation folds (default 0)")
    p.add_argument("--folds", type=int, default=3, help="validation folds over the users (default 3)")
    p.add_argument("--rank", type=int, help="fixed rank: skip the validation search (plain SVD segments)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("prior", help="a prior factor file from catalogue attributes (no sales needed)")
    p.add_argument(
        "--catalog", required=True, type=Path, help="catalogue CSV (sku,name,gender,price[,category])"
    )
    p.add_argument("--out", required=True, type=Path, help="factor file to write (.npz)")
    p.set_defaults(func=_cmd_prior)

    p = sub.add_parser(
        "retrain", help="retrain from the sales ledger; replace the current file only if not worse"
    )
    _add_data_args(p, movielens=False)
    p.add_argument(
        "--current", type=Path, help="the live factor file, replaced atomically (default: the config's factor file)"
    )
    p.add_argument("--config", type=Path, help="smartshelf config for the default --current")
    p.add_argument("--out", type=Path, help="also write the candidate here, accepted or not (for review)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of the most recent sales held out (0.2)")
    p.add_argument("--tolerance", type=float, default=0.0, help="accept if NDCG@10 >= current - tolerance")
    p.add_argument(
        "--min-new-sales",
        type=int,
        default=20,
        help="sales newer than the current file's data needed to compare the models (default 20)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace even if worse or the current file is unreadable"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--report",
        type=Path,
        help="write the outcome for the admin dashboard here (default: retrain-report.json next to --current)",
    )
    p.set_defaults(func=_cmd_retrain)

    p = sub.add_parser("rollback", help="put back the factor file the last retrain replaced")
    p.add_argument("--current", type=Path, help="the live factor file (default: the config's factor file)")
    p.add_argument("--config", type=Path, help="smartshelf config for the default --current")
    p.set_defaults(func=_cmd_rollback)

    p = sub.add_parser("inspect", help="verify a factor file and print its metadata")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_cmd_inspect)

    p = subparsers.add_parser(
        "recommend", help="top items of a factor file for an age and gender (ignores stock)"
    )
    p.add_argument("--factors", required=True, type=Path, help="factor file (.npz)")
    p.add_argument("--age", required=True, type=float, help="age in years")
    p.add_argument("--gender", required=True, choices=("female", "male"))
    p.add_argument("--top", type=int, default=5, help="how many items (default 5)")
    p.add_argument("--diversity", type=float, default=0.3, help="MMR diversity 0..1 (default 0.3)")
    p.add_argument("--catalog", type=Path, default=None,
                   help="catalogue CSV for product names (default: the shelf's products, else the demo catalogue)")
    p.add_argument("--json", action="store_true", help='print {"items": [...], "names": [...], "segment": "..."}')
    p.set_defaults(func=_cmd_recommend)


def _add_data_args(p: argparse.ArgumentParser, *, movielens: bool = True) -> None:
    if movielens:
        p.add_argument("--movielens", type=Path, help="MovieLens-100K directory (u.data, u.user, u.item)")
    p.add_argument(
        "--interactions",
        "--ledger",
        type=Path,
        dest="interactions",
        help="interactions CSV: user,item,value,time (and/or segment)",
    )
    p.add_argument("--users", type=Path, help="users CSV: user,gender,age or user,segment")
    p.add_argument("--items", type=Path, help="items CSV: item,name,...")
    p.add_argument(
        "--like-threshold",
        type=float,
        help="values >= this count as liked (default: every interaction; MovieLens: 4)",
    )
    p.add_argument(
        "--level",
        choices=("auto", "user", "segment"),
        default="auto",
        help="user: a user id is one shopper; segment: users are segments or single sales (the admin "
        "export); auto (default): decided from the data",
    )


def _load_data(args: argparse.Namespace):
    from device.recommend.data import load_csv, load_movielens
    from smartshelf.core.errors import ConfigError

    if getattr(args, "movielens", None) is not None:
        if args.interactions is not None:
            raise ConfigError("give either --movielens or --interactions, not both")
        data = load_movielens(args.movielens)
        if args.like_threshold is not None:
            from dataclasses import replace

            data = replace(data, like_threshold=args.like_threshold)
        return data
    if args.interactions is None:
        raise ConfigError("give --interactions CSV (or --movielens DIR for train)")
    return load_csv(args.interactions, args.users, args.items, like_threshold=args.like_threshold)


def print_json(obj: object) -> None:
    """A report as indented JSON on stdout (also used by the development commands in tools/)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _cmd_train(args: argparse.Namespace) -> int:
    import time

    from device.recommend.train import TrainParams, train

    data = _load_data(args)
    started = time.perf_counter()
    params = TrainParams(rank=args.rank) if args.rank else None
    model = train(data, n_folds=args.folds, seed=args.seed, params=params, level=args.level)
    path = model.save(args.out)
    size = path.stat().st_size
    print(
        f"wrote {path}: {model.n_items} items, rank {model.rank}, {size / 1024:.0f} KiB, "
        f"params {model.metadata['params']}, {model.metadata.get('metrics')}, "
        f"{time.perf_counter() - started:.2f} s"
    )
    return 0


def _cmd_prior(args: argparse.Namespace) -> int:
    from device.recommend.prior import build_prior, read_catalog

    items = read_catalog(args.catalog)
    model = build_prior(items, source=f"catalogue:{args.catalog.name}")
    path = model.save(args.out)
    print(f"wrote {path}: {model.n_items} items, categories {model.metadata['categories']}")
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    """Exit 0: replaced; 3: kept the current file (the new model was worse); 4: not enough new sales
    yet (nothing written); 1: an error. Every outcome is written to the report for the dashboard."""
    import time

    from device.recommend.prior import read_items_csv
    from device.recommend.retrain import NotEnoughEvidence, RetrainRefused, retrain
    from smartshelf.core.retrain_report import previous_path, write_retrain_report

    args.current = _current(args)
    outcome: dict[str, Any] = {
        "factors": str(args.current), "min_new_sales": args.min_new_sales, "sales": None, "new_sales": None,
        "candidate_ndcg": None, "current_ndcg": None, "holdout_sales": None, "items": None,
        "rollback": None,
    }

    def finish(kind: str, message: str, code: int) -> int:
        outcome.update(outcome=kind, message=message, finished_at=time.time())
        try:
            path = _write_report(args.report, outcome) if args.report else write_retrain_report(args.current, outcome)
            logger.info("retrain report: %s", path)
        except OSError as exc:
            print(f"smartshelf: warning: cannot write the retrain report: {exc}", file=sys.stderr)
        return code

    try:
        data = _load_data(args)
        catalogue, sold = read_items_csv(args.items) if args.items else ([], [])
        outcome["sales"] = int(data.users.size)
        report = retrain(
            data,
            args.current,
            holdout=args.holdout,
            tolerance=args.tolerance,
            candidate_out=args.out,
            force=args.force,
            seed=args.seed,
            level=args.level,
            min_holdout=args.min_new_sales,
            catalogue=catalogue,
            sold=sold,
        )
    except NotEnoughEvidence as exc:
        outcome["new_sales"] = exc.new_sales
        print(f"smartshelf: retrain waiting: {exc}", file=sys.stderr)
        return finish("waiting", str(exc), 4)
    except RetrainRefused as exc:
        outcome.update(
            candidate_ndcg=exc.report.candidate.ndcg,
            current_ndcg=exc.report.current.ndcg if exc.report.current else None,
            holdout_sales=exc.report.holdout_rows,
        )
        if args.json:
            print_json(exc.report.to_dict())
        print(f"smartshelf: retrain refused: {exc}", file=sys.stderr)
        return finish("kept", str(exc), 3)
    except Exception as exc:
        finish("failed", f"{type(exc).__name__}: {exc}", 1)
        raise
    from device.recommend.factors import FactorModel

    outcome.update(
        candidate_ndcg=report.candidate.ndcg,
        current_ndcg=report.current.ndcg if report.current else None,
        holdout_sales=report.holdout_rows,
        items=FactorModel.load(args.current).n_items,
        rollback=str(previous_path(args.current)) if previous_path(args.current).exists() else None,
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.message)
    return finish("replaced", report.message, 0)


def _current(args: argparse.Namespace) -> Path:
    """--current, else the factor file of --config (default /etc/smartshelf/config.toml if it exists)."""
    if args.current is not None:
        return Path(args.current)
    from smartshelf.core.config import load_effective_config

    return load_effective_config(args.config).factors_path


def _write_report(path: Path, report: dict[str, Any]) -> Path:
    from smartshelf.core.storage import atomic_write_json

    atomic_write_json(path, report)
    return path


def _cmd_rollback(args: argparse.Namespace) -> int:
    import time

    from device.recommend.retrain import rollback
    from smartshelf.core.retrain_report import write_retrain_report

    path = rollback(_current(args))
    message = f"{path} is back to the file it had before the last retrain (run rollback again to undo)"
    try:
        write_retrain_report(path, {"outcome": "rolled_back", "finished_at": time.time(), "message": message,
                                    "factors": str(path)})
    except OSError as exc:
        print(f"smartshelf: warning: cannot write the retrain report: {exc}", file=sys.stderr)
    print(message)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from device.recommend.factors import FactorModel

    model = FactorModel.load(args.file)
    print_json(
        {
            "file": str(args.file),
            "items": model.n_items,
            "rank": model.rank,
            "segments": list(model.segment_ids),
            "checksum": "ok",
            "metadata": model.metadata,
        }
    )
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from device.recommend.factors import FactorModel
    from device.recommend.ranker import Ranker
    from smartshelf.core.errors import ConfigError
    from smartshelf.core.types import Segment

    if args.top <= 0:
        raise ConfigError(f"--top must be positive, got {args.top}")
    if args.age < 0 or args.age > 130:
        raise ConfigError(f"--age must be between 0 and 130, got {args.age}")
    if not 0.0 <= args.diversity <= 1.0:
        raise ConfigError(f"--diversity must be between 0 and 1, got {args.diversity}")
    model = FactorModel.load(args.factors)
    segment = Segment.of(args.gender, args.age)
    recs = Ranker(model).rank(segment, n=args.top, diversity=args.diversity)
    names = _item_names(args.catalog)
    if args.json:
        print_json({"items": [r.item_id for r in recs], "names": [names.get(r.item_id) for r in recs],
                     "segment": str(segment)})
        return 0
    print(f"segment {segment} ({model.metadata.get('method', '?')}, {model.n_items} items)")
    for pos, rec in enumerate(recs, 1):
        print(f"{pos:3d}. {names.get(rec.item_id, '(name unknown)')}  [{rec.item_id}]  score {rec.score:.4f}")
    return 0


def _item_names(catalog: Path | None) -> dict[str, str]:
    """item id -> product name: from ``catalog``, else the shelf's store (config's data dir) merged over
    the demo catalogue. A missing or unreadable store only costs the names."""
    from device.demo.store import CATALOG
    from device.recommend.prior import read_catalog

    if catalog is not None:
        return {item.sku: item.name for item in read_catalog(catalog)}
    names = {item.sku: item.name for item in read_catalog(CATALOG)}
    try:
        from device.inventory import STORE_FILE, StoreView
        from smartshelf.core.config import load_effective_config

        store = StoreView(load_effective_config().data_dir / STORE_FILE)
        if store.path.exists():
            store.refresh(force=True)
            names.update({p.item_id: p.name for p in store.products.values() if p.item_id})
    except (OSError, SmartShelfError) as exc:
        logger.debug("no product names from the shelf's store: %s", exc)
    return names
