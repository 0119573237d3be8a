"""Shelf-like footage made from labelled face photos, in memory only (development tool, never shipped).

A real shelf sees a shopper from a few metres away, walking in, blurred, side-lit, sometimes with
someone passing behind. These helpers make that from the UTKFace photos of ONE split (validation to
tune, test to report; never train on either), so the real detector, alignment, model and controller
can be measured on it:

* :func:`face_frame` pastes one photo so that its face is ``face_px`` wide in the detection view, into a
  full-resolution frame (``FULL_SIZE``) whose downscaled copy is the view (``VIEW_SIZE``), as the Pi's
  two streams are;
* :func:`approach_clip` makes an approach clip: the shopper walks in (face growing from ~40 to ~120 px
  over 2 s at 10 fps, motion blur), stops for 3 s, leaves over 1 s, then an empty shelf; with a
  lighting change in some clips and a second, smaller face passing behind in others.

Frames are generated on demand from a seed and never written anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from models.training.data import DEFAULT_DATA, Sample, list_samples, read_rgb
from smartshelf.core.types import Capture

VIEW_SIZE = (640, 480)
FULL_SIZE = (1280, 960)
SCALE = FULL_SIZE[0] / VIEW_SIZE[0]
FPS = 10.0
WALK_FRAMES, STOP_FRAMES, LEAVE_FRAMES, EMPTY_FRAMES = 20, 30, 10, 5


@dataclass(frozen=True, slots=True)
class LabelledFace:
    """A face photo with its labels and the width of its face in the photo (BlazeFace box)."""

    image: np.ndarray  # RGB
    age: int
    female: int
    face_w: float  # detected face width in the photo, pixels
    face_cx: float  # face centre in the photo, as a share of its width / height
    face_cy: float


def load_faces(split: str, *, limit: int | None = None, seed: int = 0) -> list[LabelledFace]:
    """Photos of ``split`` (``val`` or ``test``) whose face the short-range detector finds, shuffled."""
    from device.inference import create_detector

    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test' (never train), got {split!r}")
    samples: list[Sample] = [s for s in list_samples(DEFAULT_DATA) if s.split == split]
    order = np.random.default_rng(seed).permutation(len(samples))
    faces: list[LabelledFace] = []
    with create_detector("short_range") as detector:
        for i in order:
            s = samples[int(i)]
            image = read_rgb(s.path)
            found = detector.detect(image)
            if not found:
                continue
            x, y, w, h = found[0].box
            ih, iw = image.shape[:2]
            faces.append(LabelledFace(image, s.age, s.female, float(w), (x + w / 2) / iw, (y + h / 2) / ih))
            if limit is not None and len(faces) >= limit:
                break
    return faces


def background(rng: np.random.Generator) -> np.ndarray:
    """A random full-resolution shop background: shelves of coloured boxes over a textured wall.

    (A smooth background of colour blobs alone makes BlazeFace short range see huge faces in it.)
    """
    w, h = FULL_SIZE
    out = np.zeros((h, w, 3), np.float32)
    for cells, weight in (((6, 8), 0.5), ((24, 32), 0.3), ((96, 128), 0.2)):
        small = rng.uniform(40, 210, (*cells, 3)).astype(np.float32)
        out += weight * cv2.resize(small, FULL_SIZE, interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(25, 45))):  # products on shelves
        bw, bh = int(rng.integers(40, 200)), int(rng.integers(60, 260))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        out[y : y + bh, x : x + bw] = rng.uniform(20, 235, 3)
    for y in range(int(rng.integers(80, 200)), h, int(rng.integers(220, 320))):  # shelf edges
        out[y : y + 14] = rng.uniform(60, 200)
    return np.clip(out, 0, 255).astype(np.uint8)


def paste_face(frame: np.ndarray, face: LabelledFace, face_px_view: float, cx: float, cy: float, blur_px: float) -> None:
    """Paste ``face`` so its face is ``face_px_view`` wide in the view, its centre at (cx, cy) view px."""
    scale = face_px_view * SCALE / face.face_w
    ih, iw = face.image.shape[:2]
    w, h = max(2, round(iw * scale)), max(2, round(ih * scale))
    photo = cv2.resize(face.image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if blur_px >= 1.5:
        k = round(blur_px) | 1
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k  # horizontal motion blur: the shopper walks along the shelf
        photo = cv2.filter2D(photo, -1, kernel)
    x0 = round(cx * SCALE - face.face_cx * w)
    y0 = round(cy * SCALE - face.face_cy * h)
    fh, fw = frame.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(fw, x0 + w), min(fh, y0 + h)
    if dx1 <= dx0 or dy1 <= dy0:
        return
    frame[dy0:dy1, dx0:dx1] = photo[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]


class Sensor:
    """Light, colour cast and sensor noise of one clip's camera (noise fields made once, then cycled)."""

    def __init__(self, rng: np.random.Generator, *, cast: np.ndarray, noise: float, fields: int = 3) -> None:
        self.rng = rng
        self.cast = cast
        w, h = FULL_SIZE
        noise_fields = [np.clip(rng.normal(0.0, noise, (h, w, 3)), -40, 40) for _ in range(fields)]
        self._plus = [np.clip(n, 0, None).astype(np.uint8) for n in noise_fields]
        self._minus = [np.clip(-n, 0, None).astype(np.uint8) for n in noise_fields]
        self._i = 0

    def finish(self, full: np.ndarray, gain: float) -> Capture:
        """The exposed full frame and its downscaled view."""
        levels = np.arange(256, dtype=np.float32)[:, None] * (gain * self.cast)[None, :]
        lut = np.clip(levels, 0, 255).astype(np.uint8).reshape(256, 1, 3)
        out = cv2.LUT(full, lut)
        k = self._i % len(self._plus)
        self._i += 1
        out = cv2.subtract(cv2.add(out, self._plus[k]), self._minus[k])
        view = cv2.resize(out, VIEW_SIZE, interpolation=cv2.INTER_AREA)
        return Capture(view=view, full=out)


