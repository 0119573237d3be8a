"""Replay camera: frames from a folder of images or a video file (the demo and the tests use it)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from smartshelf.core.errors import CameraError
from smartshelf.core.types import Frame

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ReplayCamera:
    """Plays a folder of images (sorted by name) or a video file as a camera.

    With ``loop`` it starts again at the end, otherwise ``read`` raises CameraError("end of replay").
    A folder that disappears or an unreadable file also raises CameraError, like a real lost camera.
    ``size`` (w, h) resizes frames that differ; frames are RGB uint8.
    """

    def __init__(self, source: str | Path, *, loop: bool = True, size: tuple[int, int] | None = None) -> None:
        self.source = Path(source)
        self.loop = loop
        self.size = size
        self.frames_read = 0
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

    def _next_file(self) -> np.ndarray:
        if self._index >= len(self._files):
            if not self.loop:
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
            raise CameraError(f"{self.source}: end of replay video")
        return image

    def read(self) -> Frame:
        if self._video is None and not self._files:
            raise CameraError(f"{self.source}: replay camera is not open")
        bgr = self._next_video() if self._video is not None else self._next_file()
        if self.size is not None and (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        self.frames_read += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        self._files = []
