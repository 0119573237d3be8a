"""The admin app factory (flaskr pattern): ``create_app(config=None)``.

Config keys (a dict; missing keys come from the smartshelf config file, then defaults):

DATA_DIR, DEVICE_URL, SHELF_NAME, CONVERSION_WINDOW_S (from the TOML config's shelf/admin sections),
SECRET_KEY (default: ``<data_dir>/secret_key``, created once, 0600), LOGIN_MAX_FAILURES (5),
LOGIN_WINDOW_S (300), MAX_CONTENT_LENGTH (16 MiB), MAX_IMAGE_BYTES (5 MiB), DEVICE_TIMEOUT_S (2),
RUNTIME_DIR (where the device's status.json is; default /run/smartshelf if it exists, else DATA_DIR),
DEVICE_STALE_S (30: status.json older than this = device not running), SMARTSHELF_CONFIG (path),
STORE_HUB (False; true: run the store bus's hub client, BROKER_HOST 127.0.0.1, BROKER_PORT 1883,
TOPIC_ROOT "smartshelf").

The smartshelf config is loaded once per process into a :class:`ConfigSource` (reloaded when the
file changes); views read it with ``admin_web.appconfig.smartshelf_config()``.

Extension points for other areas (``admin_web.registry``, imported by the areas, not this module):
* ``app.register_blueprint(...)`` in :func:`create_app` (see the marked line),
* ``registry.add_nav_link`` (a link in the top navigation),
* ``registry.register_dashboard_panel`` (a panel in the dashboard's ``{% block conversion %}``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from admin_web import db, registry, security
from admin_web.appconfig import CONFIG_KEY
from admin_web.products import format_price, stock_state
from smartshelf.core.config import ConfigSource

logger = logging.getLogger(__name__)


DEFAULTS: dict[str, Any] = {
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_WINDOW_S": 300,
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "MAX_IMAGE_BYTES": 5 * 1024 * 1024,
    "DEVICE_TIMEOUT_S": 2.0,
    "DEVICE_STALE_S": 30.0,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "smartshelf_session",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    # the cookie is set at login only: no sliding renewal (the server-side record has a fixed expiry)
    "SESSION_REFRESH_EACH_REQUEST": False,
    "PROXY_HOPS": 0,
    "SESSION_COOKIE_SECURE": False,
    "JSON_SORT_KEYS": False,
}


def _from_smartshelf_config(source: ConfigSource) -> dict[str, Any]:
    cfg = source.get()
    return {
        "DATA_DIR": str(cfg.data_dir),
        "RUNTIME_DIR": str(cfg.runtime_dir),
        "DEVICE_URL": cfg.admin.device_url,
        "SHELF_NAME": cfg.shelf.name,
        "CONVERSION_WINDOW_S": cfg.admin.conversion_window_s,
        "PROXY_HOPS": cfg.admin.proxy_hops,
        "SESSION_COOKIE_SECURE": cfg.admin.secure_cookie or cfg.admin.proxy_hops > 0,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=cfg.admin.session_hours),
        # None: <DATA_DIR>/factors.npz, whatever data dir the app is given
        "FACTORS_PATH": str(cfg.recommend.factors) if cfg.recommend.factors else None,
        "STORE_HUB": cfg.admin.store_hub,
        "BROKER_PORT": cfg.admin.broker_port,
        "TOPIC_ROOT": cfg.bus.topic_root,
    }


def _security_headers(response: Any) -> Any:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _handle_http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return jsonify(error=exc.name.lower().replace(" ", "_"), message=exc.description), code
    return render_template("error.html", code=code, name=exc.name, description=exc.description), code


def create_app(config: dict[str, Any] | None = None) -> Flask:
    config = dict(config or {})
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(DEFAULTS)
    # The one config of this process: the file named by SMARTSHELF_CONFIG, else the default path if
    # present, else the defaults; the process-level keys (data dir, device URL) are taken from it once.
    source = ConfigSource(config.get("SMARTSHELF_CONFIG"))
    app.extensions[CONFIG_KEY] = source
    for key, value in _from_smartshelf_config(source).items():
        config.setdefault(key, value)
    config.setdefault("SHELF_NAME", "smartshelf")
    config.setdefault("CONVERSION_WINDOW_S", 600)
    app.config.update(config)
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops:  # trust exactly this many proxies' X-Forwarded-For/-Proto (never a client's own header)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
        app.config["SESSION_COOKIE_SECURE"] = True
    data_dir = Path(app.config["DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    if not app.config.get("FACTORS_PATH"):
        app.config["FACTORS_PATH"] = str(data_dir / "factors.npz")
    if not app.config.get("SECRET_KEY"):
        from admin_web.accounts import load_or_create_secret_key

        app.config["SECRET_KEY"] = load_or_create_secret_key(data_dir)

    db.init_app(app)
    security.install(app)
    from smartshelf.core.control import load_or_create_secret

    load_or_create_secret(data_dir)  # the admin<->device secret: whoever starts first creates it

    from admin_web.terminals.views import init_app as init_terminals
    from admin_web.views import api, auth, insight, inventory, privacy, settings, slots

    for module in (auth, inventory, slots, insight, privacy, settings, api):
        app.register_blueprint(module.bp)
    # Payment terminals, sales ledger and conversions (admin_web/terminals/): blueprint, nav link, panel.
    init_terminals(app)
    # The store page; with STORE_HUB the store bus's hub client (admin_web/store_bus.py) runs in this app.
    from admin_web.views import store

    store.init_app(app)

    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.jinja_env.filters["price"] = lambda p: format_price(int(p.get("price") or 0), p.get("currency") or "INR")
    app.jinja_env.filters["stock_state"] = stock_state
    app.jinja_env.filters["utc"] = lambda ts: datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M")

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {
            "shelf_name": app.config["SHELF_NAME"],
            "nav_links": registry.nav_links(app),
        }

    app.jinja_env.globals["Markup"] = Markup
    return app


def close_app(app: Flask) -> None:
    """The admin's shutdown: write the stock kept in memory to store.json, stop the store hub's
    threads, close the files. Each step runs even when an earlier one fails (it is logged)."""
    steps = [app.extensions.get(name) for name in ("smartshelf.store_publisher", "smartshelf.store_hub",
                                                   "smartshelf.terminals", "smartshelf.repository")]
    for part in steps:
        if part is None:
            continue
        try:
            part.close()
        except Exception:
            logger.exception("shutdown: closing %s failed", type(part).__name__)
