"""Access to the app's data handles from views (flaskr's ``db`` module).

``get_repository()`` -> :class:`~admin_web.repository.InventoryRepository` (store.json),
``get_accounts()`` -> :class:`~admin_web.accounts.AccountStore` (accounts.json),
``get_event_reader()`` -> :class:`~admin_web.insight.EventReader` (device events, cached, read-only),
``get_data_dir()`` -> the data dir ``Path``. All are created once per app in ``init_app``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, current_app

from admin_web.accounts import AccountStore
from admin_web.insight import EventReader
from admin_web.repository import InventoryRepository
from smartshelf.core.errors import StorageError
from smartshelf.core.storage import atomic_write_bytes

logger = logging.getLogger(__name__)


def earlier_data(data_dir: Path) -> list[str]:
    """What in ``data_dir`` shows that a store existed before (store.json itself aside)."""
    found: list[str] = []
    for name in ("store.json.bak", "terminal.key"):
        if (data_dir / name).exists():
            found.append(name)
    for pattern in ("ledger*", "sales*", "*.sqlite", "*.sqlite3", "*.db"):
        found += sorted(p.name for p in data_dir.glob(pattern) if p.is_file())
    for folder in ("events", "images", "backups"):
        if (data_dir / folder).is_dir() and any((data_dir / folder).iterdir()):
            found.append(f"{folder}/")
    accounts = data_dir / "accounts.json"
    if accounts.exists():
        try:
            import json

            tables = json.loads(accounts.read_bytes() or b"{}")
        except ValueError:
            tables = {}
        # sessions and settings are only written by a running admin (a fresh install has a password only)
        if isinstance(tables, dict) and any(tables.get(t) for t in ("sessions", "settings")):
            found.append("accounts.json (sessions or settings)")
    return list(dict.fromkeys(found))


def check_store_present(data_dir: Path) -> None:
    """Refuse to start with no store.json when earlier data says there was one (never start empty
    silently and let the next writes replace the good backup)."""
    store = data_dir / "store.json"
    if store.exists():
        return
    evidence = earlier_data(data_dir)
    if evidence:
        message = (
            f"{store} is missing but {data_dir} holds earlier data ({', '.join(evidence)}); refusing to start "
            f"with an empty store. Restore it (cp {store}.bak {store}, or smartshelf admin restore ARCHIVE), "
            f"or, to start empty on purpose, write an empty store: echo '{{}}' > {store}"
        )
        logger.error("%s", message)
        raise StorageError(message)
    # a fresh data dir: write the empty store now, so that from here on a missing file means a lost one
    atomic_write_bytes(store, b"{}")
    logger.info("%s: created an empty store (fresh data dir)", store)


def init_app(app: Flask) -> None:
    data_dir = Path(app.config["DATA_DIR"])
    check_store_present(data_dir)
    from admin_web.appconfig import CONFIG_KEY

    source = app.extensions.get(CONFIG_KEY)
    repository = InventoryRepository(
        data_dir, configured_slots=(lambda: source.get().slots) if source is not None else None
    )
    accounts = AccountStore(data_dir)
    # read both files now: a corrupt file is restored from its last good copy (or the start fails
    # with a StorageError that says how to restore) before the first request, not during one
    repository.count_products()
    accounts.has_users()
    # and check them against their schema: a hand-edited wrong type is one line naming the file and
    # key now, not a 500 on some page later
    repository.validate()
    accounts.validate()
    app.extensions["smartshelf.repository"] = repository
    app.extensions["smartshelf.accounts"] = accounts
    app.extensions["smartshelf.event_reader"] = EventReader(data_dir)


def get_repository() -> InventoryRepository:
    return current_app.extensions["smartshelf.repository"]


def get_accounts() -> AccountStore:
    return current_app.extensions["smartshelf.accounts"]


def get_event_reader() -> EventReader:
    """Cached, read-only access to the device's event files (re-parsed only when a file changes)."""
    return current_app.extensions["smartshelf.event_reader"]


def get_data_dir() -> Path:
    return Path(current_app.config["DATA_DIR"])


def get_runtime_dir() -> Path:
    """Where the device writes status.json (RUNTIME_DIR; default /run/smartshelf if it exists, else DATA_DIR)."""
    from smartshelf.core.config import resolve_runtime_dir

    configured = current_app.config.get("RUNTIME_DIR")
    return resolve_runtime_dir(Path(configured) if configured else None, get_data_dir())
