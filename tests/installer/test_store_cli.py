"""``smartshelf store``: join writes a valid [bus] section (and nothing on bad input), the hub's
Mosquitto config, pairing through the CLI, and a joined shelf's --check against a real broker."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smartshelf.cli import main
from smartshelf.core.config import load_config


def join_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["store", "join", "--hub", "hub.invalid", "--shelf", "aisle-3", "--user", "aisle-3",
            "--password-file", str(tmp_path / "pw"), "--config", str(tmp_path / "config.toml"), *extra]


def test_join_writes_the_bus_section_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)
    (tmp_path / "config.toml").write_text('[shelf]\nname = "Aisle 3"\n\n[bus]\nenabled = false\n\n[recommend]\ntop_n = 4\n')
    assert main(join_args(tmp_path, "--public-key", str(tmp_path / "k.pub"))) == 0
    config = load_config(tmp_path / "config.toml")
    assert config.bus.enabled and config.bus.host == "hub.invalid" and config.bus_shelf == "aisle-3"
    assert config.recommend.top_n == 4 and config.recommend.public_key == tmp_path / "k.pub"
    assert config.shelf.name == "Aisle 3"
    assert tomllib.loads((tmp_path / "config.toml").read_text())["bus"]["password_file"] == str(tmp_path / "pw")


def test_join_with_bad_input_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.toml").write_text('[shelf]\nname = "x"\n')
    before = (tmp_path / "config.toml").read_text()
    assert main(join_args(tmp_path)) == 1
    assert "--password-file" in capsys.readouterr().err
    (tmp_path / "pw").write_text("secret")
    args = join_args(tmp_path)
    args[args.index("aisle-3")] = "Aisle 3!"
    assert main(args) == 1
    assert "bus.shelf" in capsys.readouterr().err
    assert (tmp_path / "config.toml").read_text() == before


def test_hub_config_and_pairing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert main(["store", "hub-config", "--data-dir", str(data), "--out", str(tmp_path / "m.conf")]) == 0
    conf = (tmp_path / "m.conf").read_text()
    assert "allow_anonymous false" in conf and f"acl_file {data / 'bus' / 'acl'}" in conf
    assert main(["store", "add-shelf", "aisle-1", "--slots", "A1,A2", "--data-dir", str(data),
                 "--password-out", str(tmp_path / "p1")]) == 0
    assert (tmp_path / "p1").stat().st_mode & 0o077 == 0
    acl = (data / "bus" / "acl").read_text()
    assert "user aisle-1" in acl and "topic write smartshelf/shelf/aisle-1/event" in acl
    assert "aisle-1:" in (data / "bus" / "passwd").read_text()
    # A slot belongs to one shelf only.
    assert main(["store", "add-shelf", "aisle-2", "--slots", "A2", "--data-dir", str(data)]) == 1
    assert main(["store", "remove-shelf", "aisle-1", "--data-dir", str(data)]) == 0
    assert "aisle-1" not in (data / "bus" / "acl").read_text()


@pytest.mark.integration
def test_join_check_against_a_real_broker(tmp_path: Path, mosquitto: Callable[..., Any]) -> None:
    from admin_web.store_bus import ShelfRegistry

    registry = ShelfRegistry(tmp_path / "hub")
    (tmp_path / "pw").write_text(registry.add_shelf("aisle-3"))
    broker = mosquitto(password_file=registry.password_file, acl_file=registry.acl_file)
    assert main([*join_args(tmp_path, "--check"), "--port", str(broker.port)]) == 1  # .invalid never resolves
    args = join_args(tmp_path, "--check", "--port", str(broker.port))
    args[args.index("hub.invalid")] = "127.0.0.1"
    assert main(args) == 0
    (tmp_path / "pw").write_text("wrong")
    (tmp_path / "config.toml").unlink()
    assert main(args) == 1 and not (tmp_path / "config.toml").exists()
