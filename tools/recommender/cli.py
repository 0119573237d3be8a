"""Development-only ``smartshelf factors`` commands: evaluate, bench, demo-data (research on
MovieLens, ranking latency, regenerating the demo catalogue). Registered by ``tools.cli``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from device.recommend.cli import print_json as _print_json
from smartshelf.core.commands import command_group


def register(subparsers: Any) -> None:
    sub = command_group(subparsers, "factors", help="train, check and retrain factor files")

    p = sub.add_parser("evaluate", help="evaluate demographic ranking and rating prediction on MovieLens")
    p.add_argument("--movielens", required=True, type=Path, help="MovieLens-100K directory (u.data, u.user)")
    p.add_argument("--seed", type=int, default=0, help="seed of the user split (default 0)")
    p.add_argument("--seeds", help="comma-separated seeds: also report the mean over several splits")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of users held out (default 0.2)")
    p.add_argument("--no-surprise", action="store_true", help="skip scikit-surprise even when installed")
    p.add_argument("--no-rmse", action="store_true", help="skip the rating-prediction part")
    p.add_argument(
        "--learning-curve",
        action="store_true",
        help="also: segment popularity and the best method on growing subsets of the train users, and "
        "segment popularity's fitted asymptote",
    )
    p.add_argument(
        "--curve-method-repeats",
        type=int,
        default=2,
        help="subsets per size on which the best method is trained for --learning-curve (default 2; 0 skips it)",
    )
    p.add_argument(
        "--camera-error",
        action="store_true",
        help="also: NDCG@10 when the test users' gender and age come from a camera with the committed "
        "model's error (hard segment vs expected over the estimate)",
    )
    p.add_argument(
        "--age-sd", type=float, help="age error (sd, years) for --camera-error (default: the model's, 6.2)"
    )
    p.add_argument(
        "--gender-accuracy",
        type=float,
        help="gender accuracy for --camera-error (default: the model's, 0.945)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("bench", help="ranking latency on a factor file or a synthetic catalogue")
    p.add_argument("--factors", type=Path, help="factor file (default: synthetic)")
    p.add_argument("--items", type=int, default=12_000, help="synthetic catalogue size (default 12000)")
    p.add_argument("--rank", type=int, default=32, help="synthetic rank (default 32)")
    p.add_argument("--repeat", type=int, default=2000, help="timed calls per case (default 2000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo-data", help="regenerate device/demo/catalog.csv and factors.npz from Myntra")
    p.add_argument("--myntra", required=True, type=Path, help="myntra_products_catalog.csv")
    p.add_argument("--out-dir", type=Path, default=Path("device/demo"), help="default device/demo")
    p.set_defaults(func=_cmd_demo_data)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from device.recommend.data import load_movielens
    from tools.recommender.evaluate import evaluate_ranking, evaluate_rmse

    data = load_movielens(args.movielens)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    runs = [evaluate_ranking(data, seed=s, test_fraction=args.test_fraction) for s in seeds]
    rmse = (
        []
        if args.no_rmse
        else evaluate_rmse(
            data, seed=seeds[0], test_fraction=args.test_fraction, surprise=not args.no_surprise
        )
    )
    names = [r.name for r in runs[0]]
    summary = []
    for j, name in enumerate(names):
        summary.append(
            {
                "method": name,
                "precision@10": float(np.mean([run[j].precision for run in runs])),
                "ndcg@10": float(np.mean([run[j].ndcg for run in runs])),
                "hit_rate@10": float(np.mean([run[j].hit_rate for run in runs])),
                "train_seconds": float(np.mean([run[j].train_seconds for run in runs])),
                "ndcg@10_per_seed": [round(run[j].ndcg, 4) for run in runs],
                "detail": runs[0][j].detail if len(runs) == 1 else "",
            }
        )
    base = next(s for s in summary if s["method"] == "segment popularity")["ndcg@10"]
    for s in summary:
        s["ndcg_vs_segment_popularity"] = s["ndcg@10"] / base - 1.0 if base > 0 else 0.0
    camera = _camera_error(args, data, seeds) if args.camera_error else None
    curve = None
    if args.learning_curve:
        from tools.recommender.evaluate import learning_curve

        curve = learning_curve(
            data, seeds=seeds, test_fraction=args.test_fraction, method_repeats=args.curve_method_repeats
        )
    out = {
        "data": str(args.movielens),
        "users": data.n_users,
        "items": data.n_items,
        "ratings": int(data.users.size),
        "seeds": seeds,
        "test_fraction": args.test_fraction,
        "ranking": summary,
        "rmse": [
            {"method": r.name, "rmse": r.rmse, "train_seconds": r.train_seconds, "detail": r.detail}
            for r in rmse
        ],
    }
    if curve is not None:
        out["learning_curve"] = {
            "train_users": list(curve.n_users),
            "segment_popularity_ndcg@10": [round(v, 4) for v in curve.ndcg],
            "asymptote": curve.asymptote,
            "exponent": curve.exponent,
            "asymptote_vs_segment_popularity": curve.asymptote_vs_full,
            "best_method_ndcg@10": [round(v, 4) for v in curve.method_ndcg],
            "best_method_vs_segment_popularity": [round(v, 4) for v in curve.method_gain],
        }
    if camera is not None:
        out["camera_error"] = camera
    if args.json:
        _print_json(out)
        return 0
    print(
        f"MovieLens {data.n_users} users, {data.n_items} items, {data.users.size} ratings; "
        f"user split test={args.test_fraction}, seeds {seeds}"
    )
    print("\nDemographic ranking (test users ranked from gender + age bracket only; relevant = rated >= 4)")
    print(f"{'method':34s} {'P@10':>7s} {'NDCG@10':>8s} {'vs segpop':>10s} {'hit@10':>7s} {'train s':>8s}")
    for s in summary:
        print(
            f"{s['method']:34s} {s['precision@10']:7.4f} {s['ndcg@10']:8.4f} "
            f"{100 * s['ndcg_vs_segment_popularity']:+9.1f}% {s['hit_rate@10']:7.4f} {s['train_seconds']:8.2f}"
        )
        if s["detail"]:
            print(f"{'':34s} ({s['detail']})")
    if rmse:
        print("\nRating prediction on 10% held-out ratings of the train users")
        print(f"{'method':34s} {'RMSE':>7s} {'train s':>8s}")
        for r in rmse:
            value = f"{r.rmse:7.4f}" if r.rmse is not None else "    n/a"
            print(f"{r.name:34s} {value} {r.train_seconds:8.2f}  {r.detail}")
    if camera is not None:
        print(
            f"\nWith the camera's error (age sd {camera['age_sd']} y, gender accuracy {camera['gender_accuracy']}; "
            f"{camera['draws']} draws per test user): NDCG@10"
        )
        for row in camera["rows"]:
            print(f"  {row['method']:62s} {row['ndcg@10']:.4f}")
    if curve is not None:
        print("\nOn random subsets of the train users (same test users): NDCG@10")
        print(f"  {'train users':>11s} {'segpop':>8s} {'best':>8s} {'vs segpop':>10s}")
        for i, (n, v) in enumerate(zip(curve.n_users, curve.ndcg)):
            if curve.method_ndcg:
                print(f"  {n:11d} {v:8.4f} {curve.method_ndcg[i]:8.4f} {100 * curve.method_gain[i]:+9.1f}%")
            else:
                print(f"  {n:11d} {v:8.4f}")
        print(
            f"  fitted a - b/n^{curve.exponent:.2f}: unlimited users -> NDCG@10 {curve.asymptote:.4f} "
            f"({100 * curve.asymptote_vs_full:+.1f}% over segment popularity on all train users)"
        )
    return 0


def _camera_error(args: argparse.Namespace, data: Any, seeds: list[int]) -> dict[str, Any]:
    import numpy as np

    from device.recommend.data import DataError, movielens_ages
    from tools.recommender.evaluate import (
        CAMERA_AGE_SD,
        CAMERA_DRAWS,
        CAMERA_GENDER_ACCURACY,
        evaluate_camera_error,
    )

    age_sd = CAMERA_AGE_SD if args.age_sd is None else args.age_sd
    accuracy = CAMERA_GENDER_ACCURACY if args.gender_accuracy is None else args.gender_accuracy
    if age_sd <= 0 or not 0.5 < accuracy < 1.0:
        raise DataError(
            f"--age-sd must be > 0 and --gender-accuracy in (0.5, 1), got {age_sd} and {accuracy}"
        )
    ages = movielens_ages(args.movielens)
    runs = [
        evaluate_camera_error(
            data, ages, seed=s, test_fraction=args.test_fraction, age_sd=age_sd, gender_accuracy=accuracy
        )
        for s in seeds
    ]
    rows = [
        {"method": name, "ndcg@10": float(np.mean([run[j][1] for run in runs]))}
        for j, (name, _) in enumerate(runs[0])
    ]
    return {"age_sd": age_sd, "gender_accuracy": accuracy, "draws": CAMERA_DRAWS, "rows": rows}


def _cmd_bench(args: argparse.Namespace) -> int:
    import platform
    import time

    import numpy as np

    from device.recommend.factors import FactorModel
    from device.recommend.ranker import Ranker
    from smartshelf.core.types import Segment, all_segments

    if args.factors:
        model = FactorModel.load(args.factors)
    else:
        rng = np.random.default_rng(0)
        k = args.rank
        model = FactorModel(
            item_ids=tuple(f"item{i}" for i in range(args.items)),
            item_factors=rng.normal(size=(args.items, k)).astype(np.float32),
            segment_ids=tuple(str(s) for s in all_segments()),
            segment_vectors=rng.normal(size=(16, k)).astype(np.float32),
            global_vector=np.zeros(k, dtype=np.float32),
            popularity=rng.random(args.items).astype(np.float32),
            metadata={"method": "synthetic"},
        )
    ranker = Ranker(model)
    segment = Segment.parse("female/25-34")
    shelf = list(model.item_ids[:: max(1, model.n_items // 40)][:40])
    cases = [
        ("rank n=5, all items", {"n": 5, "candidates": None}),
        ("rank n=5, 40 in-stock candidates", {"n": 5, "candidates": shelf}),
        ("rank n=10, all items, diversity 0", {"n": 10, "candidates": None, "diversity": 0.0}),
        ("rank generic n=5, all items", {"n": 5, "candidates": None, "generic": True}),
    ]
    results = []
    for name, kw in cases:
        generic = kw.pop("generic", False)
        seg = None if generic else segment
        for _ in range(20):
            ranker.rank(seg, **kw)
        times = np.empty(args.repeat)
        for r in range(args.repeat):
            t0 = time.perf_counter()
            ranker.rank(seg, **kw)
            times[r] = time.perf_counter() - t0
        results.append(
            {
                "case": name,
                "median_ms": float(np.median(times) * 1e3),
                "p99_ms": float(np.percentile(times, 99) * 1e3),
            }
        )
    times = np.empty(args.repeat)
    for r in range(args.repeat):
        t0 = time.perf_counter()
        ranker.pairs_with(model.item_ids[r % model.n_items], n=5)
        times[r] = time.perf_counter() - t0
    results.append(
        {
            "case": "pairs_with n=5, all items",
            "median_ms": float(np.median(times) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3),
        }
    )
    info = {
        "items": model.n_items,
        "rank": model.rank,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "results": results,
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"{model.n_items} items, rank {model.rank}, {info['machine']}, numpy {info['numpy']}")
    for r in results:
        print(f"  {r['case']:38s} median {r['median_ms']:.3f} ms   p99 {r['p99_ms']:.3f} ms")
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from tools.recommender.demo_data import write_demo_data

    catalog, factors = write_demo_data(args.myntra, args.out_dir)
    print(f"wrote {catalog} and {factors}")
    return 0


