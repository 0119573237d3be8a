"""At-rest protection of terminal secrets.

HMAC verification needs the secret itself, so a one-way hash cannot be stored (and any value that
lets the server verify a signature also lets its holder forge one: the MAC is symmetric). What we
can do is keep ``store.json`` (which is copied, backed up and shown in exports) free of usable
secrets: each secret is encrypted with a per-installation key held in a separate file,
``<data_dir>/terminal.key`` (32 random bytes, hex, mode 0600, created on first pairing).

Cipher: AES-256-GCM from the ``cryptography`` package (Raspberry Pi OS: ``python3-cryptography``),
with a key derived from the installation key by HKDF-SHA256, a random 12-byte nonce per secret and
the terminal id as associated data, so moving a ciphertext to another terminal's record is detected.
Stored form: ``v2:<base64url(nonce || ciphertext+tag)>``.

Read path for ``v1:`` secrets written before (a home-made encrypt-then-MAC with HMAC-SHA256 as the
PRF: keystream block i = ``HMAC(k_enc, nonce || i)``, tag = ``HMAC(k_mac, nonce || len(id) || id ||
ciphertext)``): they still decrypt, so nothing is lost on upgrade; every new secret is ``v2``. Pairing
a terminal again (or ``SecretBox.upgrade``) rewrites a secret as ``v2``.

Consequences (documented in docs/terminals.md): copying ``store.json`` alone leaks no secret;
an attacker with the whole data dir (store.json + terminal.key) can sign events. A restored backup
without ``terminal.key`` cannot verify terminals: re-pair them (the key file is reported).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from admin_web.terminals.errors import KeyFileError

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "terminal.key"
_VERSION = "v2"
_V1 = "v1"
_NONCE = 16  # v1
_TAG = 32  # v1
_BLOCK = 32  # v1
_GCM_NONCE = 12
_GCM_TAG = 16
_MAX_STORED = 4096


def _subkey(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"smartshelf/terminal-secret/" + label, hashlib.sha256).digest()


class SecretBox:
    """Encrypts terminal secrets (AES-256-GCM, ``v2:``) and decrypts ``v2:`` and legacy ``v1:`` ones."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KeyFileError(f"terminal key must be 32 bytes, got {len(key)}")
        aes_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"smartshelf/terminal-secret/aes-gcm-v2"
        ).derive(key)
        self._aead = AESGCM(aes_key)
        # legacy v1 sub-keys (read path only)
        self._enc = _subkey(key, b"enc")
        self._mac = _subkey(key, b"mac")

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = secrets.token_bytes(_GCM_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, *, context: str) -> str:
        if not isinstance(token, str) or len(token) > _MAX_STORED:
            raise KeyFileError(f"stored secret of {context!r} is not a string of at most {_MAX_STORED} characters")
        version, sep, encoded = token.partition(":")
        if version not in (_VERSION, _V1) or not sep:
            raise KeyFileError(f"stored secret of {context!r} has an unknown format (expected v2: or v1:)")
        try:
            blob = base64.urlsafe_b64decode(encoded.encode("ascii"))
        except (ValueError, UnicodeEncodeError, binascii.Error):
            raise KeyFileError(f"stored secret of {context!r} is not valid base64") from None
        if version == _V1:
            return self._decrypt_v1(blob, context=context)
        if len(blob) < _GCM_NONCE + _GCM_TAG:
            raise KeyFileError(f"stored secret of {context!r} is truncated")
        try:
            plain = self._aead.decrypt(blob[:_GCM_NONCE], blob[_GCM_NONCE:], context.encode("utf-8"))
        except InvalidTag:
            raise self._mismatch(context) from None
        return plain.decode("utf-8")

    @staticmethod
    def is_legacy(token: str) -> bool:
        """True for a ``v1:`` secret (readable; re-encrypt with :meth:`upgrade`)."""
        return isinstance(token, str) and token.startswith(_V1 + ":")

    def upgrade(self, token: str, *, context: str) -> str:
        """The same secret re-encrypted as ``v2`` (a ``v2`` token is returned unchanged)."""
        if not self.is_legacy(token):
            return token
        return self.encrypt(self.decrypt(token, context=context), context=context)

    @staticmethod
    def _mismatch(context: str) -> KeyFileError:
        return KeyFileError(
            f"stored secret of {context!r} does not open with this data dir's {KEY_FILE_NAME} "
            "(key file replaced or record moved); re-pair the terminal"
        )

    # -- legacy v1 (read only) --------------------------------------------------------------------
    def _stream(self, nonce: bytes, length: int) -> bytes:
        blocks = []
        for i in range((length + _BLOCK - 1) // _BLOCK):
            blocks.append(hmac.new(self._enc, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest())
        return b"".join(blocks)[:length]

    def _tag(self, nonce: bytes, context: str, ciphertext: bytes) -> bytes:
        ctx = context.encode("utf-8")
        msg = nonce + len(ctx).to_bytes(2, "big") + ctx + ciphertext
        return hmac.new(self._mac, msg, hashlib.sha256).digest()

    def _decrypt_v1(self, blob: bytes, *, context: str) -> str:
        if len(blob) < _NONCE + _TAG:
            raise KeyFileError(f"stored secret of {context!r} is truncated")
        nonce, ciphertext, tag = blob[:_NONCE], blob[_NONCE:-_TAG], blob[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(nonce, context, ciphertext)):
            raise self._mismatch(context)
        plain = bytes(a ^ b for a, b in zip(ciphertext, self._stream(nonce, len(ciphertext)), strict=True))
        return plain.decode("utf-8")


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE_NAME


def load_key(data_dir: Path, *, create: bool) -> bytes:
    """Read ``<data_dir>/terminal.key``; with ``create`` make it (0600) when it does not exist yet."""
    path = key_path(data_dir)
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        if not create:
            raise KeyFileError(f"{path}: terminal key file not found; pair a terminal first") from None
        return _create_key(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read terminal key file: {exc}") from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s: terminal key file had mode %o; tightening to 0600", path, mode)
        os.chmod(path, 0o600)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{path}: terminal key file is not hex") from None
    if len(key) != 32:
        raise KeyFileError(f"{path}: terminal key must be 32 bytes (64 hex digits), got {len(key)}")
    return key


def _create_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process created it first: use theirs
        except FileExistsError:
            return load_key(path.parent, create=False)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("%s: created terminal key file (mode 0600)", path)
    return key
