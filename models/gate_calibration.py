"""Calibrate the shelf's confidence gate (``visit.min_confidence``) on the validation split.

For each threshold it prints the share of adult faces (age >= 13) that would be personalised and
the accuracy of those personalised estimates (gender, age bracket exact and within one), plus the
gender accuracy of the faces sent to the generic picks. The test split is never used here.

    python -m models.gate_calibration [--limit 800] [--data ../shared/data/faces/utkface_crop]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

from device.inference import create_age_gender, create_detector
from device.types import AGE_BRACKETS, age_bracket
from models.data import DEFAULT_DATA, list_samples, read_rgb

THRESHOLDS = (0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def measure(data: Path, limit: int, seed: int = 0) -> dict[str, np.ndarray]:
    samples = [s for s in list_samples(data) if s.split == "val" and s.age >= 13]
    random.Random(seed).shuffle(samples)
    samples = samples[:limit]
    conf, gender_ok, within1, exact = [], [], [], []
    with create_detector() as detector, create_age_gender() as model:
        for sample in samples:
            frame = read_rgb(sample.path)
            faces = detector.detect(frame)
            if not faces:
                continue
            est = model.estimate(frame, faces[0])
            truth = AGE_BRACKETS.index(age_bracket(sample.age))
            guess = AGE_BRACKETS.index(est.age_bracket)
            conf.append(est.confidence)
            gender_ok.append((est.p_female >= 0.5) == (sample.female == 1))
            within1.append(abs(truth - guess) <= 1)
            exact.append(truth == guess)
    return {k: np.asarray(v) for k, v in
            {"conf": conf, "gender": gender_ok, "within1": within1, "exact": exact}.items()}


def table(m: dict[str, np.ndarray]) -> str:
    lines = [
        (
            f"{len(m['conf'])} validation faces (age >= 13) with a detected face; confidence quartiles "
            f"{np.quantile(m['conf'], [0.25, 0.5, 0.75]).round(3).tolist()}"
        ),
        "",
        "| min_confidence | personalised | gender acc | bracket exact | within one | gender acc of the rest |",
        "|---|---|---|---|---|---|",
    ]
    for t in THRESHOLDS:
        keep = m["conf"] >= t
        rest = f"{m['gender'][~keep].mean():.3f}" if (~keep).any() else "-"
        lines.append(
            f"| {t} | {keep.mean():.1%} | {m['gender'][keep].mean():.3f} | {m['exact'][keep].mean():.3f} | "
            f"{m['within1'][keep].mean():.3f} | {rest} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.stdout.write(table(measure(args.data, args.limit, args.seed)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
