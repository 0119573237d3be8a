"""Compare training recipes on the validation split: a grid of ``models.training.train`` options x seeds.

    python -m models.training.sweep --grid "teacher_gender_weight=0.5,0.8" --seeds 1,2,3 --jobs 2
    python -m models.training.sweep --pack faces64.pack.npz          # train + val data for another machine
    KERAS_BACKEND=jax python -m models.training.sweep --packed faces64.pack.npz --grid "width=32,36" --jobs 12
    python -m models.training.sweep --grid "lr=0.002,0.003" --epochs 60     # other models.training.train options apply to all

Every run is ``models.training.train``'s own ``fit_model`` with ``--fit-on train`` (best epoch on the
validation split, mirror-averaged as on the device); results are averaged over the seeds, because
a single run's validation gender accuracy moves by about a point from seed to seed. Nothing here
reads the test split: ``--pack`` leaves it out. The recipe that wins is then fitted on train + val
by ``python -m models.training.train OPTIONS`` (``--fit-on train+val``, its default). Runs in parallel worker processes
(``--jobs``); each appends its result to ``--out`` (JSON lines) as soon as it finishes, so an
interrupted sweep keeps what it finished. Keras runs on whichever backend ``KERAS_BACKEND`` names
(TensorFlow by default; JAX or PyTorch on a GPU machine without TensorFlow).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.training import train as T

logger = logging.getLogger("models.training.sweep")


# ------------------------------------------------------------------------------------------ packing
def _encode(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crops as one buffer of lossless WebP images and their offsets."""
    import cv2

    blobs = []
    for crop in crops:
        ok, buf = cv2.imencode(".webp", crop[:, :, ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless
        if not ok:
            raise RuntimeError("OpenCV could not encode a crop as WebP")
        blobs.append(buf.tobytes())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), np.uint8), offsets


