"""``smartshelf store``: join writes a valid [bus] section (and nothing on bad input), the hub's
Mosquitto config, pairing through the CLI, and a joined shelf's --check against a real broker."""

from __future__ import annotations

import dataclasses
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


def test_hub_config_adds_a_loopback_listener_where_the_store_listener_does_not_serve_the_hub(tmp_path: Path) -> None:
    from smartshelf.installer.store import hub_config_text

    plain = hub_config_text(tmp_path / "a", 1883, "0.0.0.0", None, None)
    assert plain.count("listener ") == 1 and "listener 1883 0.0.0.0" in plain
    tls = hub_config_text(tmp_path / "b", 8883, "0.0.0.0", tmp_path / "c.crt", tmp_path / "c.key")
    assert "listener 8883 0.0.0.0\ncertfile" in tls and "listener 1883 127.0.0.1" in tls
    assert tls.index("keyfile") < tls.index("listener 1883"), "TLS settings belong to the store's listener"
    lan = hub_config_text(tmp_path / "c", 1883, "192.168.1.10", None, None)
    assert "listener 1883 192.168.1.10" in lan and "listener 1883 127.0.0.1" in lan
    out = tmp_path / "m.conf"
    args = ["store", "hub-config", "--data-dir", str(tmp_path / "d"), "--port", "1883", "--certfile", "c.crt",
            "--keyfile", "c.key", "--out", str(out)]
    assert main(args) == 1 and not out.exists() and not (tmp_path / "d").exists(), "a clash changes nothing"
    with pytest.raises(SystemExit):
        main(["store", "hub-config", "--data-dir", str(tmp_path / "d"), "--port", "70000", "--out", str(out)])
    assert not out.exists()


@pytest.mark.integration
def test_a_shelf_joins_a_tls_hub_and_the_hub_talks_on_loopback(tmp_path: Path) -> None:
    """The hub's own Mosquitto config (TLS listener for the shelves, plain loopback one for the hub)
    run by a real Mosquitto; the shelf verifies the hub's certificate against the store's CA."""
    from admin_web.store_bus import ShelfRegistry, StoreHub
    from device.bus import ShelfBus
    from tests.helpers import make_ca_and_server_cert
    from tools.servers import Mosquitto, free_port, mosquitto_binary

    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (tests/install-tools.sh installs it as root)")
    ca, cert, key = make_ca_and_server_cert(tmp_path / "pki")
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other")
    hub_dir = tmp_path / "hub"
    (tmp_path / "pw").write_text(ShelfRegistry(hub_dir).add_shelf("aisle-3"))
    tls_port, local_port = free_port(), free_port()
    conf = tmp_path / "smartshelf.conf"
    assert main(["store", "hub-config", "--data-dir", str(hub_dir), "--port", str(tls_port), "--listen", "127.0.0.1",
                 "--certfile", str(cert), "--keyfile", str(key), "--local-port", str(local_port),
                 "--out", str(conf)]) == 0
    broker = Mosquitto(tmp_path / "broker", port=tls_port, config_text=conf.read_text()).start()
    hub = shelf = None
    try:
        hub = StoreHub(hub_dir, port=local_port).start()  # what the admin does: plain, 127.0.0.1

        def join(*extra: str) -> int:
            args = join_args(tmp_path, "--check", "--port", str(tls_port), *extra)
            args[args.index("hub.invalid")] = "127.0.0.1"
            return main(args)

        assert join("--tls", "--ca-file", str(other_ca)) == 1, "a certificate of another CA"
        assert join() == 1, "plain MQTT on the TLS port"
        assert not (tmp_path / "config.toml").exists()
        assert join("--tls", "--ca-file", str(ca)) == 0
        cfg = load_config(tmp_path / "config.toml").bus
        assert cfg.tls and cfg.ca_file == ca
        cfg = dataclasses.replace(cfg, keepalive_s=5)
        shelf = ShelfBus(cfg, "aisle-3", data_dir=tmp_path / "shelf", factors_path=tmp_path / "shelf" / "f.npz",
                         on_command=lambda name, body: {"ok": True}, status=lambda: {"paused": False},
                         password=(tmp_path / "pw").read_text().strip()).start()
        hub.wait_for(lambda: "aisle-3" in hub.statuses, 15, "the shelf's status over TLS")
        assert shelf.connected
    finally:
        if shelf is not None:
            shelf.close()
        if hub is not None:
            hub.close()
        broker.stop()
