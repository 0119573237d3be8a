"""Staff accounts, API tokens and admin settings in ``<data_dir>/accounts.json`` (0600).

* Passwords: werkzeug's salted hashes (scrypt); there is no default password: the first run must
  set one with ``smartshelf admin set-password``.
* API tokens: random 256-bit strings shown once; only their SHA-256 is stored (they are high
  entropy, so a fast hash is enough and a lookup stays cheap).
* The session secret key lives in ``<data_dir>/secret_key`` (0600), created once.

The CLI and the running server both take the file lock around every read-modify-write.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinydb import Query

from admin_web.errors import NotFound, ValidationError
from admin_web.products import now_iso
from smartshelf.core.errors import StorageError
from smartshelf.core.storage import FileLock, atomic_write_bytes, open_db, write_transaction

ACCOUNTS_FILE = "accounts.json"
SECRET_KEY_FILE = "secret_key"
TOKEN_PREFIX = "ss_"
MIN_PASSWORD_LENGTH = 10
DEFAULT_USER = "admin"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccountStore:
    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / ACCOUNTS_FILE
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.file_lock = FileLock(self.path)
        with self.file_lock:  # created 0600 (it holds password hashes); atomic writes keep the mode
            if not self.path.exists():
                atomic_write_bytes(self.path, b"{}", mode=0o600)
        self.db = open_db(self.path)
        self._lock = threading.RLock()
        # a hash to check against when the user does not exist, so timing does not reveal names
        self._dummy_hash: str | None = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Thread lock + file lock + one atomic write of accounts.json."""
        with self._lock, self.file_lock, write_transaction(self.db) as tables:
            yield tables

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- users --------------------------------------------------------------------------------
    def has_users(self) -> bool:
        with self._lock:
            return len(self.db.table("users")) > 0

    def set_password(self, username: str, password: str) -> None:
        from werkzeug.security import generate_password_hash

        username = (username or "").strip()
        if not username or len(username) > 64 or not username.isprintable():
            raise ValidationError("username", "must be 1-64 printable characters")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValidationError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
        if password.strip() != password or "\n" in password:
            raise ValidationError("password", "must not start or end with spaces or hold line breaks")
        self.set_password_hash(username, generate_password_hash(password))

    def set_password_hash(self, username: str, pw_hash: str) -> None:
        """Store an already computed werkzeug hash (``smartshelf firstboot`` brings one from the SD card)."""
        username = (username or "").strip()
        if not username or len(username) > 64 or not username.isprintable():
            raise ValidationError("username", "must be 1-64 printable characters")
        if not pw_hash.startswith(("scrypt:", "pbkdf2:")) or pw_hash.count("$") != 2:
            raise ValidationError("password_hash", "is not a werkzeug password hash (scrypt:... or pbkdf2:...)")
        with self._write() as tables:
            users = tables.setdefault("users", {})
            for doc in users.values():
                if doc.get("username") == username:
                    doc.update({"password_hash": pw_hash, "changed_at": now_iso()})
                    break
            else:
                new_id = max((int(k) for k in users), default=0) + 1
                users[str(new_id)] = {"username": username, "password_hash": pw_hash, "changed_at": now_iso()}

    def check_password(self, username: str, password: str) -> bool:
        from werkzeug.security import check_password_hash, generate_password_hash

        with self._lock:
            doc = self.db.table("users").get(Query().username == (username or "").strip())
        if doc is None:
            if self._dummy_hash is None:
                self._dummy_hash = generate_password_hash(secrets.token_hex(8))
            check_password_hash(self._dummy_hash, password)
            return False
        return check_password_hash(doc["password_hash"], password)

    # -- API tokens ---------------------------------------------------------------------------
    def create_token(self, name: str) -> str:
        """Create a token called ``name`` and return it (the only time it is visible)."""
        name = (name or "").strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise ValidationError("name", "must be 1-64 printable characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._write() as tables:
            tokens = tables.setdefault("tokens", {})
            if any(d.get("name") == name for d in tokens.values()):
                raise ValidationError("name", f"a token called {name!r} exists; revoke it first")
            new_id = max((int(k) for k in tokens), default=0) + 1
            tokens[str(new_id)] = {"name": name, "hash": _token_hash(token), "created_at": now_iso()}
        return token

    def verify_token(self, token: str) -> str | None:
        """Return the token's name if valid, else None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = _token_hash(token)
        with self._lock:
            tokens = self.db.table("tokens").all()
        for doc in tokens:
            if hmac.compare_digest(doc.get("hash", ""), digest):
                return str(doc["name"])
        return None

    def list_tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"name": d["name"], "created_at": d.get("created_at")} for d in self.db.table("tokens").all()]

    def revoke_token(self, name: str) -> None:
        with self._write() as tables:
            tokens = tables.setdefault("tokens", {})
            gone = [k for k, d in tokens.items() if d.get("name") == name]
            if not gone:
                raise NotFound(f"no token called {name!r}")
            for k in gone:
                del tokens[k]

    # -- settings -----------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._lock:
            doc = self.db.table("settings").get(Query().key == key)
        return default if doc is None else doc.get("value")

    def set_setting(self, key: str, value: Any) -> None:
        with self._write() as tables:
            settings = tables.setdefault("settings", {})
            for doc in settings.values():
                if doc.get("key") == key:
                    doc["value"] = value
                    break
            else:
                new_id = max((int(k) for k in settings), default=0) + 1
                settings[str(new_id)] = {"key": key, "value": value}


def load_or_create_secret_key(data_dir: str | Path) -> bytes:
    """Read ``<data_dir>/secret_key``, creating it (0600, 32 random bytes hex) on first use."""
    path = Path(data_dir) / SECRET_KEY_FILE
    with FileLock(path):
        try:
            key = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            key = secrets.token_hex(32)
            atomic_write_bytes(path, key.encode("ascii"), mode=0o600)
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read the session key {path}: {exc}") from exc
    if len(key) < 32:
        raise StorageError(f"{path} is too short to be a session key; delete it to create a new one")
    return key.encode("ascii")
