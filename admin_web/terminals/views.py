"""Flask blueprint: the terminal API (signed webhooks) and the admin page (pairing, ledger, alerts).

``init_app(app)`` creates the app's :class:`TerminalLedger`, registers the blueprint, the nav link
and the dashboard panel (conversion by segment, A/B uplift, stock-discrepancy alerts).

API:
- ``POST /api/v1/terminal/events`` (generic; headers ``X-Terminal-Id``, ``X-Signature``)
- ``POST /api/v1/terminal/stripe/<terminal_id>`` (Stripe webhook; header ``Stripe-Signature``)

Answers: 200 ``{"status": "applied"|"duplicate"|"ignored"}``; 401 ``{"error": "unauthorized"}``;
422 ``{"error": "invalid_event"}``; 413 for a body over 64 KiB; 503 ``{"error": "storage"}`` when
the store could not be written (nothing applied: retry).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request, url_for
from markupsafe import Markup

from admin_web import registry
from admin_web.appconfig import smartshelf_config, smartshelf_config_error
from admin_web.products import format_price
from admin_web.security import csrf_exempt, login_required, public
from admin_web.terminals import conversion
from admin_web.terminals.adapters import PROVIDERS, adapter_for
from admin_web.terminals.apply import Submission
from admin_web.terminals.errors import AuthError, EventError, TerminalError
from admin_web.terminals.events import MAX_BODY_BYTES
from admin_web.terminals.ledger import TerminalLedger
from smartshelf.core.errors import StorageError

logger = logging.getLogger(__name__)

bp = Blueprint("terminals", __name__, template_folder="templates")
EXTENSION = "smartshelf.terminals"


def init_app(app: Flask) -> None:
    """Register the terminals area on an admin app."""
    app.extensions[EXTENSION] = TerminalLedger(Path(app.config["DATA_DIR"]),
                                               repository=app.extensions["smartshelf.repository"])
    app.extensions[EXTENSION + ".impressions"] = conversion.ImpressionLoader(Path(app.config["DATA_DIR"]) / "events.sqlite3")
    app.register_blueprint(bp)
    registry.add_nav_link(app, "terminals.index", "Terminals")
    registry.register_dashboard_panel(app, _dashboard_panel)


def generic_share() -> float | None:
    """The A/B share shown on the page: app config GENERIC_SHARE if set, else the config file's
    ``recommend.generic_share`` (reloaded when the file changes: the device may run a new value)."""
    if current_app.config.get("GENERIC_SHARE") is not None:
        return float(current_app.config["GENERIC_SHARE"])
    config = smartshelf_config()
    if smartshelf_config_error() is not None:
        return None  # the page says the value could not be read
    return config.recommend.generic_share


def get_ledger() -> TerminalLedger:
    return current_app.extensions[EXTENSION]


# -- API --------------------------------------------------------------------------------------------
def _error(status: int, error: str, message: str) -> tuple[Response, int]:
    return jsonify(error=error, message=message), status


def _receive(terminal_id: str, provider: str) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, "too_large", f"event bodies are at most {MAX_BODY_BYTES} bytes")
    ledger = get_ledger()
    body = request.get_data(cache=False)
    try:
        stored_provider, secret = ledger.credentials(terminal_id)
        if stored_provider != provider:
            raise AuthError(f"terminal {terminal_id!r} is paired as {stored_provider}, not {provider}")
        event = adapter_for(provider).read(body=body, headers=request.headers, secret=secret, now=ledger.clock(),
                                           clock_synced=ledger.clock_synced())
    except AuthError as exc:
        logger.info("terminal request refused (401) from %s: %s", request.remote_addr, exc)
        return _error(401, "unauthorized", str(exc))
    except EventError as exc:
        logger.info("terminal %s: invalid event (422): %s", terminal_id, exc)
        return _error(422, "invalid_event", str(exc))
    except StorageError as exc:
        logger.error("cannot read the terminals table: %s", exc)
        return _error(503, "storage", f"the store could not be read, nothing was applied; retry ({exc})")
    if event is None:
        return jsonify(status="ignored")
    try:
        result = ledger.submit(Submission(event, terminal_id, provider))
    except StorageError as exc:
        return _error(503, "storage", f"the store could not be written, nothing was applied; retry ({exc})")
    if result.status == "unauthorized":
        return _error(401, "unauthorized", result.message)
    if result.status == "rejected":
        logger.info("terminal %s: event rejected (422): %s", terminal_id, result.message)
        return _error(422, "invalid_event", result.message)
    payload: dict[str, Any] = {"status": result.status}
    if result.negative_skus:
        payload["stock_alert"] = list(result.negative_skus)
    return jsonify(payload)


@bp.post("/api/v1/terminal/events")
@public
@csrf_exempt
def generic_events() -> Any:
    return _receive(request.headers.get("X-Terminal-Id", "").strip(), "generic")


@bp.post("/api/v1/terminal/stripe/<terminal_id>")
@public
@csrf_exempt
def stripe_events(terminal_id: str) -> Any:
    return _receive(terminal_id, "stripe")


# -- admin page -------------------------------------------------------------------------------------
#: The page and the dashboard report on this many recent days (the CSV export covers everything).
REPORT_DAYS = 30


def _conversions(*, days: int | None = REPORT_DAYS) -> tuple[conversion.ConversionReport, list[conversion.Attribution]]:
    """The last ``days`` days (None: the whole ledger, for the trainer export)."""
    ledger = get_ledger()
    window = int(current_app.config.get("CONVERSION_WINDOW_S", 600))
    events_db = Path(current_app.config["DATA_DIR"]) / "events.sqlite3"
    loader = current_app.extensions[EXTENSION + ".impressions"]
    if days is None:
        return conversion.compute(ledger.sales(), events_db, window_s=window, loader=loader)
    end = datetime.fromtimestamp(ledger.clock(), UTC)
    start = end - timedelta(days=days)
    # Sales are reported by payment time; an entry received up to a day after its payment is kept.
    sales = ledger.sales(since=start.timestamp() - 86400)
    return conversion.compute(sales, events_db, window_s=window, start=start, end=end, loader=loader)


def _page(**extra: Any) -> str:
    ledger = get_ledger()
    recent = ledger.sales(since=ledger.clock() - 86400)[-50:]
    report, _ = _conversions()
    return render_template(
        "terminals/index.html",
        terminals=ledger.terminals(),
        providers=PROVIDERS,
        alerts=ledger.negative_stock(),
        sales=list(reversed(recent)),
        sales_total=ledger.count(),
        report=report,
        generic_share=generic_share(),
        format_price=format_price,
        **extra,
    )


@bp.get("/terminals/")
@login_required
def index() -> Any:
    return _page()


@bp.post("/terminals/pair")
@login_required
def pair() -> Any:
    name = request.form.get("name", "")
    provider = request.form.get("provider", "generic")
    secret = request.form.get("webhook_secret") or None
    try:
        pairing = get_ledger().pair(name, provider=provider, secret=secret if provider != "generic" else None)
    except TerminalError as exc:
        return _page(error=str(exc)), 400
    # Rendered (not redirected) so the secret is never in a URL, the session or a log line.
    return _page(pairing=pairing, paired_name=name.strip())


@bp.get("/terminals/<terminal_id>/revoke")
@login_required
def confirm_revoke(terminal_id: str) -> Any:
    """The confirmation page (works without JavaScript)."""
    info = next((t for t in get_ledger().terminals() if t.terminal_id == terminal_id and t.active), None)
    if info is None:
        abort(404, description=f"No active terminal {terminal_id}.")
    return render_template(
        "confirm.html", title=f"Revoke {info.name}?",
        consequence=(f"Sales from {info.name} will be refused from now on, so they no longer update the stock. "
                     "Sales already recorded stay. To use this terminal again, pair it anew."),
        action=url_for("terminals.revoke", terminal_id=terminal_id), confirm_label="Revoke terminal",
        cancel=url_for("terminals.index"))


@bp.post("/terminals/<terminal_id>/revoke")
@login_required
def revoke(terminal_id: str) -> Any:
    try:
        info = get_ledger().revoke(terminal_id)
    except TerminalError as exc:
        abort(404, description=str(exc))
    return _page(message=f"Terminal {info.name} ({info.terminal_id}) is revoked; its events are now refused.")


@bp.get("/terminals/export/<name>.csv")
@login_required
def export(name: str) -> Any:
    if name not in ("interactions", "users"):
        abort(404)
    _, attributions = _conversions(days=None)
    item_ids = {p.get("sku"): p.get("item_id") for p in get_ledger().products() if p.get("item_id")}
    interactions, users = conversion.interactions_csv(attributions, item_ids)
    text = interactions if name == "interactions" else users
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


#: The dashboard's conversion panel is reused for this long unless a sale arrives (the report
#: reads 30 days of events; recomputing it on every dashboard view was its main cost).
PANEL_TTL_S = 10.0


def _panel_report() -> conversion.ConversionReport:
    ledger = get_ledger()
    sales = ledger.sales(since=ledger.clock() - 86400)
    key = (len(sales), sales[-1].get("event_id") if sales else None, ledger.count())
    cache = current_app.extensions.setdefault(EXTENSION + ".panel", {})
    now = time.monotonic()
    if cache.get("key") != key or now - cache.get("at", -PANEL_TTL_S) >= PANEL_TTL_S:
        cache.update(key=key, at=now, report=_conversions()[0])
    return cache["report"]


def _dashboard_panel() -> dict[str, Any] | None:
    report = _panel_report()
    html = render_template(
        "terminals/panel.html",
        report=report,
        alerts=get_ledger().negative_stock(),
        generic_share=generic_share(),
    )
    return {"title": "Sales and conversions", "html": Markup(html)}
