"""Helpers tests import by name (``from tests.helpers import ...``); fixtures stay in conftest.py.

Importing ``conftest`` by name picks whichever conftest.py pytest put first on ``sys.path`` (the arm64
stage's ``pytest tests/core tests/device tests/models`` got tests/models/conftest.py), so nothing is
imported from a conftest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "utkface_crop"


def face_photos(n: int, every: int) -> list[Any]:
    """``n`` UTKFace crops (RGB arrays), every ``every``-th in name order; skips the test without the data."""
    import cv2

    if not FACES.is_dir():
        pytest.skip(f"face data not found at {FACES}")
    paths = sorted(FACES.glob("*_*_*_*.jpg"))[::every][:n]
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


ADMIN_USER = "admin"
ADMIN_PASSWORD = "correct horse battery"


def csrf_token_of(client: Any) -> str:
    """The CSRF token of the client's session (created like the server does if missing)."""
    with client.session_transaction() as sess:
        token = sess.get("_csrf")
        if not token:
            token = sess["_csrf"] = "test-csrf-token-0123456789abcdef"
    return str(token)


class AuthActions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def login(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD, *, next: str = "") -> Any:
        page = self._client.get("/login")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page.data)
        token = match.group(1).decode() if match else csrf_token_of(self._client)
        return self._client.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": token,
                "next": next,
            },
        )

    def logout(self) -> Any:
        return self._client.post("/logout", data={"csrf_token": csrf_token_of(self._client)})


def write_device_events(data_dir: Path, events: list[dict[str, Any]]) -> None:
    """Write decision events the way the device does (its own EventLog into events.sqlite3)."""
    from device.events import EventLog

    log = EventLog(Path(data_dir), clock_synced=lambda: True, retention_days=3650)
    for event in events:
        log.record(event)
    log.close()


def poll_json(base: str, paths: tuple[str, ...], done: Any, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """GET each of ``paths`` under ``base`` (JSON answers) every 0.2 s until ``done(answers)`` holds or
    ``timeout`` seconds pass; returns the last answers (a path not answered yet maps to ``{}``)."""
    import json
    import time
    import urllib.request

    answers: dict[str, dict[str, Any]] = {path: {} for path in paths}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in paths:
            try:
                with urllib.request.urlopen(base + path, timeout=2) as resp:
                    answers[path] = json.loads(resp.read())
            except OSError:
                pass
        if done(answers):
            break
        time.sleep(0.2)
    return answers
