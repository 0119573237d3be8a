"""The factor file: a precomputed recommendation model the device only has to dot-multiply.

Format (``np.savez``, no pickle, loaded with ``allow_pickle=False``):

==================  ==============  ==========================================================
array               dtype / shape   meaning
==================  ==============  ==========================================================
format_version      int64, ()       1
item_ids            unicode, (n,)   product ids (factor-file ids; the inventory maps them to skus)
item_factors        float32, (n,k)  item vectors
segment_ids         unicode, (m,)   ``"female/25-34"``... (normally all 16 segments)
segment_vectors     float32, (m,k)  one vector per segment, same space as the items
global_vector       float32, (k,)   vector for non-personalised ("generic") picks
popularity          float32, (n,)   prior added to every score
metadata            unicode, ()     JSON object: trained_at, source, method, rank, metrics...
checksum            unicode, ()     sha256 hex, see :func:`compute_checksum`
signature           unicode, ()     optional: Ed25519 signature of the checksum (:mod:`.signing`)
signature_key       unicode, ()     optional: id of the key that signed
==================  ==============  ==========================================================

``score(segment, i) = segment_vector . item_factors[i] + popularity[i]``; a segment missing from
the file uses ``global_vector``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from smartshelf.core.atomic import file_stamp
from smartshelf.core.errors import ModelError
from smartshelf.core.storage import atomic_write_bytes
from smartshelf.core.types import Segment

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

#: Order in which arrays enter the checksum (and are written).
CHECKSUM_ORDER: tuple[str, ...] = (
    "format_version",
    "item_ids",
    "item_factors",
    "segment_ids",
    "segment_vectors",
    "global_vector",
    "popularity",
    "metadata",
)

FloatArray = npt.NDArray[np.float32]


def _canonical_bytes(name: str, value: np.ndarray) -> bytes:
    """Platform-independent bytes of one array: strings as UTF-8 joined by U+001F, numbers little-endian."""
    if value.dtype.kind == "U":
        text = "\x1f".join(str(s) for s in np.atleast_1d(value).tolist())
        payload = text.encode("utf-8")
        kind = "str"
    elif value.dtype.kind in "iu":
        payload = np.ascontiguousarray(value, dtype="<i8").tobytes()
        kind = "i8"
    elif value.dtype.kind == "f":
        payload = np.ascontiguousarray(value, dtype="<f4").tobytes()
        kind = "f4"
    else:
        raise ModelError(f"array {name!r} has unsupported dtype {value.dtype}")
    header = f"{name}|{kind}|{tuple(value.shape)}|".encode()
    return header + payload


def compute_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 hex over every array but ``checksum`` in :data:`CHECKSUM_ORDER`.

    Each array contributes ``name|kind|shape|`` then its bytes: unicode arrays as the UTF-8 of
    their elements joined by U+001F, integers as little-endian int64, floats as little-endian float32.
    """
    digest = hashlib.sha256()
    for name in CHECKSUM_ORDER:
        digest.update(_canonical_bytes(name, np.asarray(arrays[name])))
    return digest.hexdigest()


