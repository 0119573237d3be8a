"""Replay camera: frames from a folder of images or a video file (the demo and the tests use it)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from smartshelf.core.errors import CameraError
from smartshelf.core.types import Capture, Frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ReplayCamera:
    """Plays a folder of images (sorted by name) or a video file as a camera.

    With ``loop`` it starts again at the end, otherwise ``read`` raises CameraError("end of replay") and
    ``ended`` is true. A folder that disappears or an unreadable file also raises CameraError, like a real
    lost camera. ``size`` (w, h) resizes frames that differ; frames are RGB uint8. With ``full_size``
    (w, h) it plays two streams like the Pi camera: for source frames wider than ``size``, ``read``
    returns a :class:`Capture` whose ``full`` frame is the source at ``full_size`` and whose ``view`` is
    that frame downscaled to ``size``; frames no wider than ``size`` have nothing more to give and are
    delivered as one stream.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        loop: bool = True,
        size: tuple[int, int] | None = None,
        full_size: tuple[int, int] | None = None,
    ) -> None:
        if full_size is not None and size is None:
            raise ValueError("full_size needs size (the detection view's size)")
        self.source = Path(source)
        self.loop = loop
        self.size = size
        self.full_size = full_size
        self.frames_read = 0
        self.ended = False
        self._files: list[Path] = []
        self._index = 0
        self._video: cv2.VideoCapture | None = None

    def open(self) -> None:
        if self.source.is_dir():
            self._files = sorted(p for p in self.source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise CameraError(f"{self.source}: replay folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self._index = 0
        elif self.source.is_file():
            video = cv2.VideoCapture(str(self.source))
            if not video.isOpened():
                raise CameraError(f"{self.source}: cannot open as a video")
            self._video = video
        else:
            raise CameraError(f"{self.source}: replay source does not exist")
        self.ended = False

    @property
    def fps(self) -> float | None:
        """The video file's frame rate (None for a folder or when the file does not say)."""
        if self._video is None:
            return None
        fps = float(self._video.get(cv2.CAP_PROP_FPS) or 0.0)
        return fps if 0.5 <= fps <= 240 else None

    def _next_file(self) -> np.ndarray:
        if self._index >= len(self._files):
            if not self.loop:
                self.ended = True
                raise CameraError(f"{self.source}: end of replay")
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraError(f"{path}: cannot read replay frame")
        return image

    def _next_video(self) -> np.ndarray:
        assert self._video is not None
        ok, image = self._video.read()
        if not ok and self.loop:
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._video.read()
        if not ok:
            self.ended = True
            raise CameraError(f"{self.source}: end of replay video")
        return image

    def read(self) -> Frame | Capture:
        if self._video is None and not self._files:
            raise CameraError(f"{self.source}: replay camera is not open")
        bgr = self._next_video() if self._video is not None else self._next_file()
        self.frames_read += 1
        if self.full_size is not None and self.size is not None and bgr.shape[1] > self.size[0]:
            full = cv2.cvtColor(_resize(bgr, self.full_size), cv2.COLOR_BGR2RGB)
            return Capture(view=_resize(full, self.size), full=full)
        if self.size is not None:
            bgr = _resize(bgr, self.size)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        self._files = []


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrink = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
