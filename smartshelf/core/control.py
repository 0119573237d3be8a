"""The shared secret of the admin -> device loopback channel (``/control/*`` on the device).

``<data_dir>/control.secret``: 32 random bytes as hex, mode 0600, created by whichever process
starts first (the device or the admin; both run as the service user and share the data dir). The
admin sends it in the :data:`HEADER` header; the device compares it in constant time and re-reads
the file when it changes, so :func:`rotate` (``smartshelf admin rotate-device-secret``) revokes
every copy of the old secret on the next request, without a restart.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from smartshelf.core.errors import StorageError
from smartshelf.core.storage import FileLock, atomic_write_bytes

logger = logging.getLogger(__name__)

CONTROL_SECRET_FILE = "control.secret"
HEADER = "X-Smartshelf-Control"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def secret_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / CONTROL_SECRET_FILE


def _read(path: Path) -> str | None:
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"{path}: cannot read the device control secret: {exc}") from exc
    if not _HEX64.fullmatch(text):
        raise StorageError(f"{path}: the device control secret must be 64 hex digits; "
                           "run `smartshelf admin rotate-device-secret` to write a new one")
    return text


def read_secret(data_dir: str | os.PathLike[str]) -> str | None:
    """The current secret, or None when no file exists yet."""
    return _read(secret_path(data_dir))


def load_or_create_secret(data_dir: str | os.PathLike[str]) -> str:
    """The current secret, created (0600) if this is the first process to need it."""
    path = secret_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        current = _read(path)
        if current is not None:
            return current
        secret = secrets.token_hex(32)
        atomic_write_bytes(path, secret.encode("ascii") + b"\n", mode=0o600)
        logger.info("%s: created the device control secret (mode 0600)", path)
        return secret


def rotate(data_dir: str | os.PathLike[str]) -> str:
    """Write a new secret: the old one stops working on the next request."""
    path = secret_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    with FileLock(path):
        atomic_write_bytes(path, secret.encode("ascii") + b"\n", mode=0o600)
    logger.info("%s: rotated the device control secret", path)
    return secret


class SecretFile:
    """Reads the secret, re-reading only when the file changed (device side, per request)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = secret_path(data_dir)
        self._key: tuple[int, int, int] | None = None
        self._value: str | None = None

    def get(self) -> str | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            self._value = _read(self.path)
            self._key = key
        return self._value
