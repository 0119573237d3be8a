"""The ``smartshelf`` console script, the one place where the rooms are assembled: a thin dispatcher
over per-area command modules.

Each module in COMMAND_MODULES exposes ``register(subparsers)``, which adds its sub-command(s)
and sets ``func(args) -> int`` on the parser. Modules must not import hardware libraries or flask
at import time (only inside the handler), so ``smartshelf --help`` stays fast and hardware-free.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from smartshelf.core import __version__
from smartshelf.core.errors import SmartShelfError

logger = logging.getLogger(__name__)

#: What ships: the shelf runtime, the staff app and the installer's commands.
COMMAND_MODULES: tuple[str, ...] = (
    "device.app",
    "device.recommend.cli",
    "admin_web.terminals.cli",
    "admin_web.cli",
    "smartshelf.installer.doctor",
    "smartshelf.installer.update",
    "smartshelf.installer.firstboot",
    "smartshelf.installer.store",
)

#: Development commands (bench, factors evaluate, terminal simulate, ...): registered only where the
#: ``tools`` package is importable, i.e. in a development checkout (``./setup.sh --dev`` puts the
#: checkout on the venv's path). The wheel that ships to a shelf does not contain it.
DEV_COMMAND_MODULE = "tools.cli"


def configure_logging(debug: bool = False) -> None:
    """Log to stderr once per entry point (journald adds its own timestamps)."""
    level = logging.DEBUG if debug else logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_smartshelf", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._smartshelf = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartshelf", description="Smart shelf device, admin and tools.")
    parser.add_argument("--version", action="version", version=f"smartshelf {__version__}")
    parser.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    if importlib.util.find_spec(DEV_COMMAND_MODULE.partition(".")[0]) is not None:
        importlib.import_module(DEV_COMMAND_MODULE).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.debug)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the operator; the traceback only with --debug
        if args.debug:
            logger.exception("failed")
        print(f"smartshelf: error: {explain(exc)}", file=sys.stderr)
        return 1


def explain(exc: BaseException) -> str:
    """One line saying what failed and what to do: the message of our own errors, the file and the fix
    for the operating system's (permission denied, disk full, missing file), else the exception."""
    if isinstance(exc, SmartShelfError):
        return str(exc)
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else None
        target = f" {where}" if where is not None else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return (f"disk full writing{target or ' a file'}: nothing more was written; free space on the SD card "
                    "(old backups, the journal: journalctl --vacuum-size=50M) and try again")
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            return (f"permission denied:{target or ' a file'} ({exc.strerror}); run as the service user "
                    "(sudo -u smartshelf ...) or fix the owner of the data folder")
        if isinstance(exc, FileNotFoundError):
            return f"missing file:{target or ' (unnamed)'}; check the path, or run `smartshelf doctor`"
        return f"{exc.strerror or exc}{':' + target if target else ''}"
    return (f"unexpected {type(exc).__name__}: {exc} (this is a bug: run again with --debug for the traceback "
            "and report it)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
