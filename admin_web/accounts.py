"""Staff accounts, API tokens and admin settings in ``<data_dir>/accounts.json`` (0600).

* Passwords: werkzeug's salted hashes (scrypt); there is no default password: the first run must
  set one with ``smartshelf admin set-password``.
* API tokens: random 256-bit strings shown once; only their SHA-256 is stored (they are high
  entropy, so a fast hash is enough and a lookup stays cheap).
* API tokens carry scopes (:data:`SCOPES`); a token only reaches the JSON API endpoints that name
  one of its scopes, never the staff pages (pairing, privacy text, camera, accounts). The default is
  :data:`DEFAULT_SCOPES`, the least a POS sync needs; tokens from before scopes get the default.
* Sessions are server-side records (table ``sessions``): the signed cookie holds a random session id
  whose SHA-256 is stored with its user, creation time and an absolute expiry. Logout, a password
  change, ``smartshelf admin set-password`` and "sign out everywhere" delete records, and a cookie
  whose record is gone stops working on the next request.
* The session secret key lives in ``<data_dir>/secret_key`` (0600), created once.

The CLI and the running server both take the file lock around every read-modify-write.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tinydb import Query

from admin_web.errors import NotFound, ValidationError
from admin_web.products import now_iso
from smartshelf.core.errors import StorageError
from smartshelf.core.schema import check_table
from smartshelf.core.storage import FileLock, atomic_write_bytes, open_db, write_transaction

ACCOUNTS_FILE = "accounts.json"
SECRET_KEY_FILE = "secret_key"
TOKEN_PREFIX = "ss_"
MIN_PASSWORD_LENGTH = 10
DEFAULT_USER = "admin"

#: What an API token may do, by scope (shown at creation and in the token list).
SCOPES: dict[str, str] = {
    "products:read": "read products and slots (GET /api/v1/products, /api/v1/slots)",
    "stock:write": "set or add stock of existing products (PUT /api/v1/products/<sku>/stock)",
    "products:write": "create, change and delete products (POST/PUT/DELETE /api/v1/products)",
    "settings:read": "read the shop settings (GET /api/v1/settings)",
    "settings:write": "change the shop settings: currency, number format, A/B share (PUT /api/v1/settings)",
}
#: The least a point-of-sale sync needs: read the catalogue, keep stock counts in step.
DEFAULT_SCOPES: tuple[str, ...] = ("products:read", "stock:write")
#: Most sessions kept per user (the oldest go first): a bound on accounts.json's size.
MAX_SESSIONS_PER_USER = 50


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(scopes: Iterable[str] | str | None) -> tuple[str, ...]:
    """Known scopes in :data:`SCOPES` order; a string is split on commas/spaces; None -> default."""
    if scopes is None:
        return DEFAULT_SCOPES
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    unknown = [s for s in items if s not in SCOPES]
    if unknown:
        raise ValidationError("scopes", f"unknown scope {unknown[0]!r}; known: {', '.join(SCOPES)}")
    if not items:
        raise ValidationError("scopes", f"name at least one of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in items)




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

    def validate(self) -> None:
        """Check accounts.json against its schema; StorageError names the file, document and key."""
        text = (str, type(None))
        with self._lock:
            tables = self.db.storage.read() or {}
        check_table(self.path, tables, "users", {"username": str, "password_hash": str, "changed_at": text},
                    required=("username", "password_hash"))
        check_table(self.path, tables, "tokens", {"name": str, "hash": str, "created_at": text, "scopes": list},
                    required=("name", "hash"))
        check_table(self.path, tables, "sessions", {"id": str, "hash": str, "user": str, "created_at": (int, float),
                                                    "expires_at": (int, float), "address": str, "agent": str},
                    required=("id", "hash", "user", "expires_at"))
        check_table(self.path, tables, "settings", {"key": str}, required=("key",))

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
            # a new password ends every session of that user (a lost phone, a departed employee)
            sessions = tables.setdefault("sessions", {})
            for key in [k for k, d in sessions.items() if d.get("user") == username]:
                del sessions[key]

    def check_password(self, username: str, password: str) -> bool:
        from werkzeug.security import check_password_hash, generate_password_hash

        with self._lock:
            doc = self.db.table("users").get(Query().username == (username or "").strip())
        if doc is None or not isinstance(doc.get("password_hash"), str):
            if self._dummy_hash is None:
                self._dummy_hash = generate_password_hash(secrets.token_hex(8))
            check_password_hash(self._dummy_hash, password)
            return False
        return check_password_hash(doc["password_hash"], password)

    # -- API tokens ---------------------------------------------------------------------------
    def create_token(self, name: str, scopes: Iterable[str] | str | None = None) -> str:
        """Create a token called ``name`` with ``scopes`` (default :data:`DEFAULT_SCOPES`) and return
        it (the only time it is visible)."""
        granted = parse_scopes(scopes)
        name = (name or "").strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise ValidationError("name", "must be 1-64 printable characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._write() as tables:
            tokens = tables.setdefault("tokens", {})
            if any(d.get("name") == name for d in tokens.values()):
                raise ValidationError("name", f"a token called {name!r} exists; revoke it first")
            new_id = max((int(k) for k in tokens), default=0) + 1
            tokens[str(new_id)] = {"name": name, "hash": _token_hash(token), "created_at": now_iso(),
                                   "scopes": list(granted)}
        return token

    def verify_token(self, token: str) -> str | None:
        """Return the token's name if valid, else None."""
        found = self.token_info(token)
        return None if found is None else str(found["name"])

    def token_info(self, token: str) -> dict[str, Any] | None:
        """``{"name", "scopes", "created_at"}`` of a valid token, else None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            return None
        digest = _token_hash(token)
        with self._lock:
            tokens = self.db.table("tokens").all()
        for doc in tokens:
            if hmac.compare_digest(str(doc.get("hash", "")), digest):
                return _token_view(doc)
        return None

    def list_tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_token_view(d) for d in self.db.table("tokens").all()]

    def revoke_token(self, name: str) -> None:
        with self._write() as tables:
            tokens = tables.setdefault("tokens", {})
            gone = [k for k, d in tokens.items() if d.get("name") == name]
            if not gone:
                raise NotFound(f"no token called {name!r}")
            for k in gone:
                del tokens[k]

    # -- sessions -----------------------------------------------------------------------------
    def create_session(self, username: str, *, lifetime_s: float, address: str = "", agent: str = "",
                       now: float | None = None) -> str:
        """Record a new session and return its id (put it in the signed cookie)."""
        now = time.time() if now is None else now
        sid = secrets.token_urlsafe(32)
        with self._write() as tables:
            sessions = tables.setdefault("sessions", {})
            for key in [k for k, d in sessions.items() if float(d.get("expires_at", 0)) <= now]:
                del sessions[key]  # expired ones go on the next login
            mine = sorted((float(d.get("created_at", 0)), k) for k, d in sessions.items() if d.get("user") == username)
            for _, key in mine[: max(0, len(mine) - MAX_SESSIONS_PER_USER + 1)]:
                del sessions[key]
            new_id = max((int(k) for k in sessions), default=0) + 1
            sessions[str(new_id)] = {
                "id": secrets.token_hex(6), "hash": _token_hash(sid), "user": username,
                "created_at": now, "expires_at": now + lifetime_s,
                "address": address[:64], "agent": agent[:120],
            }
        return sid

    def session_user(self, sid: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The live session record of ``sid`` (``{"id", "user", ...}``), or None when revoked/expired."""
        if not isinstance(sid, str) or not 20 <= len(sid) <= 100:
            return None
        now = time.time() if now is None else now
        digest = _token_hash(sid)
        with self._lock:
            docs = self.db.table("sessions").all()
        for doc in docs:
            if hmac.compare_digest(str(doc.get("hash", "")), digest):
                if float(doc.get("expires_at", 0)) <= now:
                    return None
                return {k: v for k, v in doc.items() if k != "hash"}
        return None

    def list_sessions(self, *, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        with self._lock:
            docs = self.db.table("sessions").all()
        live = [{k: v for k, v in d.items() if k != "hash"} for d in docs if float(d.get("expires_at", 0)) > now]
        return sorted(live, key=lambda d: -float(d["created_at"]))

    def revoke_session(self, session_id: str) -> None:
        """End one session by its public id (shown on the sessions page)."""
        with self._write() as tables:
            sessions = tables.setdefault("sessions", {})
            gone = [k for k, d in sessions.items() if d.get("id") == session_id]
            if not gone:
                raise NotFound(f"no session {session_id!r}")
            for k in gone:
                del sessions[k]

    def end_session(self, sid: str) -> None:
        """Logout: delete the record of ``sid`` (nothing happens if it is gone already)."""
        digest = _token_hash(str(sid))
        with self._write() as tables:
            sessions = tables.setdefault("sessions", {})
            for k in [k for k, d in sessions.items() if d.get("hash") == digest]:
                del sessions[k]

    def revoke_sessions(self, username: str | None = None) -> int:
        """End every session (of ``username``, or of everyone); returns how many."""
        with self._write() as tables:
            sessions = tables.setdefault("sessions", {})
            gone = [k for k, d in sessions.items() if username is None or d.get("user") == username]
            for k in gone:
                del sessions[k]
        return len(gone)

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


def _token_view(doc: dict[str, Any]) -> dict[str, Any]:
    scopes = doc.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(x, str) and x in SCOPES for x in scopes):
        scopes = list(DEFAULT_SCOPES)  # a token from before scopes: the least privilege, not everything
    return {"name": str(doc.get("name")), "scopes": scopes, "created_at": doc.get("created_at")}


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
