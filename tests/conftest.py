"""Shared fixtures (flaskr style): ``app``, ``client``, ``auth`` and ``csrf``; and the test levels.

Tests are by area (``tests/<package>/``); the level is a marker: ``integration`` (starts processes or
servers), ``browser`` (a real Chromium), ``slow`` (over 2 s); everything else is marked ``unit`` here.

``app`` is an admin app on a fresh temp data dir with the password ``ADMIN_PASSWORD`` set for
user ``admin``; the device URL points at a closed loopback port (the device is "not running").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ADMIN_PASSWORD, ADMIN_USER, AuthActions, csrf_token_of
from tools.servers import Mosquitto, free_port, mosquitto_binary


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fuzzers' totals (tests/security), when they ran."""
    import sys

    helpers = sys.modules.get("tests.security.helpers")
    if helpers is not None:
        helpers.terminal_summary(terminalreporter)
