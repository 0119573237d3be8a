"""Presence sensors: is somebody in front of the shelf? Inference runs only while someone is.

Backends: PIR (gpiozero MotionSensor), ultrasonic distance (gpiozero DistanceSensor), camera
motion (frame differencing, no wiring needed) and always-present. GPIO goes through gpiozero only
(lgpio on a Pi 5, RPi.GPIO on older Pis); tests pass gpiozero's MockFactory as ``pin_factory``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from smartshelf.core.config import PresenceConfig
from smartshelf.core.errors import ConfigError, HardwareUnavailable
from smartshelf.core.types import Frame

logger = logging.getLogger(__name__)


@runtime_checkable
class PresenceSensor(Protocol):
    def present(self, frame: Frame | None, now: float) -> bool: ...

    def close(self) -> None: ...


class _Hold:
    """Keeps presence true for ``hold_s`` after the last trigger (sensors flicker)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._last: float | None = None

    def update(self, triggered: bool, now: float) -> bool:
        if triggered:
            self._last = now
        return self._last is not None and now - self._last <= self.hold_s


class AlwaysPresent:
    def present(self, frame: Frame | None, now: float) -> bool:
        return True

    def close(self) -> None:
        pass


class CameraMotion:
    """Motion from the camera itself: share of pixels that changed between small grey frames."""

    def __init__(self, *, threshold: float = 0.02, hold_s: float = 3.0, width: int = 80) -> None:
        self.threshold = threshold
        self.width = width
        self._hold = _Hold(hold_s)
        self._previous: np.ndarray | None = None

    def present(self, frame: Frame | None, now: float) -> bool:
        if frame is None:
            return self._hold.update(False, now)
        height = max(1, frame.shape[0] * self.width // frame.shape[1])
        small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (self.width, height), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (5, 5), 0)
        moved = False
        if self._previous is not None and self._previous.shape == small.shape:
            changed = np.count_nonzero(cv2.absdiff(small, self._previous) > 18) / small.size
            moved = changed >= self.threshold
        self._previous = small
        return self._hold.update(moved, now)

    def close(self) -> None:
        self._previous = None


def _gpiozero_device(kind: str, **kwargs: Any) -> Any:
    try:
        import gpiozero
    except ImportError as exc:  # pragma: no cover - gpiozero is a hard dependency
        raise HardwareUnavailable(f"gpiozero is not installed ({exc}); run setup.sh again") from exc
    try:
        return getattr(gpiozero, kind)(**kwargs)
    except gpiozero.GPIOZeroError as exc:
        raise HardwareUnavailable(
            f"presence sensor {kind} on {kwargs} could not be opened ({exc}); check the wiring, that the "
            "service user is in the 'gpio' group, and on a Pi 5 that python3-lgpio is installed"
        ) from exc


class PirSensor:
    def __init__(self, pin: int, *, hold_s: float = 3.0, pin_factory: Any = None) -> None:
        self.sensor = _gpiozero_device("MotionSensor", pin=pin, pin_factory=pin_factory)
        self._hold = _Hold(hold_s)

    def present(self, frame: Frame | None, now: float) -> bool:
        return self._hold.update(bool(self.sensor.motion_detected), now)

    def close(self) -> None:
        self.sensor.close()


class UltrasonicSensor:
    def __init__(
        self, trigger_pin: int, echo_pin: int, *, max_distance_m: float = 1.5, hold_s: float = 3.0, pin_factory: Any = None
    ) -> None:
        self.max_distance_m = max_distance_m
        self.sensor = _gpiozero_device(
            "DistanceSensor",
            echo=echo_pin,
            trigger=trigger_pin,
            max_distance=max(max_distance_m * 1.5, 1.0),
            partial=True,  # answer from the first echoes instead of blocking the loop until 9 arrive
            pin_factory=pin_factory,
        )
        self._hold = _Hold(hold_s)

    def present(self, frame: Frame | None, now: float) -> bool:
        distance = float(self.sensor.distance)
        # 0.0 means "no echo measured yet" (nothing wired, or the first samples), not "touching".
        return self._hold.update(0.01 < distance <= self.max_distance_m, now)

    def close(self) -> None:
        self.sensor.close()


def create_presence(cfg: PresenceConfig, *, pin_factory: Any = None) -> PresenceSensor:
    if cfg.type == "always":
        return AlwaysPresent()
    if cfg.type == "camera_motion":
        return CameraMotion(threshold=cfg.motion_threshold, hold_s=cfg.hold_s)
    if cfg.type == "pir":
        return PirSensor(cfg.pin, hold_s=cfg.hold_s, pin_factory=pin_factory)
    if cfg.type == "ultrasonic":
        return UltrasonicSensor(
            cfg.trigger_pin, cfg.echo_pin, max_distance_m=cfg.max_distance_m, hold_s=cfg.hold_s, pin_factory=pin_factory
        )
    raise ConfigError(f"presence.type = {cfg.type!r} is not a presence sensor")
