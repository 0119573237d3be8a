"""JSON from outside, decoded with a bound on nesting (a deeply nested body is a clear error, not a
RecursionError and a 500)."""

from __future__ import annotations

import json
from typing import Any

from smartshelf.core.errors import SmartShelfError


class JSONDepthError(SmartShelfError, ValueError):
    """The JSON document nests deeper than allowed."""


def nesting_depth(raw: bytes | str) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, ignoring brackets inside strings (linear scan)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_bounded(raw: bytes | str, *, max_depth: int = 16) -> Any:
    """``json.loads`` that refuses documents nested deeper than ``max_depth`` before parsing them.

    Raises :class:`JSONDepthError` for too deep, ``ValueError``/``UnicodeDecodeError`` for bad JSON.
    Non-standard constants (NaN, Infinity) are refused too.
    """
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise JSONDepthError(f"the JSON body nests {depth} levels deep; at most {max_depth}")

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(raw, parse_constant=_no_constants)
