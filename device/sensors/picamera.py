"""Raspberry Pi CSI camera through picamera2 (from Raspberry Pi OS's apt: python3-picamera2).

picamera2 is imported only here, when ``camera.type = "picamera2"`` is chosen. Detection runs on the
small ``lores`` stream at the configured size; the main stream stays small too (no recording).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from smartshelf.core.errors import SYSCALL_FILTER_HINT, CameraError, HardwareUnavailable, is_eperm
from smartshelf.core.types import Frame

logger = logging.getLogger(__name__)


class Picamera2Camera:
    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 10.0) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._cam: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise HardwareUnavailable(
                "camera.type = 'picamera2' but picamera2 is not importable "
                f"({exc}); on Raspberry Pi OS run `sudo apt install python3-picamera2` and create the venv "
                "with --system-site-packages (setup.sh does both), or use camera.type = 'opencv'"
            ) from exc
        try:
            cam = Picamera2()
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=2,
            )
            cam.configure(config)
            cam.start()
        except (RuntimeError, IndexError, OSError) as exc:
            if is_eperm(exc):
                logger.error("Pi camera: %s", SYSCALL_FILTER_HINT)
            raise HardwareUnavailable(
                f"Pi camera did not start ({exc}); check the ribbon cable, `rpicam-hello --list-cameras`, "
                "and that the service user is in the 'video' group"
                + (f"; {SYSCALL_FILTER_HINT}" if is_eperm(exc) else "")
            ) from exc
        self._cam = cam
        logger.info("opened Pi camera at %dx%d, %.0f fps", self.width, self.height, self.fps)

    def read(self) -> Frame:
        if self._cam is None:
            raise CameraError("Pi camera is not open")
        try:
            array = self._cam.capture_array("main")
        except (RuntimeError, OSError) as exc:
            if is_eperm(exc):
                logger.error("Pi camera capture: %s", SYSCALL_FILTER_HINT)
            raise CameraError(f"Pi camera capture failed: {exc}") from exc
        # picamera2's "RGB888" is BGR byte order in memory; the pipeline wants RGB.
        return np.ascontiguousarray(array[..., 2::-1])

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
