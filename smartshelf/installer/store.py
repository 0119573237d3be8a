"""``smartshelf store ...``: a store of shelves on one hub (docs/store-and-chain.md).

On the hub:
  ``store hub-config``    the Mosquitto config snippet for this hub (password file, ACL, persistence),
                          written by ``setup.sh --hub`` to /etc/mosquitto/conf.d/smartshelf.conf;
  ``store add-shelf``     pair a shelf: broker user + password (printed once) + ACL + its slots;
  ``store remove-shelf``  unpair (its user and ACL are removed);
  ``store publish-factors FILE``  announce the store's signed factor file to every shelf (retained).
On a shelf:
  ``store join --hub HOST --shelf NAME --user U --password-file F``: writes the ``[bus]`` section of the
  config (validated as a whole before it is written) and, with ``--check``, tries the broker first.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

from smartshelf.core.commands import command_group
from smartshelf.core.config import DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR, parse_config
from smartshelf.core.errors import ConfigError
from smartshelf.core.storage import atomic_write_bytes

logger = logging.getLogger(__name__)

DEFAULT_PASSWORD_FILE = Path("/etc/smartshelf/bus-password")


def tcp_port(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {port}")
    return port


def register(subparsers: Any) -> None:
    sub = command_group(subparsers, "store", help="a store of shelves on one hub (MQTT bus)")
    p = sub.add_parser("join", help="make this shelf a member of a store (writes [bus] in the config)")
    p.add_argument("--hub", required=True, help="the hub's address")
    p.add_argument("--port", type=tcp_port, default=1883)
    p.add_argument("--shelf", required=True, help="this shelf's name on the bus (as paired on the hub)")
    p.add_argument("--user", required=True, help="broker user from the hub's pairing")
    p.add_argument("--password-file", required=True, type=Path, help="file holding the broker password (0600)")
    p.add_argument("--public-key", type=Path, help="require factor files signed by this Ed25519 key (PEM)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (the hub needs a TLS listener)")
    p.add_argument("--ca-file", type=Path, help="CA of the broker's certificate (with --tls)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help=f"config to update ({DEFAULT_CONFIG_PATH})")
    p.add_argument("--check", action="store_true", help="connect to the broker first; change nothing if it fails")
    p.set_defaults(func=cmd_join)

    p = sub.add_parser("add-shelf", help="hub: pair a shelf (prints its broker password once)")
    p.add_argument("name")
    p.add_argument("--slots", default="", help="comma-separated slots of the store's slot map on this shelf")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--password-out", type=Path, help="write the password to this file (0600) instead of printing it")
    p.set_defaults(func=cmd_add_shelf)

    p = sub.add_parser("remove-shelf", help="hub: unpair a shelf")
    p.add_argument("name")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.set_defaults(func=cmd_remove_shelf)

    p = sub.add_parser("hub-config", help="hub: write the Mosquitto config for this store")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--port", type=tcp_port, default=1883)
    p.add_argument("--listen", default="0.0.0.0", help="address the broker listens on (the store's network)")
    p.add_argument("--certfile", type=Path, help="TLS: the broker's certificate (then also --keyfile)")
    p.add_argument("--keyfile", type=Path)
    p.add_argument("--local-port", type=tcp_port, default=1883,
                   help="plain listener on 127.0.0.1 for the hub's own clients (admin.broker_port), added when "
                        "the store's listener is TLS or not on this port or address")
    p.add_argument("--out", type=Path, default=Path("/etc/mosquitto/conf.d/smartshelf.conf"))
    p.set_defaults(func=cmd_hub_config)

    p = sub.add_parser("export-interactions", help="hub: the store's anonymous interactions as CSV for the chain")
    p.add_argument("--store", required=True, help="this store's id in the chain")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("publish-factors", help="hub: send the store's signed factor file to every shelf")
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--port", type=tcp_port, default=1883)
    p.set_defaults(func=cmd_publish_factors)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def with_table(text: str, table: str, values: dict[str, Any]) -> str:
    """``text`` with ``[table]`` replaced by (or, when absent, followed by) a table of ``values``."""
    from smartshelf.installer.firstboot import strip_table

    body = "\n".join(f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None)
    return strip_table(text, table).rstrip("\n") + f"\n\n[{table}]\n{body}\n"


def cmd_join(args: argparse.Namespace) -> int:
    config_path: Path = args.config
    try:
        text = config_path.read_text() if config_path.exists() else ""
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from None
    if not args.password_file.is_file():
        raise ConfigError(f"--password-file {args.password_file} does not exist (copy the hub's pairing password there)")
    if args.password_file.stat().st_mode & 0o077:
        logger.warning("%s is readable by others; chmod 600 it", args.password_file)
    new = with_table(text, "bus", {
        "enabled": True, "host": args.hub, "port": args.port, "shelf": args.shelf, "user": args.user,
        "password_file": str(args.password_file), "tls": args.tls,
        "ca_file": str(args.ca_file) if args.ca_file else None,
    })
    if args.public_key is not None:
        raw = tomllib.loads(new)
        recommend = dict(raw.get("recommend", {}), public_key=str(args.public_key))
        new = with_table(new, "recommend", recommend)
    try:
        config = parse_config(tomllib.loads(new), source=config_path)
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config_path}: not changed: {exc}") from None
    if args.check:
        _check_broker(config)
    atomic_write_bytes(config_path, new.encode(), mode=0o644)
    print(f"{config_path}: shelf {args.shelf!r} joins the store at {args.hub}:{args.port}; "
          "restart the shelf: systemctl restart smartshelf-device")
    return 0


def _check_broker(config: Any, timeout: float = 10.0) -> None:
    from device.bus import make_client, read_password

    bus = config.bus
    client = make_client(f"join-check-{config.bus_shelf}", bus.user, read_password(bus.password_file),
                         tls=bus.tls, ca_file=bus.ca_file)
    result: dict[str, Any] = {}
    client.on_connect = lambda _c, _u, _f, reason, _p: result.setdefault("reason", reason)
    try:
        client.connect(bus.host, bus.port, keepalive=10)
    except OSError as exc:
        raise ConfigError(f"cannot reach the hub's broker at {bus.host}:{bus.port}: {exc}") from None
    client.loop_start()
    deadline = time.monotonic() + timeout
    while "reason" not in result and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    reason = result.get("reason")
    if reason is None or reason.is_failure:
        raise ConfigError(f"the broker at {bus.host}:{bus.port} refused user {bus.user!r}: {reason or 'no answer'}")


def _reload_broker() -> None:
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        result = subprocess.run(["systemctl", "reload-or-restart", "mosquitto"], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        logger.warning("could not reload mosquitto: %s", result.stderr.strip())
    print("reload the broker so that the change applies: systemctl reload mosquitto")


def cmd_add_shelf(args: argparse.Namespace) -> int:
    from admin_web.store_bus import ShelfRegistry

    slots = [s.strip() for s in args.slots.split(",") if s.strip()]
    password = ShelfRegistry(args.data_dir).add_shelf(args.name, slots)
    _reload_broker()
    if args.password_out:
        atomic_write_bytes(args.password_out, password.encode(), mode=0o600)
        print(f"paired shelf {args.name!r}; its password is in {args.password_out}")
    else:
        print(f"paired shelf {args.name!r}: user {args.name}, password (shown once) {password}")
    print(f"on the shelf: put the password in {DEFAULT_PASSWORD_FILE} (chmod 600), then: smartshelf store join "
          f"--hub HUB --shelf {args.name} --user {args.name} --password-file {DEFAULT_PASSWORD_FILE}")
    return 0


def cmd_remove_shelf(args: argparse.Namespace) -> int:
    from admin_web.store_bus import ShelfRegistry

    ShelfRegistry(args.data_dir).remove_shelf(args.name)
    _reload_broker()
    print(f"removed shelf {args.name!r}")
    return 0


#: Listen addresses a client on 127.0.0.1 reaches.
ON_LOOPBACK = ("127.0.0.1", "0.0.0.0")


def hub_config_text(data_dir: Path, port: int, listen: str, certfile: Path | None, keyfile: Path | None,
                    local_port: int = 1883) -> str:
    """Mosquitto's config for the store: the shelves' listener (TLS with ``certfile``/``keyfile``) and,
    where that one does not serve the hub's own clients (the admin, ``publish-factors``: plain MQTT to
    127.0.0.1:``local_port``), a plain listener on 127.0.0.1 only. Passwords and ACL apply to both."""
    from admin_web.store_bus import ShelfRegistry

    tls = bool(certfile or keyfile)
    if tls and not (certfile and keyfile):
        raise ConfigError("TLS needs both --certfile and --keyfile")
    local = tls or listen not in ON_LOOPBACK or port != local_port
    if local and port == local_port and listen in ON_LOOPBACK:
        raise ConfigError(f"--port {port} and --local-port {local_port} must differ: the hub's own clients need "
                          "a plain listener on 127.0.0.1 beside the store's TLS one")
    registry = ShelfRegistry(data_dir)
    registry.hub_password()  # creates the hub user, the password file and the ACL
    lines = [
        "# smartshelf store hub (smartshelf store hub-config); see docs/store-and-chain.md",
        "per_listener_settings false",
        f"listener {port} {listen}",
    ]
    if tls:
        lines += [f"certfile {certfile}", f"keyfile {keyfile}", "tls_version tlsv1.2"]
    if local:
        lines += ["# the hub's own clients (admin.broker_port), never reachable from the network",
                  f"listener {local_port} 127.0.0.1"]
    lines += [
        "allow_anonymous false",
        f"password_file {registry.password_file}",
        f"acl_file {registry.acl_file}",
        "persistence true",
        "max_queued_messages 10000",
        "persistent_client_expiration 14d",
    ]
    return "\n".join(lines) + "\n"


def cmd_hub_config(args: argparse.Namespace) -> int:
    text = hub_config_text(args.data_dir, args.port, args.listen, args.certfile, args.keyfile, args.local_port)
    atomic_write_bytes(args.out, text.encode(), mode=0o644)
    print(f"wrote {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from admin_web.store_export import export_csv

    text = export_csv(args.data_dir, args.store)
    atomic_write_bytes(args.out, text.encode(), mode=0o644)
    print(f"wrote {text.count(chr(10)) - 1} interaction(s) to {args.out}")
    return 0


def cmd_publish_factors(args: argparse.Namespace) -> int:
    from admin_web.store_bus import StoreHub
    from device.recommend.factors import FactorModel

    FactorModel.load(args.file)  # a damaged file is not announced
    hub = StoreHub(args.data_dir, port=args.port, client_id="hub-publish").start()
    try:
        hub.publish_factors(args.file.read_bytes()).wait_for_publish(30)
    finally:
        hub.close()
    print(f"announced {args.file} to the store")
    return 0
