"""Training and validation crops made the way the shelf makes them (issue 20, "train for the camera").

The clean crops of :func:`models.training.data.crop_dataset` come from centred 200x200 face photos. A
shelf sees the same face 40-120 px wide in a 640x480 view, blurred while the shopper walks, under
the shop's light and colour cast, with sensor noise, sometimes JPEG-compressed footage. Here each
photo of a split is pasted into a shop frame exactly as the approach clips do
(:mod:`tools.vision_clips`: 1280x960 full frame, 640x480 view), optionally blurred and JPEG-compressed,
then found and aligned by the device's own path: the cascade detector on the view, the keypoints
found again on the full frame (:class:`~device.inference.detector.LandmarkRefiner`), ``align_face`` on
the full frame. Photos whose face the device does not find at that size give no crop (the shelf would
not have classified them either).

    python -m models.training.camera --split val            # make and cache the crops, print how many

Crops are cached in ``models/work/camera-<size>-<key>.npz`` (git-ignored, development machine only;
the device never writes crops). UTKFace is for non-commercial research only: so are these crops.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import dataclass

import numpy as np

from models.training import data as D

logger = logging.getLogger("models.training.camera")

#: Face widths in the 640x480 view the crops are made at (about 2.0 m to 0.7 m with a Pi camera).
FACE_PX = (40.0, 120.0)
BACKGROUNDS = 48  # shop backgrounds made once and reused (flipped) for speed


@dataclass(frozen=True, slots=True)
class CameraCrops:
    """Device crops of photos seen by the shelf's camera: ``index`` into the samples, the face width."""

    crops: np.ndarray  # (M, size, size, 3) uint8
    index: np.ndarray  # (M,) int64, the sample each crop was made from
    face_px: np.ndarray  # (M,) float32, face width in the view


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1] if ok else img


def camera_crops(
    samples: list[D.Sample], size: int, *, splits: tuple[str, ...] = ("train", "val"), seed: int = 0,
    cache: bool = True, jpeg_p: float = 0.5, blur_p: float = 0.4, progress: bool = True,
) -> CameraCrops:
    """One camera rendering of each sample of ``splits`` (never the test split: refused), as device
    crops; ``index`` points into ``samples``. Deterministic for ``seed``."""
    if "test" in splits:
        raise ValueError("camera crops are for training and validation only; the test split is read by "
                         "models.training.evaluate and tools.visit_eval alone")
    import cv2

    from device.inference import create_detector, create_refiner
    from device.inference.align import align_face
    from tools.vision_clips import SCALE, VIEW_SIZE, LabelledFace, Sensor, background, paste_face
    from tools.visit_eval import face_at

    key = hashlib.sha1(
        ("\n".join(str(s.path) for s in samples) + f"|{splits}|{size}|{seed}|{jpeg_p}|{blur_p}|camera-v1").encode()
    ).hexdigest()[:12]
    cache_path = D.WORK_DIR / f"camera-{size}-{key}.npz"
    if cache and cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as z:
            return CameraCrops(z["crops"], z["index"], z["face_px"])
    rng = np.random.default_rng(seed)
    backgrounds = [background(rng) for _ in range(BACKGROUNDS)]
    sensors = [Sensor(rng, cast=np.ones(3, np.float32), noise=float(n), fields=1) for n in (2.0, 3.5, 5.0, 6.0)]
    crops, index, widths = [], [], []
    iterator = D.with_progress(enumerate(samples), len(samples), f"camera {size}px") if progress else enumerate(samples)
    photo_detector, detector, refiner = create_detector("short_range"), create_detector("cascade"), create_refiner()
    try:
        for i, s in iterator:
            if s.split not in splits:
                continue
            image = D.read_rgb(s.path)
            found = photo_detector.detect(image)
            if not found:
                continue
            x, y, w, h = found[0].box
            ih, iw = image.shape[:2]
            face = LabelledFace(image, s.age, s.female, float(w), (x + w / 2) / iw, (y + h / 2) / ih)
            px = float(rng.uniform(*FACE_PX))
            margin = px * 1.2
            cx = float(rng.uniform(margin, VIEW_SIZE[0] - margin))
            cy = float(rng.uniform(margin, VIEW_SIZE[1] - margin))
            full = backgrounds[int(rng.integers(len(backgrounds)))]
            full = full[:, ::-1].copy() if rng.random() < 0.5 else full.copy()
            blur = float(rng.uniform(2.0, 14.0)) if rng.random() < blur_p else 0.0
            paste_face(full, face, px, cx, cy, blur)
            sensor = sensors[int(rng.integers(len(sensors)))]
            sensor.cast = rng.uniform(0.85, 1.15, 3).astype(np.float32)
            capture = sensor.finish(full, float(rng.uniform(0.6, 1.25)))
            view, frame = capture.view, capture.full
            if rng.random() < jpeg_p:  # recorded footage: the full stream JPEG-compressed
                frame = _jpeg(frame, int(rng.integers(55, 96)))
                view = cv2.resize(frame, VIEW_SIZE, interpolation=cv2.INTER_AREA)
            hit = face_at(detector.detect(view), (cx, cy), px)
            if hit is None:
                continue
            refined = refiner.refine(frame, hit.scaled(SCALE))
            crops.append(align_face(frame, refined, size))
            index.append(i)
            widths.append(px)
    finally:
        photo_detector.close()
        detector.close()
        refiner.close()
    out = CameraCrops(
        np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        np.asarray(index, dtype=np.int64),
        np.asarray(widths, dtype=np.float32),
    )
    logger.info("camera crops: %d of %d photos found at 40-120 px", len(out.index), len(samples))
    if cache:
        D.WORK_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(cache_path, crops=out.crops, index=out.index, face_px=out.face_px)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(D.DEFAULT_DATA))
    p.add_argument("--split", choices=("train", "val"), default="val")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    samples = D.list_samples(D.Path(args.data))
    made = camera_crops(samples, args.size, splits=(args.split,), seed=args.seed)
    total = sum(s.split == args.split for s in samples)
    print(f"{len(made.index)} camera crops of {total} {args.split} photos; face widths "
          f"{made.face_px.min():.0f}-{made.face_px.max():.0f} px in the view")
    return 0


if __name__ == "__main__":
    sys.exit(main())
