"""The store staff's admin page (Flask): inventory, shelf slots, insight, privacy, API.

``create_app`` is imported lazily so that ``admin_web.cli`` (loaded by ``smartshelf --help``) does
not import flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the admin Flask app (flaskr pattern). See :func:`admin_web.app.create_app`."""
    from admin_web.app import create_app as _create_app

    return _create_app(config)
