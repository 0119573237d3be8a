"""``smartshelf terminal ...``: pair, list, revoke, export, conversions (``terminal simulate`` is a
development tool, in ``tools.cli``).

No flask import here (``smartshelf --help`` stays light). Writers (pair, revoke) take store.json's
file lock, so they are safe while the admin service runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from smartshelf.core.commands import command_group
from smartshelf.core.errors import ConfigError


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    from smartshelf.core.config import load_effective_config

    return load_effective_config(args.config).data_dir


def _window(args: argparse.Namespace) -> int:
    if args.window is not None:
        return int(args.window)
    from smartshelf.core.config import load_effective_config

    return load_effective_config(args.config).admin.conversion_window_s


def _ledger(args: argparse.Namespace) -> Any:
    from admin_web.terminals.ledger import TerminalLedger

    return TerminalLedger(_data_dir(args))


def cmd_pair(args: argparse.Namespace) -> int:
    secret = None
    if args.provider != "generic":
        secret = args.webhook_secret
        if not secret:
            raise ConfigError(f"--webhook-secret is required for a {args.provider} terminal")
    pairing = _ledger(args).pair(args.name, provider=args.provider, secret=secret)
    if args.json:
        out: dict[str, Any] = {"terminal_id": pairing.terminal_id}
        if pairing.provider == "generic":
            out["secret"] = pairing.secret
        print(json.dumps(out))
    else:
        print(f"terminal id: {pairing.terminal_id}")
        if pairing.provider == "generic":
            print(f"secret:      {pairing.secret}")
            print("Enter both on the terminal now; the secret is not shown again.")
        else:
            print(f"webhook URL: http://<admin host>:<port>/api/v1/terminal/stripe/{pairing.terminal_id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    terminals = _ledger(args).terminals()
    if args.json:
        print(json.dumps([
            {"terminal_id": t.terminal_id, "name": t.name, "provider": t.provider, "created_at": t.created_at,
             "last_seen": t.last_seen, "revoked_at": t.revoked_at}
            for t in terminals
        ], indent=2))
        return 0
    for t in terminals:
        state = "active" if t.active else f"revoked {t.revoked_at}"
        print(f"{t.terminal_id}  {t.provider:8}  {state:30}  last seen {t.last_seen or 'never'}  {t.name}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    info = _ledger(args).revoke(args.terminal_id)
    print(f"revoked {info.terminal_id} ({info.name}) at {info.revoked_at}")
    return 0


def _conversions(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from admin_web.terminals import conversion

    ledger = _ledger(args)
    data_dir = ledger.data_dir
    events_db = Path(args.events) if args.events else data_dir / "events.sqlite3"
    report, attributions = conversion.compute(ledger.sales(), events_db, window_s=_window(args))
    return ledger, report, attributions


def cmd_export(args: argparse.Namespace) -> int:
    from admin_web.terminals import conversion
    from smartshelf.core.storage import atomic_write_bytes

    ledger, _, attributions = _conversions(args)
    products = ledger.products()
    item_ids = {p.get("sku"): p.get("item_id") for p in products if p.get("item_id")}
    interactions, users = conversion.interactions_csv(attributions, item_ids)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "interactions.csv", interactions.encode("utf-8"))
    atomic_write_bytes(out / "users.csv", users.encode("utf-8"))
    atomic_write_bytes(out / "items.csv", conversion.items_csv(products).encode("utf-8"))
    rows = interactions.count("\n") - 1
    print(f"wrote {out / 'interactions.csv'} ({rows} rows), {out / 'users.csv'} and {out / 'items.csv'} "
          f"({len(products)} products)")
    return 0


def cmd_conversions(args: argparse.Namespace) -> int:
    from admin_web.terminals import conversion

    _, report, _ = _conversions(args)
    if args.json:
        print(conversion.dumps_report(report))
        return 0
    print(f"conversion window {report.window_s} s; {report.converted_lines}/{report.sales_lines} sale lines converted")
    for r in report.by_segment + report.by_variant:
        rate = "-" if r.rate is None else f"{100 * r.rate:.1f} %"
        print(f"{r.key:16} visits {r.visits:6}  converted {r.converted:6}  {rate}")
    uplift = report.uplift
    print("uplift: " + ("not measurable yet" if uplift is None else f"{100 * uplift:+.1f} points"))
    return 0


def register(subparsers: Any) -> None:
    sub = command_group(subparsers, "terminal", help="payment terminals: pair, revoke, export sales")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="smartshelf config file (default /etc/smartshelf/config.toml)")
        p.add_argument("--data-dir", help="data dir (default: shelf.data_dir of the config)")

    p = sub.add_parser("pair", help="pair a terminal; prints its id and (once) its secret")
    common(p)
    p.add_argument("--name", required=True, help="a label for the terminal, e.g. 'Till 1'")
    p.add_argument("--provider", default="generic", choices=("generic", "stripe"))
    p.add_argument("--webhook-secret", help="stripe: the webhook signing secret (whsec_...)")
    p.add_argument("--json", action="store_true", help='print {"terminal_id": ..., "secret": ...}')
    p.set_defaults(func=cmd_pair)

    p = sub.add_parser("list", help="list paired terminals")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("revoke", help="revoke a terminal (its events get 401 from now on)")
    common(p)
    p.add_argument("terminal_id")
    p.set_defaults(func=cmd_revoke)

    for name, func, helptext in (
        ("export", cmd_export, "write interactions.csv, users.csv and items.csv for the retrain"),
        ("conversions", cmd_conversions, "conversion rate by segment and the A/B uplift"),
    ):
        p = sub.add_parser(name, help=helptext)
        common(p)
        p.add_argument("--events", help="the device's event database (default <data_dir>/events.sqlite3)")
        p.add_argument("--window", type=int, help="conversion window in seconds (default admin.conversion_window_s)")
        if name == "export":
            p.add_argument("--out", required=True, help="folder for interactions.csv, users.csv and items.csv")
        else:
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
