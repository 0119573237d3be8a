"""``smartshelf admin ...``: serve the admin page (waitress) and manage accounts, tokens, backups.

No flask import at module import time (``smartshelf --help`` stays light); handlers import lazily.

    smartshelf admin [serve] [--config PATH] [--data-dir D] [--host H] [--port P] [--threads N]
    smartshelf admin set-password [--user NAME]        # password read from stdin
    smartshelf admin create-token --name NAME          # prints the token alone on stdout
    smartshelf admin rotate-device-secret              # revoke the admin<->device control secret
    smartshelf admin backup [--dest DIR]
    smartshelf admin restore ARCHIVE
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from smartshelf.core.config import resolve_runtime_dir
from smartshelf.core.errors import ConfigError, PortUnavailable

logger = logging.getLogger(__name__)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help="smartshelf config file (default /etc/smartshelf/config.toml if present)")
    common.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="D",
                        help="data folder (default: shelf.data_dir of the config)")
    return common


def _serve_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--host", default=default, help="listen address (default admin.host of the config, 0.0.0.0)")
    parser.add_argument("--port", type=int, default=default, help="listen port (default admin.port, 8080)")
    parser.add_argument("--check", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="check the config and the data files, then exit (for ExecStartPre=)")
    parser.add_argument("--threads", type=int, default=argparse.SUPPRESS if suppress else 8,
                        help="waitress worker threads (default 8)")


def register(subparsers: Any) -> None:
    common = _common()
    admin = subparsers.add_parser("admin", parents=[common], help="serve the admin page; accounts, tokens, backups",
                                  description="Serve the staff admin page with waitress, or manage it.")
    _serve_options(admin, suppress=False)
    admin.set_defaults(func=serve)
    sub = admin.add_subparsers(dest="admin_command", metavar="ACTION")

    p = sub.add_parser("serve", parents=[common], help="serve the admin page (the default action)")
    _serve_options(p, suppress=True)
    p.set_defaults(func=serve)

    p = sub.add_parser("set-password", parents=[common], help="set a staff password (read from stdin)")
    p.add_argument("--user", default="admin", help="user name (default admin)")
    p.set_defaults(func=set_password)

    p = sub.add_parser("create-token", parents=[common], help="create an API token; prints it alone on stdout")
    p.add_argument("--name", required=True, help="what the token is for, e.g. 'pos-sync'")
    p.add_argument("--scope", action="append", default=None, metavar="SCOPE",
                   help="a scope (repeat for more): products:read, stock:write, products:write "
                        "(default: products:read and stock:write, what a POS sync needs)")
    p.set_defaults(func=create_token)

    p = sub.add_parser("revoke-token", parents=[common], help="revoke an API token by name")
    p.add_argument("--name", required=True)
    p.set_defaults(func=revoke_token)

    p = sub.add_parser("rotate-device-secret", parents=[common],
                       help="write a new admin<->device control secret (the old one stops working at once)")
    p.set_defaults(func=rotate_device_secret)

    p = sub.add_parser("backup", parents=[common], help="write a .tar.gz of store, accounts and images")
    p.add_argument("--dest", default=None, help="folder for the archive (default <data_dir>/backups)")
    p.set_defaults(func=backup)

    p = sub.add_parser("restore", parents=[common], help="restore a backup archive (the current state is saved first)")
    p.add_argument("archive", help="archive written by `smartshelf admin backup`")
    p.set_defaults(func=restore)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from smartshelf.core.config import load_effective_config

    cfg = load_effective_config(getattr(args, "config", None))
    data_dir = Path(getattr(args, "data_dir", None) or cfg.data_dir)
    return {
        "DATA_DIR": str(data_dir), "RUNTIME_DIR": str(resolve_runtime_dir(cfg.shelf.runtime_dir, data_dir)),
        "DEVICE_URL": cfg.admin.device_url, "SHELF_NAME": cfg.shelf.name,
        "CONVERSION_WINDOW_S": cfg.admin.conversion_window_s, "HOST": cfg.admin.host, "PORT": cfg.admin.port,
        "SMARTSHELF_CONFIG": str(cfg.source) if cfg.source else None,
    }


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    host = args.host or settings.pop("HOST")
    port = args.port or settings.pop("PORT")
    settings.pop("HOST", None)
    settings.pop("PORT", None)
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"--port {port}: must be 1-65535")
    from waitress import create_server

    from admin_web import create_app
    from admin_web.accounts import AccountStore

    app = create_app(settings)  # checks store.json and accounts.json: a bad file is one line, exit 1
    if getattr(args, "check", False):
        print(f"admin data in {settings['DATA_DIR']} is valid", file=sys.stderr)
        return 0
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("admin.proxy_hops = %d but the admin listens on %s: a client that reaches it directly can "
                       "choose its X-Forwarded-For; listen on 127.0.0.1 behind the proxy", hops, host)
    if not AccountStore(settings["DATA_DIR"]).has_users():
        logger.warning("no admin password is set: run `smartshelf admin set-password --data-dir %s`",
                       settings["DATA_DIR"])
    try:  # bind first: say where the page is only once it really listens there
        server = create_server(app, host=host, port=int(port), threads=max(1, args.threads), ident="smartshelf-admin",
                               # behind a proxy, werkzeug's ProxyFix (admin.proxy_hops) reads X-Forwarded-*; else drop them
                               clear_untrusted_proxy_headers=not hops)
    except OSError as exc:
        raise PortUnavailable.from_os_error("the admin page", host, int(port), exc,
                                            setting="--port or admin.port in the config") from exc
    logger.info("admin page on http://%s:%s/ (data %s)", host, port, settings["DATA_DIR"])
    from admin_web.app import close_app

    def on_sigterm(signum: int, _frame: Any) -> None:  # systemctl stop: shut down as on Ctrl-C
        logger.info("signal %d: stopping", signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        close_app(app)
    return 0


def _read_password(user: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"New password for {user}: ")
        if getpass.getpass("Again: ") != first:
            raise ConfigError("the two passwords differ; nothing changed")
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n")


def set_password(args: argparse.Namespace) -> int:
    from admin_web.accounts import AccountStore
    from admin_web.errors import ValidationError

    settings = _settings(args)
    password = _read_password(args.user)
    try:
        AccountStore(settings["DATA_DIR"]).set_password(args.user, password)
    except ValidationError as exc:
        raise ConfigError(f"password not changed: {exc}") from None
    print(f"password for {args.user} set in {Path(settings['DATA_DIR']) / 'accounts.json'}", file=sys.stderr)
    return 0


def create_token(args: argparse.Namespace) -> int:
    from admin_web.accounts import AccountStore
    from admin_web.errors import ValidationError

    try:
        store = AccountStore(_settings(args)["DATA_DIR"])
        token = store.create_token(args.name, args.scope)
    except ValidationError as exc:
        raise ConfigError(f"token not created: {exc}") from None
    scopes = store.token_info(token)["scopes"]  # type: ignore[index]
    print(token)
    print(f"API token {args.name!r} created with scopes {', '.join(scopes)}; it is shown only now. "
          "Use: Authorization: Bearer <token>", file=sys.stderr)
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    from admin_web.accounts import AccountStore
    from admin_web.errors import NotFound

    try:
        AccountStore(_settings(args)["DATA_DIR"]).revoke_token(args.name)
    except NotFound as exc:
        raise ConfigError(str(exc)) from None
    print(f"token {args.name!r} revoked", file=sys.stderr)
    return 0


def rotate_device_secret(args: argparse.Namespace) -> int:
    from smartshelf.core.control import rotate, secret_path

    data_dir = _settings(args)["DATA_DIR"]
    rotate(data_dir)
    print(f"new device control secret in {secret_path(data_dir)}; the old one is refused from now on",
          file=sys.stderr)
    return 0


def backup(args: argparse.Namespace) -> int:
    from smartshelf.core.storage import backup as do_backup

    archive = do_backup(_settings(args)["DATA_DIR"], args.dest)
    print(archive)
    return 0


def restore(args: argparse.Namespace) -> int:
    from smartshelf.core.storage import restore as do_restore

    settings = _settings(args)
    safety = do_restore(args.archive, settings["DATA_DIR"])
    print(f"restored {args.archive} into {settings['DATA_DIR']}"
          + (f"; the previous state is saved in {safety}" if safety else ""), file=sys.stderr)
    return 0
