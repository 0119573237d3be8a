"""The Camera interface, its factory, and a wrapper that reopens a lost camera with backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from smartshelf.core.config import CameraConfig
from smartshelf.core.errors import CameraError, ConfigError, HardwareUnavailable
from smartshelf.core.types import Capture, Frame

logger = logging.getLogger(__name__)


@runtime_checkable
class Camera(Protocol):
    """A source of RGB frames. ``read`` raises CameraError when the source stops delivering.

    A one-stream camera returns a Frame; a two-stream one (``camera.full_width``) a :class:`Capture`.
    """

    def open(self) -> None: ...

    def read(self) -> Frame | Capture: ...

    def close(self) -> None: ...


def create_camera(cfg: CameraConfig) -> Camera:
    """Build the backend named by ``cfg.type`` (imported only when chosen); not opened yet."""
    full = cfg.full_size
    if cfg.type == "replay":
        from device.sensors.replay import ReplayCamera

        return ReplayCamera(cfg.source, loop=cfg.loop, size=(cfg.width, cfg.height), full_size=full)
    if cfg.type == "opencv":
        from device.sensors.opencv_camera import OpenCVCamera

        return OpenCVCamera(cfg.source or "0", width=cfg.width, height=cfg.height, fps=cfg.fps, full_size=full)
    if cfg.type == "picamera2":
        from device.sensors.picamera import Picamera2Camera

        return Picamera2Camera(width=cfg.width, height=cfg.height, fps=cfg.fps, full_size=full)
    raise ConfigError(f"camera.type = {cfg.type!r} is not a camera backend")


class ReconnectingCamera:
    """Wraps a Camera: a failed open or read is logged and retried later with exponential backoff.

    ``read()`` returns None while the camera is down instead of raising, so the loop keeps running
    (lights idle, status "lost") and never crash-loops. ``state`` is "starting", "ok" or "lost".
    """

    def __init__(
        self,
        camera: Camera,
        *,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.state = "starting"
        self.error: str | None = None
        self.failures = 0
        self._opened = False
        self._retry_at = 0.0

    def _fail(self, exc: Exception) -> None:
        self.failures += 1
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (self.failures - 1))
        self._retry_at = self.clock() + delay
        self.error = str(exc)
        if self.state != "lost" or self.failures <= 3 or self.failures % 10 == 0:
            logger.warning("camera lost (%s); retrying in %.1f s (failure %d)", exc, delay, self.failures)
        self.state = "lost"
        if self._opened:
            try:
                self.camera.close()
            except Exception:
                logger.debug("closing the lost camera failed", exc_info=True)
            self._opened = False

    def open(self) -> None:
        """Open now and raise HardwareUnavailable if that fails (start-up: exit non-zero, systemd retries).

        Later losses are handled by ``read`` with backoff instead.
        """
        if not self._opened:
            self.camera.open()
            self._opened = True
            self.state = "ok"

    def read(self) -> Frame | Capture | None:
        if not self._opened:
            if self.clock() < self._retry_at:
                return None
            try:
                self.camera.open()
                self._opened = True
            except HardwareUnavailable as exc:
                self._fail(exc)
                return None
        try:
            frame = self.camera.read()
        except CameraError as exc:
            self._fail(exc)
            return None
        if self.state != "ok":
            if self.state == "lost":
                logger.info("camera back after %d failure(s)", self.failures)
            self.state, self.error, self.failures = "ok", None, 0
        return frame

    def close(self) -> None:
        if self._opened:
            self.camera.close()
            self._opened = False
