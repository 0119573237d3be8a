"""Checking files we read against their schema, with one-line errors naming the file and the key.

A schema is a dict ``field -> spec``; a spec is a type or a tuple of types (``type(None)`` for
nullable), or a callable ``value -> bool``. :func:`check_table` checks every document of a TinyDB
table mapping (``{doc_id: doc}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from smartshelf.core.errors import StorageError

Spec = type | tuple[type, ...] | Callable[[Any], bool]


def bounded_int(low: int, high: int, *, nullable: bool = False) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        if value is None:
            return nullable
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    ok.__doc__ = f"a whole number in [{low}, {high}]" + (" or null" if nullable else "")
    return ok


def _describe(spec: Spec) -> str:
    if isinstance(spec, type):
        return {"str": "text", "int": "a whole number", "float": "a number", "bool": "true/false",
                "dict": "an object", "list": "a list"}.get(spec.__name__, spec.__name__)
    if isinstance(spec, tuple):
        return " or ".join("null" if t is type(None) else _describe(t) for t in spec)
    return (spec.__doc__ or "valid").strip()


def _ok(value: Any, spec: Spec) -> bool:
    if isinstance(spec, (type, tuple)):
        types = spec if isinstance(spec, tuple) else (spec,)
        if isinstance(value, bool) and bool not in types:
            return False
        return isinstance(value, types)
    return bool(spec(value))


def check_doc(path: Path, where: str, doc: Any, schema: Mapping[str, Spec], *, required: tuple[str, ...] = ()) -> None:
    if not isinstance(doc, dict):
        raise StorageError(f"{path}: {where} must be an object, not {type(doc).__name__}")
    for key in required:
        if key not in doc:
            raise StorageError(f"{path}: {where}.{key} is missing")
    for key, value in doc.items():
        spec = schema.get(key)
        if spec is None:
            continue  # other areas' fields are theirs to check
        if not _ok(value, spec):
            raise StorageError(f"{path}: {where}.{key} = {str(value)[:60]!r} must be {_describe(spec)}")


def check_table(path: Path, tables: Any, name: str, schema: Mapping[str, Spec], *,
                required: tuple[str, ...] = ()) -> None:
    if not isinstance(tables, dict):
        raise StorageError(f"{path}: the file must hold a JSON object of tables")
    table = tables.get(name, {})
    if not isinstance(table, dict):
        raise StorageError(f"{path}: table {name!r} must be an object of documents")
    for doc_id, doc in table.items():
        check_doc(path, f"{name}[{doc_id}]", doc, schema, required=required)
