"""The shelf screen. ``KioskScreen`` keeps the page state and wakes server-sent-event listeners.

The kiosk page itself (HTML, SSE) is served by device/display/kiosk.py on the device's loopback
endpoint; Chromium in kiosk mode shows it on the Pi's HDMI screen.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Screen(Protocol):
    def show(self, state: dict[str, Any]) -> None:
        """Show picks: ``{"segment", "items": [{"sku", "name", "price", "currency", "slot", "pairs": [...]}]}``."""

    def idle(self, featured: list[dict[str, Any]] | None = None) -> None:
        """Nobody in front: the calm screen, showing ``featured`` (the shelf's best sellers, as
        ``show``'s items) or, when None, the last ones given."""

    def notice(self, text: str) -> None:
        """A banner instead of picks, e.g. when the camera is paused by staff."""

    def close(self) -> None: ...


class NullScreen:
    def show(self, state: dict[str, Any]) -> None:
        pass

    def idle(self, featured: list[dict[str, Any]] | None = None) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class KioskScreen:
    """Thread-safe current page state with a version counter; ``wait`` blocks until it changes."""

    def __init__(self, shelf_name: str = "smartshelf") -> None:
        self.shelf_name = shelf_name
        self._cond = threading.Condition()
        self._version = 0
        self._closed = False
        self._featured: list[dict[str, Any]] = []
        self._state: dict[str, Any] = self._idle_state()

    def _idle_state(self) -> dict[str, Any]:
        return {"mode": "idle", "shelf": self.shelf_name, "items": list(self._featured), "time": time.time()}

    def _set(self, state: dict[str, Any]) -> None:
        with self._cond:
            self._version += 1
            self._state = {**state, "version": self._version}
            self._cond.notify_all()

    def show(self, state: dict[str, Any]) -> None:
        self._set({"mode": "picks", "shelf": self.shelf_name, "time": time.time(), **state})

    def idle(self, featured: list[dict[str, Any]] | None = None) -> None:
        if featured is not None:
            self._featured = list(featured)
        self._set(self._idle_state())

    def notice(self, text: str) -> None:
        """A banner state, e.g. when the camera is paused by staff."""
        self._set({**self._idle_state(), "mode": "notice", "notice": text})

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        with self._cond:
            return self._version, dict(self._state)

    def wait(self, after_version: int, timeout: float) -> tuple[int, dict[str, Any]] | None:
        """Block until the version passes ``after_version`` (then return it) or timeout/close (None)."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > after_version or self._closed, timeout)
            if self._closed or self._version <= after_version:
                return None
            return self._version, dict(self._state)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
