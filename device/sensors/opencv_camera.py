"""OpenCV VideoCapture camera: a USB camera index, a video file or an RTSP/HTTP stream URL."""

from __future__ import annotations

import logging

import cv2

from smartshelf.core.errors import CameraError, HardwareUnavailable
from smartshelf.core.types import Capture, Frame

logger = logging.getLogger(__name__)


class OpenCVCamera:
    def __init__(
        self,
        source: str,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 10.0,
        full_size: tuple[int, int] | None = None,
    ) -> None:
        self.source: int | str = int(source) if source.isdigit() else source
        self.width, self.height, self.fps = width, height, fps
        #: Two streams: capture at full_size, detect on a copy downscaled to width x height.
        self.full_size = full_size
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            hint = (
                "check that the USB camera is plugged in and the service user is in the 'video' group"
                if isinstance(self.source, int)
                else "check the file path or stream URL"
            )
            raise HardwareUnavailable(f"camera.source = {self.source!r}: OpenCV cannot open it; {hint}")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.full_size[0] if self.full_size else self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.full_size[1] if self.full_size else self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
        self._cap = cap
        logger.info("opened OpenCV camera %r", self.source)

    def read(self) -> Frame | Capture:
        if self._cap is None:
            raise CameraError(f"camera {self.source!r} is not open")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise CameraError(f"camera {self.source!r} delivered no frame")
        if self.full_size is not None and bgr.shape[1] > self.width:  # a camera that gives no more: one stream
            if (bgr.shape[1], bgr.shape[0]) != self.full_size:
                bgr = cv2.resize(bgr, self.full_size, interpolation=cv2.INTER_AREA)
            full = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            view = cv2.resize(full, (self.width, self.height), interpolation=cv2.INTER_AREA)
            return Capture(view=view, full=full)
        if (bgr.shape[1], bgr.shape[0]) != (self.width, self.height):
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
