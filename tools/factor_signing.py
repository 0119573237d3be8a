"""Signing factor files (Ed25519): the publisher's side of :mod:`device.recommend.signing`.

``smartshelf factors keygen --out KEY`` writes a private key (PEM, mode 0600) and ``KEY.pub``;
``smartshelf factors sign FILE --key KEY [--out SIGNED]`` adds the ``signature`` and
``signature_key`` arrays to a factor file (atomically; the content and checksum are unchanged).
The private key stays with whoever publishes factor files (the store's hub or the head office);
shelves get only the ``.pub``. Development/ops tool: not shipped to a shelf.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.recommend.factors import FactorModel
from device.recommend.signing import KEY_FIELD, SIGNATURE_FIELD, SignatureError, key_id, signed_message
from smartshelf.core.storage import atomic_write_bytes

logger = logging.getLogger(__name__)


def generate_key(out: Path) -> tuple[Path, Path]:
    """Write a new private key to ``out`` (0600, refuses to overwrite) and its public key to ``out.pub``."""
    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists():
            raise SignatureError(f"{path} already exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(out, private_pem, mode=0o600)
    atomic_write_bytes(pub, public_pem, mode=0o644)
    logger.info("wrote signing key %s and public key %s (key id %s)", out, pub, key_id(key.public_key()))
    return out, pub


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"signing key {path} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"signing key {path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"signing key {path} is a {type(key).__name__}, not an Ed25519 key")
    return key


def signed_bytes(model: FactorModel, key: Ed25519PrivateKey) -> bytes:
    """The .npz bytes of ``model`` with its signature by ``key``."""
    arrays = model.to_arrays()
    checksum = str(arrays["checksum"][()])
    arrays[SIGNATURE_FIELD] = np.array(key.sign(signed_message(checksum)).hex(), dtype=np.str_)
    arrays[KEY_FIELD] = np.array(key_id(key.public_key()), dtype=np.str_)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_signed(model: FactorModel, key: Ed25519PrivateKey, out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    atomic_write_bytes(out, signed_bytes(model, key), mode=0o644)
    logger.info("wrote signed factor file %s (key %s)", out, key_id(key.public_key()))
    return out


def sign_file(path: str | os.PathLike[str], key_path: str | os.PathLike[str], out: str | None = None) -> Path:
    """Verify ``path`` (checksum) and write it signed to ``out`` (default: in place, atomically)."""
    model = FactorModel.load(path)
    return save_signed(model, load_private_key(key_path), out or path)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("keygen", help="new Ed25519 key for signing factor files (KEY and KEY.pub)")
    p.add_argument("--out", required=True, type=Path, help="private key to write (its public key: OUT.pub)")
    p.set_defaults(func=_cmd_keygen)
    p = sub.add_parser("sign", help="sign a factor file with an Ed25519 key (shelves verify it)")
    p.add_argument("file", type=Path)
    p.add_argument("--key", required=True, type=Path, help="private key (PEM) from factors keygen")
    p.add_argument("--out", type=Path, help="write the signed file here (default: replace FILE)")
    p.set_defaults(func=_cmd_sign)


def _cmd_keygen(args: argparse.Namespace) -> int:
    private, public = generate_key(args.out)
    print(f"private key {private} (keep it off the shelves), public key {public}")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    out = sign_file(args.file, args.key, args.out)
    print(f"signed {out}")
    return 0
