"""Calibrate the shelf's confidence gate (``visit.min_confidence``) on the validation split.

For each threshold it prints the share of adult faces (age >= 13) that would be personalised and
the accuracy of those personalised estimates (gender, age bracket exact and within one), plus the
gender accuracy of the faces sent to the generic picks. The test split is never used here.

    python -m models.training.gate_calibration [--limit 800] [--data ../shared/data/faces/utkface_crop]
    python -m models.training.gate_calibration --models-dir models/work/run-train-only

A model fitted on train+val (``models.training.train``'s default, the committed one) has seen the
validation faces and looks more confident on them than on new faces: calibrate with the train-only
run of the same recipe (``--models-dir``, a folder with its own ``manifest.json``) instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

import numpy as np

from device.inference import create_age_gender, create_detector
from models.training.data import DEFAULT_DATA, list_samples, read_rgb
from smartshelf.core.types import AGE_BRACKETS, age_bracket

logger = logging.getLogger("models.training.gate_calibration")

THRESHOLDS = (0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def fitted_on_validation(models_dir: Path | None) -> bool:
    """True when the age/gender model in ``models_dir`` (default: models/) was trained on the val split."""
    from device.inference import MODELS_DIR

    manifest = Path(models_dir or MODELS_DIR) / "manifest.json"
    entries = json.loads(manifest.read_text(encoding="utf-8")).get("models", [])
    return any(
        (e.get("training") or {}).get("fit_on") == "train+val"
        for e in entries
        if e.get("name") == "age_gender_int8"
    )


def measure(data: Path, limit: int, seed: int = 0, models_dir: Path | None = None) -> dict[str, np.ndarray]:
    if fitted_on_validation(models_dir):
        logger.warning(
            "the age/gender model in %s was fitted on the validation split too: this calibration is "
            "optimistic; use --models-dir with a train-only run of the same recipe",
            models_dir or "models/",
        )
    samples = [s for s in list_samples(data) if s.split == "val" and s.age >= 13]
    random.Random(seed).shuffle(samples)
    samples = samples[:limit]
    conf, gender_ok, within1, exact = [], [], [], []
    with create_detector() as detector, create_age_gender(models_dir=models_dir) as model:
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
    return {
        k: np.asarray(v)
        for k, v in {"conf": conf, "gender": gender_ok, "within1": within1, "exact": exact}.items()
    }


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="age/gender model folder with its manifest (default models/)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.stdout.write(table(measure(args.data, args.limit, args.seed, args.models_dir)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