def _decode(blob: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    import cv2

    out = np.zeros((len(offsets) - 1, size, size, 3), np.uint8)
    for i in range(len(offsets) - 1):
        out[i] = cv2.imdecode(blob[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1]
    return out


def pack(data: T.TrainingData, path: Path) -> int:
    """Write the train + val part of ``data`` to one compressed file (crops as lossless WebP)."""
    keep = data.split != "test"
    blob, offsets = _encode(data.crops[keep])
    arrays: dict[str, np.ndarray] = {
        "webp": blob,
        "offsets": offsets,
        "size": np.array(data.crops.shape[1]),
        "age": data.age[keep],
        "female": data.female[keep],
        "split": data.split[keep],
    }
    if data.masks is not None:
        arrays["masks"] = data.masks[keep]
    if data.teacher is not None:
        arrays.update({f"teacher_{k}": v[keep] for k, v in data.teacher.items()})
    new_index = np.cumsum(keep) - 1  # sample index in the full data -> index in the pack
    for name, (crops, index) in data.extra_val.items():
        arrays[f"extra_{name}_webp"], arrays[f"extra_{name}_offsets"] = _encode(crops)
        arrays[f"extra_{name}_index"] = new_index[index]
    np.savez_compressed(path, **arrays)
    return int(keep.sum())


def unpack(path: Path) -> T.TrainingData:
    with np.load(path, allow_pickle=False) as z:
        size = int(z["size"])
        teacher = {k[len("teacher_") :]: z[k] for k in z.files if k.startswith("teacher_")} or None
        extra = {
            k[len("extra_") : -len("_webp")]: (
                _decode(z[k], z[k.replace("_webp", "_offsets")], size),
                z[k.replace("_webp", "_index")],
            )
            for k in z.files
            if k.startswith("extra_") and k.endswith("_webp")
        }
        return T.TrainingData(
            crops=_decode(z["webp"], z["offsets"], size),
            masks=z["masks"] if "masks" in z.files else None,
            age=z["age"],
            female=z["female"],
            split=z["split"],
            teacher=teacher,
            extra_val=extra,
        )


# --------------------------------------------------------------------------------------------- grid
def parse_grid(text: str, defaults: argparse.Namespace) -> list[dict[str, Any]]:
    """``"a=1,2;b=x"`` -> every combination, values typed like the option's default;
    ``"GRID|GRID"`` -> the recipes of both grids."""
    if "|" in text:
        return [c for part in text.split("|") for c in parse_grid(part, defaults)]
    axes: list[tuple[str, list[Any]]] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, values = part.partition("=")
        key = key.strip().replace("-", "_")
        if not hasattr(defaults, key) or not values:
            raise SystemExit(f"--grid: unknown option or no values in {part!r}")
        kind = type(getattr(defaults, key))
        axes.append((key, [kind(v.strip()) for v in values.split(",")]))
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def _run_one(job: tuple[dict[str, Any], int, str, str | None, str]) -> dict[str, Any]:
    config, seed, args_json, packed, out = job
    import cv2

    logging.basicConfig(
        level=logging.INFO, format=f"%(levelname)s %(name)s [{config} seed {seed}]: %(message)s"
    )
    cv2.setNumThreads(1)
    args = argparse.Namespace(**json.loads(args_json))
    for key, value in config.items():
        setattr(args, key, value)
    args.seed, args.fit_on, args.quiet = seed, "train", True
    args.data = Path(args.data)
    data = unpack(Path(packed)) if packed else T.load_training_data(args)
    started = time.time()
    _, info = T.fit_model(data, args)
    row = {
        "config": config,
        "seed": seed,
        "best_val": info["best_val"],
        "extra_val": info["extra_val"],
        "seconds": round(time.time() - started),
    }
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    return row


def summarize_rows(rows: list[dict[str, Any]]) -> str:
    """One line per config: mean and spread over seeds of the best-epoch validation scores."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(json.dumps(r["config"], sort_keys=True), []).append(r)
    extras = sorted({name for r in rows for name in r.get("extra_val") or {}})
    lines = [
        "| recipe | seeds | val gender acc. (13+) | age MAE (y) | bracket exact | score |"
        + "".join(f" {name}: gender / MAE |" for name in extras),
        "|---|---|---|---|---|---|" + "---|" * len(extras),
    ]
    table = []
    for key, runs in by.items():
        vals = [r["best_val"] for r in runs]
        g = np.array([v["gender_acc_13plus"] for v in vals]) * 100
        mae = np.array([v["age_mae"] for v in vals])
        ex = np.array([v["bracket_exact"] for v in vals]) * 100
        score = float(np.mean([T.val_score(v) for v in vals]))
        cells = ""
        for name in extras:
            got = [r["extra_val"][name] for r in runs if name in (r.get("extra_val") or {})]
            eg = np.mean([m["gender_acc_13plus"] for m in got]) * 100 if got else float("nan")
            em = np.mean([m["age_mae"] for m in got]) if got else float("nan")
            cells += f" {eg:.2f} / {em:.2f} |"
        table.append((score, key, len(vals), g, mae, ex, cells))
    for score, key, n, g, mae, ex, cells in sorted(table, key=lambda t: t[0], reverse=True):
        lines.append(
            f"| {key} | {n} | {g.mean():.2f} ± {g.std():.2f} | {mae.mean():.2f} ± {mae.std():.2f} | "
            f"{ex.mean():.1f} | {score:.2f} |{cells}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--grid",
        default="",
        help='options to vary, e.g. "width=32,36;gender_loss_weight=1,2" (every combination) or "width=36|lr=0.002"',
    )
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds per recipe")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (worker processes)")
    p.add_argument("--packed", type=Path, help="read the data from a --pack file instead of the images")
    p.add_argument("--pack", type=Path, help="write the train + val data to this file and stop")
    p.add_argument("--out", type=Path, default=Path("sweep.jsonl"), help="results, one JSON line per run")
    args, rest = p.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    base = T.parse_args(rest)  # any other models.training.train option applies to every run
    if args.pack:
        n = pack(T.load_training_data(base, small_faces=True), args.pack)
        logger.info(
            "wrote %s: %d train + val samples (%.1f MB)", args.pack, n, args.pack.stat().st_size / 1e6
        )
        return 0
    configs = parse_grid(args.grid, base) or [{}]
    seeds = [int(s) for s in args.seeds.split(",")]
    base_json = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(base).items()})
    packed = str(args.packed) if args.packed else None
    jobs = [(c, s, base_json, packed, str(args.out)) for c in configs for s in seeds]
    logger.info(
        "%d recipes x %d seeds = %d runs, %d at a time", len(configs), len(seeds), len(jobs), args.jobs
    )
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            rows = list(pool.imap_unordered(_run_one, jobs))
    else:
        rows = [_run_one(j) for j in jobs]
    print(summarize_rows(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
