"""Helpers that write ``models/manifest.json`` entries (development tools only)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from device.inference.runtime import sha256_of


def update_manifest(
    manifest: Path,
    *,
    name: str,
    path: Path,
    input_shape: list[int],
    dtype: str,
    licence: str,
    source: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Insert or replace the entry for ``path.name`` and write the manifest atomically."""
    data: dict[str, Any] = {"models": []}
    if manifest.exists():
        data = json.loads(manifest.read_text(encoding="utf-8"))
    entry: dict[str, Any] = {
        "name": name,
        "file": path.name,
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "input_shape": list(input_shape),
        "dtype": dtype,
        "licence": licence,
        "source": source,
    }
    if extra:
        entry.update(extra)
    models = [m for m in data.get("models", []) if m.get("file") != path.name]
    models.append(entry)
    models.sort(key=lambda m: m["file"])
    data["models"] = models
    fd, tmp = tempfile.mkstemp(dir=manifest.parent, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, manifest)
    return entry
