"""Raspberry Pi CSI camera through picamera2 (from Raspberry Pi OS's apt: python3-picamera2).

picamera2 is imported only here, when ``camera.type = "picamera2"`` is chosen. With one stream
(``camera.full_width = 0``) the ``main`` stream is delivered at the configured size. With two
(``camera.full_width/full_height`` set), the detector works on the small ``lores`` stream (YUV420 at
``width x height``, converted to RGB) and faces are cropped from the full-resolution ``main`` stream:
both come from the same sensor readout, so they show the same moment and the same field of view.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from smartshelf.core.errors import SYSCALL_FILTER_HINT, CameraError, HardwareUnavailable, is_eperm
from smartshelf.core.types import Capture, Frame

logger = logging.getLogger(__name__)


class Picamera2Camera:
    def __init__(
        self, *, width: int = 640, height: int = 480, fps: float = 10.0, full_size: tuple[int, int] | None = None
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.full_size = full_size
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
            if self.full_size is None:
                config = cam.create_video_configuration(
                    main={"size": (self.width, self.height), "format": "RGB888"},
                    controls={"FrameRate": float(self.fps)},
                    buffer_count=2,
                )
            else:
                config = cam.create_video_configuration(
                    main={"size": self.full_size, "format": "RGB888"},
                    lores={"size": (self.width, self.height), "format": "YUV420"},
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
        logger.info(
            "opened Pi camera at %dx%d%s, %.0f fps", self.width, self.height,
            f" (faces cropped from {self.full_size[0]}x{self.full_size[1]})" if self.full_size else "", self.fps,
        )

    def read(self) -> Frame | Capture:
        if self._cam is None:
            raise CameraError("Pi camera is not open")
        try:
            if self.full_size is None:
                array = self._cam.capture_array("main")
            else:
                # One request holds both streams of the same sensor readout.
                request = self._cam.capture_request()
                try:
                    array = request.make_array("main")
                    lores = request.make_array("lores")
                finally:
                    request.release()
        except (RuntimeError, OSError) as exc:
            if is_eperm(exc):
                logger.error("Pi camera capture: %s", SYSCALL_FILTER_HINT)
            raise CameraError(f"Pi camera capture failed: {exc}") from exc
        # picamera2's "RGB888" is BGR byte order in memory; the pipeline wants RGB.
        main = np.ascontiguousarray(array[..., 2::-1])
        if self.full_size is None:
            return main
        return Capture(view=lores_to_rgb(lores, self.width, self.height), full=main)

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def lores_to_rgb(yuv420: np.ndarray, width: int, height: int) -> Frame:
    """picamera2's ``lores`` YUV420 buffer (I420, rows possibly padded to a stride) as an RGB frame."""
    import cv2

    rows = height * 3 // 2
    if yuv420.ndim != 2 or yuv420.shape[0] < rows or yuv420.shape[1] < width or width % 2 or height % 2:
        raise CameraError(
            f"Pi camera lores buffer has shape {yuv420.shape}; expected at least {rows} x {width} (YUV420, even sizes)"
        )
    stride = yuv420.shape[1]
    y = yuv420[:height, :width]
    # The U and V planes are height/2 rows of stride/2 bytes each, two such rows per buffer row.
    u = yuv420[height : height + height // 4].reshape(height // 2, stride // 2)[:, : width // 2]
    v = yuv420[height + height // 4 : rows].reshape(height // 2, stride // 2)[:, : width // 2]
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(rows, width)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
