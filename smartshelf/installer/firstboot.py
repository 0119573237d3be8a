"""`smartshelf firstboot`: adopt the settings file an installer left on the SD card's boot partition.

The installer writes ``/boot/firmware/smartshelf.toml`` while flashing (the boot partition is FAT,
readable from any computer). It is an ordinary config file (every section of config.toml, same
validation) plus one optional table that never reaches ``/etc``::

    [firstboot]
    admin_user = "admin"                                  # optional, default "admin"
    admin_password_hash = "scrypt:32768:8:1$...$..."     # werkzeug hash: smartshelf firstboot --hash-password
    bus_password = "..."                                  # optional: a store shelf's broker password
                                                          # (from the hub's `smartshelf store add-shelf`);
                                                          # written to bus.password_file (0600)

    [shelf]
    name = "Aisle 3 - skincare"
    ...

On boot (``smartshelf-firstboot.service``, a oneshot that runs before the device and admin
services when the file exists) or from setup.sh, the file is validated with
:func:`smartshelf.core.config.parse_config` after the ``[firstboot]`` table is removed. When valid:

* the config part goes to ``/etc/smartshelf/config.toml`` (an existing file is kept as
  ``config.toml.bak-<UTC time>``), written atomically, mode 0644;
* the admin password hash is stored in the admin's ``accounts.json`` (users table, the same
  record ``smartshelf admin set-password`` writes, under the same file lock);
* the file is removed from the boot partition (it held the password hash).

When invalid, nothing is changed; the file is renamed ``smartshelf.toml.invalid`` and the reason is
written to ``smartshelf-error.txt`` beside it, so the installer sees it on the card; exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import pwd
import re
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartshelf.core.config import DEFAULT_CONFIG_PATH, Config, parse_config
from smartshelf.core.errors import ConfigError

logger = logging.getLogger(__name__)

BOOT_FILE = Path("/boot/firmware/smartshelf.toml")
FIRSTBOOT_TABLE = "firstboot"
FIRSTBOOT_KEYS = {"admin_user", "admin_password_hash", "bus_password"}
#: werkzeug.security hashes: "method$salt$hexdigest" with method scrypt:... or pbkdf2:...
HASH_RE = re.compile(r"(scrypt:\d+:\d+:\d+|pbkdf2:sha(256|512)(:\d+)?)\$[^$\s]+\$[0-9a-f]{32,}")
USERNAME_RE = re.compile(r"[^\s].{0,63}")
SERVICE_USER = "smartshelf"


@dataclass(frozen=True)
class FirstBoot:
    """A validated first-boot file."""

    config: Config
    config_text: str
    admin_user: str
    admin_password_hash: str | None
    bus_password: str | None = None


def strip_table(text: str, table: str) -> str:
    """Remove the ``[table]`` section (header to the next table header) from TOML text."""
    out: list[str] = []
    skipping = False
    header = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?")
    for line in text.splitlines(keepends=True):
        match = header.fullmatch(line)
        if match:
            name = match.group(1).strip().strip('"')
            skipping = name == table or name.startswith(table + ".")
        if not skipping:
            out.append(line)
    return "".join(out)


def parse_firstboot(text: str, source: Path) -> FirstBoot:
    """Validate the first-boot file's text; raises ConfigError naming the file and key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    extra = raw.pop(FIRSTBOOT_TABLE, {})
    if not isinstance(extra, dict):
        raise ConfigError(f"{source}: [{FIRSTBOOT_TABLE}] must be a table")
    unknown = sorted(set(extra) - FIRSTBOOT_KEYS)
    if "admin_password" in unknown:
        raise ConfigError(
            f"{source}: {FIRSTBOOT_TABLE}.admin_password is refused: never put the password itself in the file; "
            f"write {FIRSTBOOT_TABLE}.admin_password_hash instead (make the line with: smartshelf firstboot "
            "--hash-password)"
        )
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {FIRSTBOOT_TABLE}.{unknown[0]}; known keys: {', '.join(sorted(FIRSTBOOT_KEYS))}"
        )
    user = extra.get("admin_user", "admin")
    if not isinstance(user, str) or not USERNAME_RE.fullmatch(user) or not user.isprintable():
        raise ConfigError(
            f"{source}: {FIRSTBOOT_TABLE}.admin_user = {user!r} must be 1-64 printable characters"
        )
    pw_hash = extra.get("admin_password_hash")
    if pw_hash is not None and (not isinstance(pw_hash, str) or not HASH_RE.fullmatch(pw_hash)):
        raise ConfigError(
            f"{source}: {FIRSTBOOT_TABLE}.admin_password_hash is not a password hash "
            "(make one with: smartshelf firstboot --hash-password); never put the password itself in the file"
        )
    bus_password = extra.get("bus_password")
    if bus_password is not None and (not isinstance(bus_password, str) or not bus_password.strip()):
        raise ConfigError(f"{source}: {FIRSTBOOT_TABLE}.bus_password must be the non-empty password from the hub's pairing")
    config_text = strip_table(text, FIRSTBOOT_TABLE)
    try:
        stripped = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as exc:  # e.g. a dotted key firstboot.x = ... outside the table
        raise ConfigError(f"{source}: cannot separate [{FIRSTBOOT_TABLE}] from the config: {exc}") from None
    if stripped != raw:
        raise ConfigError(
            f"{source}: write the first-boot keys as a [{FIRSTBOOT_TABLE}] table of their own, not as dotted keys"
        )
    try:
        config = parse_config(raw, source=source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if bus_password is not None and (not config.bus.enabled or config.bus.password_file is None):
        raise ConfigError(
            f"{source}: {FIRSTBOOT_TABLE}.bus_password needs [bus] enabled = true and bus.password_file (where it goes)"
        )
    return FirstBoot(config, config_text, user, pw_hash, bus_password)


def _atomic_write_text(path: Path, text: str, mode: int) -> None:
    from smartshelf.core.storage import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def store_admin_password_hash(data_dir: Path, username: str, pw_hash: str) -> None:
    """Create or replace ``username``'s password hash in the admin's accounts.json."""
    from admin_web.accounts import AccountStore

    store = AccountStore(data_dir)
    try:
        store.set_password_hash(username, pw_hash)  # the admin's own validation, lock and atomic write
    finally:
        store.close()


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None or os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        logger.warning("user %s does not exist; leaving %s owned by root", user, path)
        return
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chown(item, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def apply(
    boot_file: Path = BOOT_FILE,
    config_path: Path = DEFAULT_CONFIG_PATH,
    *,
    data_dir: Path | None = None,
    owner: str | None = SERVICE_USER,
    out: Any = None,
) -> int:
    """Adopt ``boot_file`` if present. 0: adopted or nothing to do; 1: invalid (reason on the card)."""
    out = out or sys.stdout
    if not boot_file.exists():
        print(f"no first-boot file {boot_file}; nothing to do", file=out)
        return 0
    error_file = boot_file.with_name("smartshelf-error.txt")
    try:
        text = boot_file.read_text(encoding="utf-8")
        fb = parse_firstboot(text, boot_file)
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        reason = str(exc)
        logger.error("first-boot file rejected: %s", reason)
        try:
            error_file.write_text(
                f"smartshelf first boot, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}:\n{reason}\n"
                "Fix the file and rename it back to smartshelf.toml.\n"
            )
            os.replace(boot_file, boot_file.with_name(boot_file.name + ".invalid"))
        except OSError as write_exc:
            logger.error("cannot record the error on the boot partition: %s", write_exc)
        print(f"first-boot file {boot_file} is invalid: {reason}", file=out)
        return 1
    config_path.parent.mkdir(parents=True, exist_ok=True)
    if config_path.exists():
        backup = config_path.with_name(
            f"{config_path.name}.bak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        )
        shutil.copy2(config_path, backup)
        print(f"kept the previous config as {backup}", file=out)
    header = (
        f"# Adopted from {boot_file} on first boot ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n"
    )
    _atomic_write_text(config_path, header + fb.config_text, 0o644)
    print(f"wrote {config_path} (shelf {fb.config.shelf.name!r})", file=out)
    if fb.bus_password is not None and fb.config.bus.password_file is not None:
        # The store bus password (from the hub's pairing) goes to its own 0600 file, never into the config.
        password_file = Path(fb.config.bus.password_file)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(password_file, fb.bus_password.strip() + "\n", 0o600)
        _chown_tree(password_file, owner)
        print(f"wrote the store bus password to {password_file}", file=out)
    target_dir = data_dir or fb.config.data_dir
    if fb.admin_password_hash:
        target_dir.mkdir(parents=True, exist_ok=True)
        store_admin_password_hash(target_dir, fb.admin_user, fb.admin_password_hash)
        _chown_tree(target_dir, owner)
        print(f"set the admin password of {fb.admin_user!r} in {target_dir / 'accounts.json'}", file=out)
    boot_file.unlink()
    if error_file.exists():
        error_file.unlink()
    print(f"removed {boot_file}", file=out)
    return 0


def hash_password(password: str) -> str:
    from werkzeug.security import generate_password_hash

    from admin_web.accounts import MIN_PASSWORD_LENGTH

    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    return generate_password_hash(password)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "firstboot",
        help="adopt /boot/firmware/smartshelf.toml (config + admin password hash) written by the installer",
    )
    p.add_argument("--boot-file", type=Path, default=BOOT_FILE, help=f"first-boot file (default {BOOT_FILE})")
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"where the config goes (default {DEFAULT_CONFIG_PATH})",
    )
    p.add_argument(
        "--data-dir", type=Path, default=None, help="admin data dir (default: shelf.data_dir of the file)"
    )
    p.add_argument("--owner", default=SERVICE_USER, help="user that owns the data files when run as root")
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (prompt or stdin) and print the admin_password_hash line for the file",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        if sys.stdin.isatty():
            password = getpass.getpass("admin password: ")
            if getpass.getpass("again: ") != password:
                raise ConfigError("the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        print(f'admin_password_hash = "{hash_password(password)}"')
        return 0
    return apply(args.boot_file, args.config, data_dir=args.data_dir, owner=args.owner)
