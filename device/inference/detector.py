"""BlazeFace face detector on the TFLite runtime (float models as shipped by MediaPipe).

The frame (RGB uint8, any size) is letterboxed: padded to a square with black borders so the aspect
ratio is kept, resized to the model input (128 short range, 192 full range), normalised to [-1, 1].
Detections are decoded with :mod:`device.inference.anchors`, merged by weighted NMS and mapped back
to frame pixels. When nothing is found, the frame is retried once with an extra border
(``fallback_pad``): BlazeFace was trained on faces that do not fill the whole image, and a tight
200x200 face crop is otherwise often missed.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from device.inference import anchors as anc
from device.inference.runtime import InterpreterModel, load_interpreter
from smartshelf.core.errors import ImageError, ModelError
from smartshelf.core.types import Face, Frame

logger = logging.getLogger(__name__)

Variant = Literal["short_range", "full_range"]

_OPTIONS: dict[str, anc.AnchorOptions] = {"short_range": anc.SHORT_RANGE, "full_range": anc.FULL_RANGE}


def check_frame(frame: Any) -> np.ndarray:
    """Return ``frame`` if it is an H x W x 3 uint8 array, else raise ImageError saying what it is."""
    if not isinstance(frame, np.ndarray):
        raise ImageError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ImageError(f"frame must be H x W x 3 uint8 RGB, got shape {frame.shape} dtype {frame.dtype}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ImageError(f"frame is too small: {frame.shape}")
    return frame


class BlazeFaceDetector(InterpreterModel):
    """Find faces in RGB frames with a BlazeFace TFLite model; largest face first.

    The interpreter is built once here. ``close()`` is safe twice; also a context manager.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        variant: Variant = "short_range",
        score_threshold: float = 0.5,
        iou_threshold: float = 0.3,
        num_threads: int = 2,
        fallback_pad: float = 0.3,
        min_face_px: int = 0,
    ) -> None:
        if variant not in _OPTIONS:
            raise ModelError(f"unknown BlazeFace variant {variant!r}; expected 'short_range' or 'full_range'")
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        if fallback_pad < 0:
            raise ValueError(f"fallback_pad must be >= 0, got {fallback_pad}")
        self.model_path = Path(model_path)
        self.variant: Variant = variant
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.fallback_pad = float(fallback_pad)
        self.min_face_px = int(min_face_px)
        self._options = _OPTIONS[variant]
        self._anchors = anc.generate_anchors(self._options)
        self._interpreter: Any = load_interpreter(self.model_path, num_threads=num_threads)
        inp = self._interpreter.get_input_details()[0]
        size = self._options.input_size
        if tuple(int(v) for v in inp["shape"]) != (1, size, size, 3):
            raise ModelError(
                f"model file {self.model_path} takes input {tuple(inp['shape'])}, "
                f"expected (1, {size}, {size}, 3) for BlazeFace {variant}"
            )
        self._input_index = inp["index"]
        self._regressor_index = -1
        self._score_index = -1
        for out in self._interpreter.get_output_details():
            shape = tuple(int(v) for v in out["shape"])
            if shape == (1, self._anchors.shape[0], 16):
                self._regressor_index = out["index"]
            elif shape == (1, self._anchors.shape[0], 1):
                self._score_index = out["index"]
        if self._regressor_index < 0 or self._score_index < 0:
            raise ModelError(
                f"model file {self.model_path} does not have BlazeFace outputs for "
                f"{self._anchors.shape[0]} anchors (regressors x16 and scores x1)"
            )

    # -- public API -------------------------------------------------------------------------------
    def detect(self, frame: Frame) -> list[Face]:
        """Faces in ``frame`` (H x W x 3 RGB uint8), largest first; empty list when none."""
        if self._interpreter is None:
            raise ModelError(f"detector for {self.model_path} is closed")
        frame = check_frame(frame)
        faces = self._detect_padded(frame, pad=0.0)
        if not faces and self.fallback_pad > 0:
            faces = self._detect_padded(frame, pad=self.fallback_pad)
        if self.min_face_px:
            faces = [f for f in faces if min(f.box[2], f.box[3]) >= self.min_face_px]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


    # -- internals --------------------------------------------------------------------------------
    def _detect_padded(self, frame: np.ndarray, *, pad: float) -> list[Face]:
        import cv2

        h, w = frame.shape[:2]
        border = round(pad * max(h, w))
        side = max(h, w) + 2 * border
        off_x = (side - w) // 2
        off_y = (side - h) // 2
        size = self._options.input_size
        # Resize first (cheaper), then letterbox on the small image.
        scale = size / side
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((size, size, 3), dtype=np.float32)
        ox, oy = round(off_x * scale), round(off_y * scale)
        ox = min(ox, size - rw)
        oy = min(oy, size - rh)
        canvas[oy : oy + rh, ox : ox + rw] = small
        canvas = canvas * np.float32(1 / 127.5) - np.float32(1.0)
        self._interpreter.set_tensor(self._input_index, canvas[None])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._regressor_index)[0]
        scores = anc.sigmoid_scores(self._interpreter.get_tensor(self._score_index)[0])
        keep = scores >= self.score_threshold
        if not np.any(keep):
            return []
        decoded = anc.decode(raw[keep], self._anchors[keep], size)
        merged = anc.weighted_nms(decoded, scores[keep], self.iou_threshold)
        # normalised letterbox coords -> frame pixels (actual offsets/scale of the pasted image)
        sx = w / rw * size
        sy = h / rh * size
        faces: list[Face] = []
        for det, score in merged:
            xs = (det[0::2] - ox / size) * sx
            ys = (det[1::2] - oy / size) * sy
            x0 = max(0.0, float(xs[0]))
            y0 = max(0.0, float(ys[0]))
            x1 = min(float(w), float(xs[1]))
            y1 = min(float(h), float(ys[1]))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            box = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
            kps = tuple((float(xs[i]), float(ys[i])) for i in range(2, 2 + self._options.num_keypoints))
            faces.append(Face(box=box, score=float(score), keypoints=kps))
        return faces


