"""The smartshelf config as the admin process sees it: loaded once by the app factory into a
:class:`~smartshelf.core.config.ConfigSource` and reloaded when the file changes."""

from __future__ import annotations

from flask import current_app

from smartshelf.core.config import Config, ConfigSource

CONFIG_KEY = "smartshelf.config"


def smartshelf_config() -> Config:
    """The config of this process (a ``stat`` per call; re-read only after the file changed)."""
    source: ConfigSource = current_app.extensions[CONFIG_KEY]
    return source.get()


def smartshelf_config_error() -> str | None:
    """Why the config file's current content is not in use (it changed and does not validate)."""
    source: ConfigSource = current_app.extensions[CONFIG_KEY]
    source.get()
    return source.error