def face_frame(face: LabelledFace, face_px: float, rng: np.random.Generator) -> tuple[Capture, tuple[float, float]]:
    """One frame with ``face`` ``face_px`` wide (view pixels) at a random place; returns it and the face centre."""
    margin = face_px * 1.2
    cx = float(rng.uniform(margin, VIEW_SIZE[0] - margin))
    cy = float(rng.uniform(margin, VIEW_SIZE[1] - margin))
    full = background(rng)
    paste_face(full, face, face_px, cx, cy, 0.0)
    sensor = Sensor(rng, cast=rng.uniform(0.9, 1.1, 3).astype(np.float32), noise=float(rng.uniform(2, 5)), fields=1)
    return sensor.finish(full, float(rng.uniform(0.7, 1.2))), (cx, cy)


@dataclass(frozen=True, slots=True)
class Clip:
    """An approach clip: the shopper, the optional passer-by, and the seed that makes every frame."""

    index: int
    shopper: LabelledFace
    passer: LabelledFace | None
    seed: int
    light_change: bool
    stop_px: float = 120.0  # face width (view pixels) where the shopper stops: 120 px ~0.66 m, 50 px ~1.6 m

    @property
    def n_frames(self) -> int:
        return WALK_FRAMES + STOP_FRAMES + LEAVE_FRAMES + EMPTY_FRAMES

    @property
    def stop_frame(self) -> int:
        """First frame of the stop (the shopper stands at the shelf)."""
        return WALK_FRAMES

    @property
    def leave_frame(self) -> int:
        return WALK_FRAMES + STOP_FRAMES

    def frames(self) -> Iterator[Capture]:
        rng = np.random.default_rng(self.seed)
        side = 1 if rng.random() < 0.5 else -1
        start_x = VIEW_SIZE[0] / 2 - side * rng.uniform(180, 240)
        stop_x = VIEW_SIZE[0] / 2 + rng.uniform(-40, 40)
        stop_y = VIEW_SIZE[1] * rng.uniform(0.35, 0.5)
        bg = background(rng)
        base_gain = float(rng.uniform(0.6, 1.25))
        sensor = Sensor(rng, cast=rng.uniform(0.88, 1.12, 3).astype(np.float32), noise=float(rng.uniform(2, 6)))
        passer_start = WALK_FRAMES + int(rng.integers(0, 10))
        passer_y = VIEW_SIZE[1] * rng.uniform(0.25, 0.4)
        passer_dir = 1 if rng.random() < 0.5 else -1
        x, size = start_x, 40.0
        for i in range(self.n_frames):
            full = bg.copy()
            blur = 0.0
            if i < WALK_FRAMES:  # walking in: 40 -> 120 px (closer), towards the shelf's centre
                t = i / (WALK_FRAMES - 1)
                # the face grows as 1/distance: distance falls linearly from 3x to 1x the stop distance
                size = self.stop_px / (3.0 - 2.0 * t)
                new_x = start_x + (stop_x - start_x) * t
                blur = abs(new_x - x) * SCALE * 0.3 + rng.uniform(0, 3)
                x = new_x
                y = stop_y + 6 * math.sin(i * 1.3)  # gait bob
            elif i < self.leave_frame:  # standing: small head movements
                size = self.stop_px * (1.0 + rng.normal(0, 0.0125))
                x = stop_x + rng.normal(0, 2.0)
                y = stop_y + rng.normal(0, 2.0)
            elif i < self.leave_frame + LEAVE_FRAMES:  # leaving sideways, getting smaller
                t = (i - self.leave_frame + 1) / LEAVE_FRAMES
                size = self.stop_px / (1.0 + 1.5 * t)
                new_x = stop_x + side * 420 * t
                blur = abs(new_x - x) * SCALE * 0.3
                x = new_x
                y = stop_y
            else:
                size = 0.0
            if self.passer is not None and passer_start <= i < passer_start + 20:
                t = (i - passer_start) / 19
                px = VIEW_SIZE[0] / 2 - passer_dir * (360 - 720 * t)
                paste_face(full, self.passer, 0.37 * self.stop_px, px, passer_y, 38 * SCALE * 0.3)
            if size > 0:
                paste_face(full, self.shopper, size, x, y, blur)
            gain = base_gain
            if self.light_change and i >= self.stop_frame + 10:  # a light switched / sun behind a cloud
                gain = base_gain * 0.65
            yield sensor.finish(full, gain)


def make_clips(
    faces: list[LabelledFace], n: int, *, seed: int = 0, passer_share: float = 0.3, stop_px: float = 120.0
) -> list[Clip]:
    """``n`` clips, each with a different shopper from ``faces`` (cycled), some with a passer-by; the
    shopper stops where the face is ``stop_px`` wide in the view (walking in from a third of that)."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        shopper = faces[i % len(faces)]
        passer = faces[(i * 7 + 3) % len(faces)] if rng.random() < passer_share and len(faces) > 1 else None
        clips.append(Clip(i, shopper, passer, int(rng.integers(0, 2**31)), bool(rng.random() < 0.5), stop_px))
    return clips
