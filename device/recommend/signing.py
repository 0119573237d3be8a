"""Verification of signed factor files (Ed25519, the ``cryptography`` package): what a shelf runs.

Where the signature lives: **inside the .npz**, as two extra arrays beside the others:

==================  ==============  ==========================================================
signature           unicode, ()     hex of the 64-byte Ed25519 signature of :func:`signed_message`
signature_key       unicode, ()     key id (:func:`key_id`) of the key that signed, for the log
==================  ==============  ==========================================================

The signed message is a fixed domain prefix followed by the file's ``checksum``: that checksum is
already a canonical sha256 over every other array (``device.recommend.factors.compute_checksum``,
independent of zip layout and numpy version), so signing it signs the whole content, and a file
that loads and passes its checksum has exactly the content that was signed. Inside rather than a
detached ``factors.npz.sig`` because a factor file is replaced by one atomic rename: a detached
signature would be a second file, and a reader could see the new .npz with the old .sig (or the
reverse) between the two renames; one file has no such window, travels as one MQTT payload, and
older software that does not know the two arrays still loads it.

Signing (the private key) is a tool of whoever publishes factor files (``tools/factor_signing.py``,
the chain trainer); a shelf only ever holds the public key (config ``recommend.public_key``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from smartshelf.core.errors import ModelError

#: Domain separation: a signature over a factor checksum is never valid for anything else.
DOMAIN = b"smartshelf factor file v1\x00"
SIGNATURE_FIELD = "signature"
KEY_FIELD = "signature_key"


class SignatureError(ModelError):
    """A factor file is unsigned, signed by another key, or its signature does not verify."""


def signed_message(checksum: str) -> bytes:
    return DOMAIN + checksum.encode("ascii")


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (``-----BEGIN PUBLIC KEY-----``); errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"public key {path} does not exist") from None
    except OSError as exc:
        raise SignatureError(f"public key {path} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SignatureError(f"public key {path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"public key {path} is a {type(key).__name__}, not an Ed25519 key")
    return key


def _scalar_text(arrays: Mapping[str, np.ndarray], name: str) -> str | None:
    value = arrays.get(name)
    if value is None:
        return None
    value = np.asarray(value)
    if value.shape != () or value.dtype.kind != "U":
        return None
    return str(value[()])


def verify_arrays(arrays: Mapping[str, np.ndarray], public_key: Ed25519PublicKey, where: str) -> str:
    """Check the arrays' signature against ``public_key``; returns the key id. The checksum must have
    been verified already (it is what is signed). :class:`SignatureError` names ``where`` and why."""
    expected = key_id(public_key)
    signature_hex = _scalar_text(arrays, SIGNATURE_FIELD)
    if signature_hex is None:
        raise SignatureError(f"{where} is not signed (no {SIGNATURE_FIELD!r} array); key {expected} is required")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise SignatureError(f"{where}: {SIGNATURE_FIELD!r} is not hex") from None
    signer = _scalar_text(arrays, KEY_FIELD) or "unknown"
    checksum = _scalar_text(arrays, "checksum") or ""
    try:
        public_key.verify(signature, signed_message(checksum))
    except InvalidSignature:
        if signer != expected:
            raise SignatureError(
                f"{where} is signed by key {signer}, not by the configured key {expected}"
            ) from None
        raise SignatureError(f"{where} has a signature that does not verify with key {expected} (forged?)") from None
    return expected
