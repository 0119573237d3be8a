"""The store's page on the hub: every shelf (online, paused, events, stock and factor state) and the
store as a whole; identify a slot, pause or resume any shelf. Active only when the admin runs as the
store's hub (``STORE_HUB`` set, i.e. ``[admin] store_hub = true``): see :func:`init_app`.

While the hub runs, a watcher thread publishes each shelf's stock whenever the one inventory
(store.json) changes, whoever changed it (a page, the till, an import).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from admin_web.store_bus import BusError, StoreHub
from smartshelf.core.bus_schema import Topics
from smartshelf.core.errors import SmartShelfError

logger = logging.getLogger(__name__)

bp = Blueprint("store", __name__, url_prefix="/store")


def get_hub() -> StoreHub:
    hub = current_app.extensions.get("smartshelf.store_hub")
    if hub is None:
        abort(404, description="this admin is not a store hub ([admin] store_hub = false)")
    return hub


class InventoryPublisher:
    """Publishes the shelves' stock when ``store.json`` changes (mtime poll, ``interval_s``)."""

    def __init__(self, hub: StoreHub, interval_s: float = 0.5) -> None:
        self.hub, self.interval_s = hub, interval_s
        self.path = Path(hub.data_dir) / "store.json"
        self._stop = threading.Event()
        self._stamp: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name="store-inventory", daemon=True)

    def start(self) -> InventoryPublisher:
        self._thread.start()
        return self

    def check(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp or not self.hub.connected:
            return []
        self._stamp = stamp
        try:
            return self.hub.publish_inventory()
        except SmartShelfError as exc:
            logger.error("store hub: inventory not published: %s", exc)
            self._stamp = None
            return []

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)


def init_app(app: Flask) -> None:
    """Register the page; connect the hub when ``STORE_HUB`` is true (BROKER_HOST/PORT, TOPIC_ROOT)."""
    app.register_blueprint(bp)
    if not app.config.get("STORE_HUB"):
        return
    from admin_web.registry import add_nav_link

    hub = StoreHub(
        app.config["DATA_DIR"], host=app.config.get("BROKER_HOST", "127.0.0.1"),
        port=int(app.config.get("BROKER_PORT", 1883)), topics=Topics(app.config.get("TOPIC_ROOT", "smartshelf")),
    ).start(wait_s=None)
    app.extensions["smartshelf.store_hub"] = hub
    app.extensions["smartshelf.store_publisher"] = InventoryPublisher(hub).start()
    add_nav_link(app, "store.index", "Store")


def close_app(app: Flask) -> None:
    publisher = app.extensions.pop("smartshelf.store_publisher", None)
    if publisher is not None:
        publisher.close()
    hub = app.extensions.pop("smartshelf.store_hub", None)
    if hub is not None:
        hub.close()


@bp.route("/")
def index() -> Any:
    hub = get_hub()
    return render_template("store/index.html", board=hub.dashboard(), recent=hub.events.recent(10))


@bp.route("/api")
def api() -> Any:
    return jsonify(get_hub().dashboard())


@bp.route("/<shelf>/<action>", methods=["POST"])
def command(shelf: str, action: str) -> Any:
    hub = get_hub()
    if action not in ("identify", "pause", "resume"):
        abort(404)
    body: dict[str, Any] = {}
    if action == "identify":
        body = {"slot": request.form.get("slot", ""), "seconds": 5}
    try:
        ack = hub.command(shelf, action, body, wait_s=float(current_app.config.get("DEVICE_TIMEOUT_S", 2.0)) + 3)
    except BusError as exc:
        flash(f"{shelf}: {action} not confirmed: {exc}", "error")
        return redirect(url_for("store.index")), 303
    if ack.get("ok") and (ack.get("result") or {}).get("ok", True):
        flash(f"{shelf}: {action} done.", "ok")
    else:
        flash(f"{shelf}: {action} failed: {ack.get('error') or (ack.get('result') or {}).get('error')}", "error")
    return redirect(url_for("store.index"))
