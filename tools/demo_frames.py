"""Regenerate the demo frames in device/demo/frames/ from the public-domain NASA portrait.

The portrait is ``skimage/data/astronaut.png`` (Eileen Collins, NASA, public domain), which ships inside
the scikit-image wheel. Usage::

    pip download --no-deps scikit-image -d /tmp/ski && unzip -o /tmp/ski/*.whl skimage/data/astronaut.png -d /tmp/ski
    python -m tools.demo_frames /tmp/ski/skimage/data/astronaut.png

The sequence is 36 frames at 10 fps, 640x480: an empty aisle, a shopper walking in and
stopping in front of the shelf, then leaving (empty again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
OUT_DIR = Path(__file__).resolve().parent / "frames"


def background(rng: np.random.Generator) -> np.ndarray:
    """A plain shop aisle: a warm vertical gradient with shelf edges and a little sensor noise."""
    ramp = np.linspace(200, 150, HEIGHT, dtype=np.float32)[:, None, None]
    tint = np.array([0.92, 0.97, 1.0], dtype=np.float32)  # BGR
    img = np.broadcast_to(ramp * tint, (HEIGHT, WIDTH, 3)).copy()
    for y in (110, 230, 350):
        img[y : y + 10] = (90, 95, 105)
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def shopper(portrait: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut the person (head and torso) out of the portrait with a soft elliptical mask."""
    person = portrait[0:512, 95:385]
    h, w = person.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2 + 40), (w // 2 - 4, h // 2 + 60), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (31, 31), 0)
    return person, mask


def compose(bg: np.ndarray, person: np.ndarray, mask: np.ndarray, scale: float, cx: float) -> np.ndarray:
    frame = bg.copy()
    pw, ph = int(person.shape[1] * scale), int(person.shape[0] * scale)
    p = cv2.resize(person, (pw, ph), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask, (pw, ph), interpolation=cv2.INTER_AREA)[..., None]
    x0 = int(cx - pw / 2)
    y0 = HEIGHT - ph + int(40 * scale)
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(WIDTH, x0 + pw), min(HEIGHT, y0 + ph)
    sub_p = p[ys - y0 : ye - y0, xs - x0 : xe - x0].astype(np.float32)
    sub_m = m[ys - y0 : ye - y0, xs - x0 : xe - x0]
    region = frame[ys:ye, xs:xe].astype(np.float32)
    frame[ys:ye, xs:xe] = (sub_p * sub_m + region * (1 - sub_m)).astype(np.uint8)
    return frame


def make_frames(portrait_path: Path, out_dir: Path = OUT_DIR) -> list[Path]:
    portrait = cv2.imread(str(portrait_path), cv2.IMREAD_COLOR)
    if portrait is None:
        raise SystemExit(f"{portrait_path}: not a readable image")
    rng = np.random.default_rng(7)
    person, mask = shopper(portrait)
    # (scale, centre x) per frame; None = nobody in view.
    plan: list[tuple[float, float] | None] = [None] * 6
    plan += [(0.45 + 0.04 * i, 80 + 22 * i) for i in range(8)]  # walking in from the left
    plan += [(0.78 + 0.005 * (i % 3), 330 + 3 * (i % 4)) for i in range(14)]  # standing at the shelf
    plan += [None] * 8
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("frame_*.jpg"):
        old.unlink()
    paths = []
    for i, step in enumerate(plan):
        bg = background(rng)
        frame = bg if step is None else compose(bg, person, mask, *step)
        path = out_dir / f"frame_{i:03d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 82])
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("portrait", type=Path, help="path to skimage/data/astronaut.png")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    paths = make_frames(args.portrait, args.out)
    sys.stderr.write(f"wrote {len(paths)} frames to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
