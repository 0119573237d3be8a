"""smartshelf.cli.explain: one line with the file and what to do for every operational failure."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from smartshelf.cli import explain
from smartshelf.core.errors import ConfigError, PortUnavailable


def test_disk_full_names_the_file_and_the_fix() -> None:
    with pytest.raises(OSError) as info, open("/dev/full", "w") as full:
        full.write("x")
        full.flush()
    info.value.filename = "/var/lib/smartshelf/store.json"
    line = explain(info.value)
    assert line.startswith("disk full writing /var/lib/smartshelf/store.json") and "free space" in line


def test_missing_file_and_permission_denied(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        (tmp_path / "nope.toml").read_text()
    assert explain(info.value) == f"missing file: {tmp_path / 'nope.toml'}; check the path, or run `smartshelf doctor`"
    denied = PermissionError(errno.EACCES, "Permission denied", "/var/lib/smartshelf/events")
    assert explain(denied).startswith("permission denied: /var/lib/smartshelf/events (Permission denied); run as")


def test_our_errors_as_they_are_and_a_bug_says_so() -> None:
    assert explain(ConfigError("config.toml: kiosk.port = -1 must be 1-65535")) == \
        "config.toml: kiosk.port = -1 must be 1-65535"
    line = explain(KeyError("x"))
    assert line.startswith("unexpected KeyError") and "--debug" in line and "\n" not in line


@pytest.mark.parametrize(("code", "words"), [(errno.EADDRINUSE, "already in use"), (errno.EACCES, "below 1024")])
def test_port_errors(code: int, words: str) -> None:
    exc = PortUnavailable.from_os_error("the admin page", "0.0.0.0", 80, OSError(code, "x"), setting="--port")
    assert isinstance(exc, OSError) and words in str(exc) and str(exc).startswith("the admin page cannot listen on 0.0.0.0:80")
