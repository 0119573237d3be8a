"""Shared fixtures (flaskr style): ``app``, ``client``, ``auth`` and ``csrf``; and the test levels.

Tests are by area (``tests/<package>/``); the level is a marker: ``integration`` (starts processes or
servers), ``browser`` (a real Chromium), ``slow`` (over 2 s); everything else is marked ``unit`` here.

``app`` is an admin app on a fresh temp data dir with the password ``ADMIN_PASSWORD`` set for
user ``admin``; the device URL points at a closed loopback port (the device is "not running").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.servers import Mosquitto, free_port, mosquitto_binary

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


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    return free_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def app(data_dir: Path) -> Iterator[Any]:
    from admin_web import create_app
    from admin_web.accounts import AccountStore

    AccountStore(data_dir).set_password(ADMIN_USER, ADMIN_PASSWORD)
    application = create_app({
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "RUNTIME_DIR": str(data_dir),  # the device's status.json (in /run/smartshelf on a shelf)
        "DEVICE_URL": f"http://127.0.0.1:{closed_port()}",
        "SHELF_NAME": "Test shelf",
        "DEVICE_TIMEOUT_S": 0.5,
    })
    yield application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


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
        return self._client.post("/login", data={
            "username": username, "password": password, "csrf_token": token, "next": next,
        })

    def logout(self) -> Any:
        return self._client.post("/logout", data={"csrf_token": csrf_token_of(self._client)})


@pytest.fixture
def auth(client: Any) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def csrf(client: Any) -> Any:
    """``csrf()`` -> the token to put in a form field ``csrf_token`` (or header X-CSRF-Token)."""
    return lambda: csrf_token_of(client)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Any]:
    """``mosquitto(password_file=None, acl_file=None)`` -> a started real broker on a free loopback port,
    config and persistence in a temp dir; every broker started is stopped after the test."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (tests/install-tools.sh installs it as root)")
    started: list[Mosquitto] = []

    def start(**kwargs: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker{len(started)}", **kwargs).start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


LEVELS = ("integration", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that is not ``integration`` or ``browser`` as ``unit`` (the default level)."""
    for item in items:
        if not any(item.get_closest_marker(level) for level in LEVELS):
            item.add_marker(pytest.mark.unit)


def write_device_events(data_dir: Path, events: list[dict[str, Any]]) -> None:
    """Write decision events the way the device does (its own EventLog into events.sqlite3)."""
    from device.events import EventLog

    log = EventLog(Path(data_dir), clock_synced=lambda: True, retention_days=3650)
    for event in events:
        log.record(event)
    log.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fuzzers' totals (tests/security), when they ran."""
    import sys

    helpers = sys.modules.get("tests.security.helpers")
    if helpers is not None:
        helpers.terminal_summary(terminalreporter)
