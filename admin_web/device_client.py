"""Calls to the shelf device's loopback control endpoint (CONTRACTS.md), urllib with a short timeout.

Each call sends the data dir's control secret (``X-Smartshelf-Control``, read per call so a rotated
secret is used at once) and a JSON body with ``Content-Type: application/json``."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from admin_web.errors import DeviceUnavailable
from smartshelf.core.control import HEADER, load_or_create_secret
from smartshelf.core.errors import StorageError

logger = logging.getLogger(__name__)


class DeviceClient:
    def __init__(self, base_url: str, *, timeout: float = 2.0, data_dir: str | Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.data_dir = data_dir

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        if method == "POST" and body is None:
            body = {}
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.data_dir is not None:
            try:
                headers[HEADER] = load_or_create_secret(self.data_dir)
            except StorageError as exc:
                raise DeviceUnavailable(f"cannot read the device control secret: {exc}") from exc
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
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