class CascadeDetector:
    """Short range first, full range only on frames where short range finds nothing.

    BlazeFace short range (128 px input) is cheap but misses faces under ~60 px in a 640x480 frame (a
    shopper beyond ~1.3 m with a 62 degree lens); full range (192 px input) finds them at 2.7x the cost.
    A shopper at the shelf is found by the first; the far ones, and empty frames, pay for both.
    ``close()`` closes both and is safe twice.
    """

    variant = "cascade"

    def __init__(self, short: BlazeFaceDetector, full: BlazeFaceDetector) -> None:
        self.short = short
        self.full = full

    def detect(self, frame: Frame) -> list[Face]:
        faces = self.short.detect(frame)
        if faces:
            return faces
        return self.full.detect(frame)

    def close(self) -> None:
        self.short.close()
        self.full.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_in(detector: Any, frame: np.ndarray, rect: tuple[int, int, int, int]) -> list[Face]:
    """``detector`` run on ``rect`` = (x, y, w, h) of ``frame``, clipped to the frame, with its faces
    moved back to frame pixels (none when less than 8 px of the rectangle lie in the frame)."""
    x, y, w, h = rect
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return []
    faces = []
    for f in detector.detect(np.ascontiguousarray(frame[y0:y1, x0:x1])):
        bx, by, bw, bh = f.box
        faces.append(Face((bx + x0, by + y0, bw, bh), f.score, tuple((px + x0, py + y0) for px, py in f.keypoints)))
    return faces


def _same(face: Face, other: Face) -> bool:
    """Whether two boxes are one face: sizes within 1.6x and centres within 0.8 of the larger width."""
    x, y, w, h = face.box
    ox, oy, ow, oh = other.box
    big, small = max(w, ow), max(1, min(w, ow))
    if big > 1.6 * small:
        return False
    return math.hypot(x + w / 2 - ox - ow / 2, y + h / 2 - oy - oh / 2) < 0.8 * big


