"""Development commands of the ``smartshelf`` CLI, registered only in a development checkout.

``smartshelf bench``, ``smartshelf factors evaluate|bench|demo-data`` and ``smartshelf terminal
simulate`` measure and exercise the shelf; none of them runs on a shelf, so none of them ships.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from smartshelf.core.commands import command_group
from smartshelf.core.errors import ConfigError
from tools import bench, bus_soak, factor_signing
from tools import terminal_simulator as simulator
from tools.chain import cli as chain_cli
from tools.recommender import cli as recommender_cli


def register(subparsers: Any) -> None:
    bench.register(subparsers)
    bus_soak.register(subparsers)
    chain_cli.register(subparsers)
    recommender_cli.register(subparsers)
    factor_signing.register(command_group(subparsers, "factors", help="train, check and retrain factor files"))
    sub = command_group(subparsers, "terminal", help="payment terminals: pair, revoke, export sales")
    p = sub.add_parser("simulate", help="send signed sales to an admin server (demos, load tests)")
    p.add_argument("--url", required=True, help="admin base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--terminal-id", required=True)
    p.add_argument("--secret", help="the terminal's secret (default: $SMARTSHELF_TERMINAL_SECRET, which keeps it "
                   "out of the process list)")
    p.add_argument("--rate", help="events per second overall, e.g. 200/s (default: as fast as possible)")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--skus", required=True, help="comma-separated skus to sell, e.g. A1,B2")
    p.add_argument("--duplicates", type=float, default=0.0, help="share of sends that repeat an earlier event (0-1)")
    p.add_argument("--refunds", type=float, default=0.0, help="share of new events that are refunds (0-1)")
    p.add_argument("--concurrency", type=int, default=4, help="parallel connections")
    p.add_argument("--retries", type=int, default=0, help="retries for a send without a 200 (not 401/422)")
    p.add_argument("--currency", default="EUR")
    p.add_argument("--seed", type=int)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    skus = [s.strip() for s in args.skus.split(",") if s.strip()]
    if not skus:
        raise ConfigError("--skus must name at least one sku")
    rate = None
    if args.rate:
        text = args.rate.removesuffix("/s")
        try:
            rate = float(text)
        except ValueError:
            raise ConfigError(f"--rate {args.rate!r} must be a number of events per second, e.g. 200/s") from None
        if rate <= 0:
            raise ConfigError(f"--rate {args.rate!r} must be above 0")
    try:
        plan = simulator.plan_events(
            args.count, skus, duplicates=args.duplicates, refunds=args.refunds, seed=args.seed,
            currency=args.currency,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    secret = args.secret or os.environ.get("SMARTSHELF_TERMINAL_SECRET")
    if not secret:
        raise ConfigError("give --secret or set SMARTSHELF_TERMINAL_SECRET")
    summary = simulator.run(
        args.url, args.terminal_id, secret, plan,
        concurrency=args.concurrency, rate=rate, retries=args.retries,
    )
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(summary.text())
    return 0 if summary.errors == 0 else 1
