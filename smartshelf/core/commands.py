"""One helper for the CLI's command modules: a sub-command group that several modules extend.

``smartshelf factors`` is registered by the shelf runtime (train, prior, retrain, inspect) and, in a
development checkout, extended by ``tools`` (evaluate, bench, demo-data); whichever registers first
creates the group and the other adds to it.
"""

from __future__ import annotations

import argparse
from typing import Any

_GROUP_ATTR = "_smartshelf_group"


def command_group(subparsers: Any, name: str, *, help: str) -> Any:
    """The sub-parsers of the command ``name``, created on first use."""
    parser: argparse.ArgumentParser | None = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        group = parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="ACTION", required=True)
        setattr(parser, _GROUP_ATTR, group)
    return getattr(parser, _GROUP_ATTR)