def _merge(faces: list[Face], more: list[Face]) -> list[Face]:
    """``faces``, then the faces of ``more`` that are not already among them (largest first)."""
    extra = [f for f in more if not any(_same(f, g) for g in faces)]
    return [*faces, *sorted(extra, key=lambda f: f.area, reverse=True)] if extra else faces


class FaceSearch:
    """Looks further than the whole-view detector: around the faces it follows, and tile by tile.

    Letterboxed to its 192 px input, a 640x480 view shows a 40 px face (a shopper ~2 m from a Pi
    camera) 12 px wide, too small for BlazeFace: the cascade finds about 70% of them, and full range
    also reports faces in boxes and shadows. This adds the short-range BlazeFace on parts of the view
    where a 40 px face fills a good share of its 128 px input:

    * **around each followed face** (up to ``follow`` of them, found within the last ``track_frames``
      frames) that the detector missed on this frame: a square of ``context`` face widths centred on it
      (a shopper walking in, blurred or turned away a moment);
    * on **``tiles_per_frame`` tiles** of the view per frame, in turn, whatever the detector found (its
      faces can be false, or a badly placed box around a small face): squares ``tile_share`` of the
      view's width (211 px of 640), overlapping by at least a quarter, so a 4x3 sweep, two tiles a
      frame, covers a 640x480 view in 6 frames (0.6 s at 10 fps). Chosen on validation faces at 40 px
      (``tools.visit_eval sweep``): found within 9 frames 99.3%, against 98.0% for one 256 px tile a
      frame (3x3).

    So every frame costs ``tiles_per_frame`` 128 px inferences more, and one more per followed face the
    detector missed (at most ``follow``). The detector's own faces come first (largest first), then the ones
    the search added: where the detector sees a shopper, the shelf keeps deciding on that face. Measured by
    ``python -m tools.visit_eval range`` (docs/vision-at-distance.md). ``close()`` closes both
    detectors and is safe twice.
    """

    def __init__(
        self,
        inner: Any,
        short: BlazeFaceDetector,
        *,
        track_frames: int = 10,
        follow: int = 2,
        context: float = 3.2,
        tile_share: float = 0.33,
        tiles_per_frame: int = 2,
    ) -> None:
        if track_frames < 1:
            raise ValueError(f"track_frames must be >= 1, got {track_frames}")
        if follow < 1:
            raise ValueError(f"follow must be >= 1, got {follow}")
        if context < 1.5:
            raise ValueError(f"context must be >= 1.5 face widths, got {context}")
        if not 0.1 <= tile_share <= 1.0:
            raise ValueError(f"tile_share must be in [0.1, 1], got {tile_share}")
        if tiles_per_frame < 1:
            raise ValueError(f"tiles_per_frame must be >= 1, got {tiles_per_frame}")
        self.inner = inner
        self.short = short
        self.variant = f"{getattr(inner, 'variant', 'detector')}+search"
        self.track_frames = int(track_frames)
        self.follow = int(follow)
        self.context = float(context)
        self.tile_share = float(tile_share)
        self.tiles_per_frame = int(tiles_per_frame)
        self._followed: list[tuple[Face, int]] = []  # (face, frames since it was last found)
        self._tiles: list[tuple[int, int, int, int]] = []
        self._tiles_for: tuple[int, int] | None = None
        self._next_tile = 0
        self.tracked = 0  # faces found again around a followed face

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The sweep's squares ``(x, y, side, side)`` for a view of this size, row by row."""
        if self._tiles_for != (width, height):
            side = min(width, height, max(32, round(self.tile_share * width)))
            step = side * 3 // 4

            def starts(extent: int) -> list[int]:
                n = max(1, -(-(extent - side) // step) + 1)
                return [(extent - side) * i // max(1, n - 1) for i in range(n)]

            self._tiles = [(x, y, side, side) for y in starts(height) for x in starts(width)]
            self._tiles_for = (width, height)
            self._next_tile = 0
        return self._tiles

    @property
    def followed(self) -> list[Face]:
        """The faces looked for again on the next frame if the detector misses them, largest first."""
        return [f for f, _ in self._followed]

    def reset(self) -> None:
        """Forget the followed faces and start the sweep again from the first tile."""
        self._followed = []
        self._next_tile = 0

    def detect(self, frame: Frame) -> list[Face]:
        frame = check_frame(frame)
        faces = self.inner.detect(frame)
        added: list[Face] = []
        for followed, _ in self._followed:
            if any(_same(f, followed) for f in faces):
                continue
            x, y, w, h = followed.box
            half = self.context * max(w, h) / 2.0
            cx, cy = x + w / 2.0, y + h / 2.0
            rect = (int(cx - half), int(cy - half), int(2 * half), int(2 * half))
            again = [f for f in detect_in(self.short, frame, rect) if _same(f, followed)]
            self.tracked += len(again[:1])
            added += again[:1]
            faces = _merge(faces, again[:1])
        tiles = self.tiles(frame.shape[1], frame.shape[0])
        for _ in range(min(self.tiles_per_frame, len(tiles)) if len(tiles) > 1 else 0):
            rect = tiles[self._next_tile]
            self._next_tile = (self._next_tile + 1) % len(tiles)
            found = detect_in(self.short, frame, rect)
            added += found
            faces = _merge(faces, found)
        self._follow(faces, added)
        return faces

    def _follow(self, faces: list[Face], added: list[Face]) -> None:
        """Follow this frame's first face and the faces the search found on it (up to ``follow``), and
        for ``track_frames`` frames the followed ones it lacks."""
        chosen = [*faces[:1], *(f for f in faces[1:] if any(f is a for a in added)), *faces[1:]]
        kept: list[tuple[Face, int]] = []
        for f in chosen:
            if len(kept) < self.follow and not any(f is k for k, _ in kept):
                kept.append((f, 0))
        for old, missed in self._followed:
            if len(kept) >= self.follow:
                break
            if not any(_same(old, f) for f in faces) and missed + 1 < self.track_frames:
                kept.append((old, missed + 1))
        self._followed = kept

    def close(self) -> None:
        self.inner.close()
        self.short.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LandmarkRefiner:
    """Places a face found on the small detection view precisely in the full-resolution frame.

    A face 40-60 px wide in a 640x480 view gets eye and mouth keypoints that are a few pixels off, and
    alignment (rotation, scale, centre) follows them: scaling them up to the full frame keeps the error.
    This runs the short-range BlazeFace on a square of ``context`` face widths around the scaled box in
    the full frame, where the face is large, and returns that detection. When it finds none there, the
    view's face was not a face (full range takes boxes and shadows for faces; short range at this scale
    confirms every real face the cascade finds down to 32 px and about a quarter of its false ones), and
    it returns None. One extra 128x128 inference per face checked; measured with
    ``python -m tools.visit_eval range`` (docs/vision-at-distance.md).
    """

    def __init__(self, detector: BlazeFaceDetector, *, context: float = 3.2) -> None:
        if context < 1.5:
            raise ValueError(f"context must be >= 1.5 face widths, got {context}")
        self.detector = detector
        self.context = float(context)

    def refine(self, full: Frame, face: Face) -> Face | None:
        """``face`` (already in ``full`` pixels) re-detected in ``full``; None when no face is there."""
        full = check_frame(full)
        x, y, w, h = face.box
        cx, cy = x + w / 2.0, y + h / 2.0
        half = self.context * max(w, h) / 2.0
        x0, y0 = int(cx - half), int(cy - half)
        found = detect_in(self.detector, full, (x0, y0, int(cx + half) - x0, int(cy + half) - y0))
        return found[0] if found else None

    def close(self) -> None:
        self.detector.close()