def _file_mode() -> int:
    """0o666 minus the process umask (mkstemp would give 0o600: the device user must read admin's files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an .npz atomically and durably (``smartshelf.core.storage.atomic_write_bytes``), readable by all."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue(), mode=_file_mode())


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FactorModel:
    """An immutable, validated factor model (see the module docstring for the file format).

    Build one in memory with the constructor (arrays are copied to the right dtypes and checked),
    write it with :meth:`save`, read it with :meth:`load`.
    """

    item_ids: tuple[str, ...]
    item_factors: FloatArray
    segment_ids: tuple[str, ...]
    segment_vectors: FloatArray
    global_vector: FloatArray
    popularity: FloatArray
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source_path: Path | None = None
    signed_by: str | None = None
    """Key id of the signature verified at load (None: not signed, or loaded without a key)."""
    # Derived at construction:
    item_unit: FloatArray = field(init=False, repr=False)
    item_index: Mapping[str, int] = field(init=False, repr=False)
    segment_index: Mapping[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"factor file {self.source_path}" if self.source_path else "factor model"
        item_ids = tuple(str(i) for i in self.item_ids)
        factors = np.array(self.item_factors, dtype=np.float32, copy=True)
        segment_ids = tuple(str(s) for s in self.segment_ids)
        vectors = np.array(self.segment_vectors, dtype=np.float32, copy=True)
        global_vector = np.array(self.global_vector, dtype=np.float32, copy=True)
        popularity = np.array(self.popularity, dtype=np.float32, copy=True)
        if factors.ndim != 2:
            raise ModelError(f"{where}: item_factors must be 2-D (n x k), got shape {factors.shape}")
        n, k = factors.shape
        if n == 0 or k == 0:
            raise ModelError(f"{where}: item_factors is empty (shape {factors.shape})")
        if len(item_ids) != n:
            raise ModelError(f"{where}: {len(item_ids)} item_ids but {n} rows of item_factors")
        if len(set(item_ids)) != n:
            dupes = sorted({i for i in item_ids if item_ids.count(i) > 1})[:5]
            raise ModelError(f"{where}: duplicate item ids {dupes}")
        if vectors.ndim != 2 or vectors.shape[1] != k or vectors.shape[0] != len(segment_ids):
            raise ModelError(
                f"{where}: segment_vectors has shape {vectors.shape}, expected ({len(segment_ids)}, {k})"
            )
        if len(set(segment_ids)) != len(segment_ids):
            raise ModelError(f"{where}: duplicate segment ids")
        for label in segment_ids:
            try:
                Segment.parse(label)
            except ValueError as exc:
                raise ModelError(f"{where}: {exc}") from None
        if global_vector.shape != (k,):
            raise ModelError(f"{where}: global_vector has shape {global_vector.shape}, expected ({k},)")
        if popularity.shape != (n,):
            raise ModelError(f"{where}: popularity has shape {popularity.shape}, expected ({n},)")
        for name, array in (
            ("item_factors", factors),
            ("segment_vectors", vectors),
            ("global_vector", global_vector),
            ("popularity", popularity),
        ):
            if not np.all(np.isfinite(array)):
                raise ModelError(f"{where}: {name} contains NaN or infinite values")
        norms = np.linalg.norm(factors, axis=1, keepdims=True)
        unit = factors / np.maximum(norms, 1e-12)
        unit[norms[:, 0] < 1e-12] = 0.0
        set_ = object.__setattr__
        set_(self, "item_ids", item_ids)
        set_(self, "item_factors", _readonly(factors))
        set_(self, "segment_ids", segment_ids)
        set_(self, "segment_vectors", _readonly(vectors))
        set_(self, "global_vector", _readonly(global_vector))
        set_(self, "popularity", _readonly(popularity))
        set_(self, "metadata", dict(self.metadata))
        set_(self, "item_unit", _readonly(unit.astype(np.float32)))
        set_(self, "item_index", {item: i for i, item in enumerate(item_ids)})
        set_(self, "segment_index", {label: i for i, label in enumerate(segment_ids)})

    # ----------------------------------------------------------------- properties
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def rank(self) -> int:
        return int(self.item_factors.shape[1])

    def segment_vector(self, segment: Segment | str | None) -> FloatArray:
        """The segment's vector; the global vector for ``None`` or a segment missing from the file."""
        if segment is None:
            return self.global_vector
        row = self.segment_index.get(str(segment))
        if row is None:
            logger.debug("segment %s not in factor file; using the global vector", segment)
            return self.global_vector
        return self.segment_vectors[row]

    def mixture_vector(self, weights: Mapping[str, float]) -> FloatArray:
        """``sum_s w_s v_s / sum_s w_s`` over segment labels (see :mod:`device.recommend.mixture`): the
        vector whose scores are the expected scores when the shopper is segment s with probability w_s."""
        total = sum(weights.values())
        if not weights or total <= 0 or min(weights.values()) < 0:
            raise ValueError(f"segment weights must be positive and not all zero, got {dict(weights)}")
        vector = np.zeros_like(self.global_vector)
        for label, weight in weights.items():
            vector += (weight / total) * self.segment_vector(label)
        return vector

    def scores(self, segment: Segment | str | None) -> FloatArray:
        """Scores of every item for a segment (``None``: generic), float32 (n,)."""
        return self.item_factors @ self.segment_vector(segment) + self.popularity

    # ----------------------------------------------------------------- I/O
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "item_ids": np.array(self.item_ids, dtype=np.str_),
            "item_factors": self.item_factors,
            "segment_ids": np.array(self.segment_ids, dtype=np.str_),
            "segment_vectors": self.segment_vectors,
            "global_vector": self.global_vector,
            "popularity": self.popularity,
            "metadata": np.array(json.dumps(dict(self.metadata), sort_keys=True, default=str), dtype=np.str_),
        }
        arrays["checksum"] = np.array(compute_checksum(arrays), dtype=np.str_)
        return arrays

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file + fsync + ``os.replace``); returns the path."""
        target = Path(path)
        _atomic_write_npz(target, self.to_arrays())
        logger.info("wrote factor file %s (%d items, rank %d)", target, self.n_items, self.rank)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, public_key: Ed25519PublicKey | None = None) -> FactorModel:
        """Read and verify a factor file; :class:`ModelError` names the file and what is wrong.

        With ``public_key``, the file must also carry a valid Ed25519 signature by that key
        (:class:`device.recommend.signing.SignatureError` otherwise)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except FileNotFoundError:
            raise ModelError(f"factor file {path} does not exist") from None
        except IsADirectoryError:
            raise ModelError(f"factor file {path} is a directory") from None
        except PermissionError:
            raise ModelError(f"factor file {path} cannot be read: permission denied") from None
        except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as exc:
            raise ModelError(f"factor file {path} is corrupt or not an .npz file: {exc}") from exc
        missing = [name for name in (*CHECKSUM_ORDER, "checksum") if name not in arrays]
        if missing:
            raise ModelError(f"factor file {path} is missing array(s) {', '.join(missing)}")
        version_array = arrays["format_version"]
        if version_array.shape != () or version_array.dtype.kind not in "iu":
            raise ModelError(f"factor file {path}: format_version must be an integer scalar")
        version = int(version_array)
        if version != FORMAT_VERSION:
            raise ModelError(
                f"factor file {path} has format_version {version}; this software reads version {FORMAT_VERSION}"
            )
        try:
            expected = compute_checksum(arrays)
        except ModelError as exc:
            raise ModelError(f"factor file {path}: {exc}") from None
        stored = str(arrays["checksum"][()]) if arrays["checksum"].dtype.kind == "U" else ""
        if stored != expected:
            raise ModelError(
                f"factor file {path} failed its checksum (stored {stored[:12]!r}..., computed {expected[:12]}...): "
                "the file is damaged or was modified"
            )
        signed_by = None
        if public_key is not None:
            from device.recommend.signing import verify_arrays

            signed_by = verify_arrays(arrays, public_key, f"factor file {path}")
        try:
            metadata = json.loads(str(arrays["metadata"][()]))
        except json.JSONDecodeError as exc:
            raise ModelError(f"factor file {path}: metadata is not valid JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise ModelError(f"factor file {path}: metadata must be a JSON object")
        for name in ("item_ids", "segment_ids"):
            if arrays[name].dtype.kind != "U" or arrays[name].ndim != 1:
                raise ModelError(f"factor file {path}: {name} must be a 1-D unicode array")
        return cls(
            item_ids=tuple(arrays["item_ids"].tolist()),
            item_factors=arrays["item_factors"],
            segment_ids=tuple(arrays["segment_ids"].tolist()),
            segment_vectors=arrays["segment_vectors"],
            global_vector=arrays["global_vector"],
            popularity=arrays["popularity"],
            metadata=metadata,
            source_path=path,
            signed_by=signed_by,
        )


class FactorWatcher:
    """Holds the current :class:`FactorModel` and reloads it when the file's mtime (or size) changes.

    The first load happens in ``__init__`` and raises :class:`ModelError` (start-up must fail loudly).
    Later, a missing or bad file is logged at ERROR once per change and the previous model is kept;
    :attr:`rejected` says why (for the shelf's status) until a good file is installed. With
    ``public_key`` every file must be signed by that key: an unsigned or forged file is rejected
    the same way.
    """

    def __init__(self, path: str | os.PathLike[str], *, public_key: Ed25519PublicKey | None = None) -> None:
        self.path = Path(path)
        self.public_key = public_key
        self._stamp = file_stamp(self.path)
        self._model = FactorModel.load(self.path, public_key=public_key)
        self._bad_stamp: tuple[int, int] | None = None
        #: Why the last changed file was refused (None once a good one is loaded).
        self.rejected: str | None = None

    @property
    def current(self) -> FactorModel:
        return self._model

    def maybe_reload(self) -> bool:
        """Reload if the file changed; True when a new model was installed."""
        stamp = file_stamp(self.path)
        if stamp == self._stamp or (stamp is not None and stamp == self._bad_stamp):
            return False
        if stamp is None:
            if self._bad_stamp != (-1, -1):
                logger.error("factor file %s disappeared; keeping the model loaded before", self.path)
                self._bad_stamp = (-1, -1)
            return False
        try:
            model = FactorModel.load(self.path, public_key=self.public_key)
        except ModelError as exc:
            logger.error("NOT reloading factor file: %s; keeping the previous model", exc)
            self._bad_stamp = stamp
            self.rejected = str(exc)
            return False
        self._model = model
        self._stamp = stamp
        self._bad_stamp = None
        self.rejected = None
        logger.info(
            "reloaded factor file %s (%d items, method %s)",
            self.path,
            model.n_items,
            model.metadata.get("method"),
        )
        return True
