"""sd_notify over a real unix datagram socket (what systemd listens on)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from device.sdnotify import Watchdog, notify, watchdog_interval_s


@pytest.fixture()
def listener(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return messages


def test_notify_without_socket_is_false() -> None:
    assert notify("READY=1", env={}) is False


def test_notify_rejects_non_unix_address() -> None:
    assert notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_notify_sends_datagram(listener) -> None:
    path, sock = listener
    assert notify("READY=1", env={"NOTIFY_SOCKET": path}) is True
    assert sock.recv(100) == b"READY=1"


def test_notify_to_missing_socket_returns_false(tmp_path: Path) -> None:
    assert notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_notify_abstract_namespace() -> None:
    name = f"smartshelf-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert notify("STATUS=hi", env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STATUS=hi"
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "abc"}, None),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval(env, expected) -> None:
    assert watchdog_interval_s(env) == expected


def test_watchdog_ping_is_rate_limited_to_half_the_timeout(listener) -> None:
    path, sock = listener
    now = [100.0]
    dog = Watchdog(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, clock=lambda: now[0])
    assert dog.enabled and dog.interval_s == 5.0
    assert dog.ready("up") is True
    assert received(sock) == ["READY=1\nSTATUS=up"]
    # ready() counts as a ping; nothing is sent until half the timeout has passed.
    now[0] = 104.9
    assert dog.ping() is False
    now[0] = 105.0
    assert dog.ping() is True
    now[0] = 107.0
    assert dog.ping() is False
    now[0] = 110.5
    assert dog.ping() is True
    assert received(sock) == ["WATCHDOG=1", "WATCHDOG=1"]
    assert dog.status("camera lost\nretrying") is True
    assert dog.stopping() is True
    assert received(sock) == ["STATUS=camera lost retrying", "STOPPING=1"]


def test_watchdog_without_systemd_is_silent() -> None:
    dog = Watchdog(env={})
    assert not dog.enabled
    assert dog.ready() is False
    assert dog.ping() is False
    assert dog.status("x") is False
    assert dog.stopping() is False


def test_watchdog_without_watchdog_usec_never_pings(listener) -> None:
    path, sock = listener
    dog = Watchdog(env={"NOTIFY_SOCKET": path})
    assert dog.ready() is True
    assert dog.ping() is False
    assert received(sock) == ["READY=1"]
