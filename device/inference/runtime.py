"""TFLite runtime loading and model-file verification.

The TFLite runtime (``ai_edge_litert``, falling back to ``tflite_runtime``) is imported only inside
:func:`load_interpreter`, so importing this module never needs it. Every model file the device loads
is checked against ``models/manifest.json`` first: a file that is missing, unlisted or whose sha256
differs is refused with :class:`~smartshelf.core.errors.ModelError`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from smartshelf.core.errors import HardwareUnavailable, ModelError

logger = logging.getLogger(__name__)

def _models_dir() -> Path:
    """The ``models`` package's folder: the .tflite files and manifest ship in it as package data."""
    return Path(str(importlib.resources.files("models")))


#: Where the shipped models are (``models/`` in a checkout, ``site-packages/models`` when installed).
MODELS_DIR: Path = _models_dir()

MANIFEST_NAME = "manifest.json"

_REQUIRED_KEYS = ("name", "file", "sha256", "input_shape", "dtype", "licence", "source")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(manifest_path: Path | None = None) -> list[dict[str, Any]]:
    """Read and validate the manifest: a JSON object with a ``models`` list of entries."""
    path = Path(manifest_path) if manifest_path is not None else MODELS_DIR / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model manifest {path} not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model manifest {path} is unreadable: {exc}") from exc
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ModelError(f"model manifest {path}: expected an object with a 'models' list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ModelError(f"model manifest {path}: entry {i} is not an object")
        missing = [k for k in _REQUIRED_KEYS if k not in entry]
        if missing:
            raise ModelError(f"model manifest {path}: entry {i} ({entry.get('file')!r}) lacks {missing}")
    return entries


def verify_model(path: Path, manifest_path: Path | None = None) -> dict[str, Any]:
    """Check ``path`` against its manifest entry (matched by file name) and return the entry.

    The manifest defaults to ``manifest.json`` in the model's own directory. Raises
    :class:`ModelError` naming the file when it is missing, not listed, or its sha256 differs.
    """
    path = Path(path)
    if manifest_path is None:
        manifest_path = path.parent / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    entries = load_manifest(manifest_path)
    entry = next((e for e in entries if e["file"] == path.name), None)
    if entry is None:
        raise ModelError(f"model file {path} is not listed in {manifest_path}; refusing to load it")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ModelError(
            f"model file {path} does not match {manifest_path} (sha256 {actual[:16]}..., "
            f"expected {str(entry['sha256'])[:16]}...); the file is corrupt or was modified"
        )
    return entry


def load_interpreter(path: Path, *, num_threads: int = 2) -> Any:
    """Build a TFLite interpreter for ``path`` with tensors allocated (call once per model).

    Uses ``ai_edge_litert`` and falls back to ``tflite_runtime``; raises
    :class:`HardwareUnavailable` with the fix when neither is installed, and
    :class:`ModelError` when the file is not a valid TFLite model.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            logger.error("no TFLite runtime installed (ai_edge_litert or tflite_runtime)")
            raise HardwareUnavailable(
                "no TFLite runtime: neither ai_edge_litert nor tflite_runtime can be imported; "
                "fix: pip install ai-edge-litert"
            ) from None
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model file {path} could not be loaded by the TFLite runtime: {exc}") from exc
    return interpreter


def quantize(values: Any, detail: dict[str, Any]) -> Any:
    """Map float values into a tensor's dtype using its (scale, zero_point); float tensors pass through."""
    import numpy as np

    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return np.asarray(values, dtype=dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    q = np.round(np.asarray(values, dtype=np.float32) / scale + zero)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: Any, detail: dict[str, Any]) -> Any:
    """Map a tensor's raw values back to float32 using its (scale, zero_point)."""
    import numpy as np

    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    scale, zero = detail["quantization"]
    return (arr.astype(np.float32) - zero) * scale


class InterpreterModel:
    """Base of the models that own one TFLite interpreter: ``close()`` (safe twice) drops it, and
    every model is a context manager."""

    _interpreter: Any = None

    def close(self) -> None:
        self._interpreter = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
