"""Access to the app's data handles from views (flaskr's ``db`` module).

``get_repository()`` -> :class:`~admin_web.repository.InventoryRepository` (store.json),
``get_accounts()`` -> :class:`~admin_web.accounts.AccountStore` (accounts.json),
``get_event_reader()`` -> :class:`~admin_web.insight.EventReader` (device events, cached, read-only),
``get_data_dir()`` -> the data dir ``Path``. All are created once per app in ``init_app``.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from admin_web.accounts import AccountStore
from admin_web.insight import EventReader
from admin_web.repository import InventoryRepository


def init_app(app: Flask) -> None:
    data_dir = Path(app.config["DATA_DIR"])
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
