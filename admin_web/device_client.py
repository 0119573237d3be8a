"""Calls to the shelf device's loopback control endpoint (CONTRACTS.md), urllib with a short timeout."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from admin_web.errors import DeviceUnavailable

logger = logging.getLogger(__name__)


class DeviceClient:
    def __init__(self, base_url: str, *, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read(1_000_000)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace").strip()
            raise DeviceUnavailable(f"the shelf device refused {method} {path}: HTTP {exc.code} {detail}",
                                    plain="the shelf refused the request") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeviceUnavailable(
                f"the shelf device is not running or not reachable at {self.base_url} ({reason}); "
                "check `systemctl status smartshelf-device`"
            ) from exc
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def identify(self, slot: str, seconds: float = 5) -> Any:
        return self._call("POST", "/control/identify", {"slot": slot, "seconds": seconds})

    def pause(self, paused: bool) -> Any:
        return self._call("POST", "/control/pause", {"paused": bool(paused)})

    def reload(self) -> Any:
        return self._call("POST", "/control/reload")

    def reload_quietly(self) -> bool:
        """Best-effort reload after a change (the device also notices store.json's mtime)."""
        try:
            self.reload()
            return True
        except DeviceUnavailable as exc:
            logger.info("device reload skipped: %s", exc)
            return False

    def status(self) -> Any:
        return self._call("GET", "/status")
