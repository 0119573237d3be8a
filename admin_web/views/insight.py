"""Insight dashboard: impressions per hour and per segment, most recommended products, device status.

All charts are server-side SVG. Other areas add panels with
:func:`admin_web.registry.register_dashboard_panel` (shown in the template's ``{% block conversion %}``).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request

from admin_web import registry
from admin_web.db import get_event_reader, get_repository, get_runtime_dir
from admin_web.insight import impressions_per_hour, read_status, totals
from admin_web.svg import bar_chart, column_chart
from smartshelf.core.atomic import file_stamp
from smartshelf.core.readiness import learned_ids, shelf_readiness
from smartshelf.core.retrain_report import read_retrain_report

bp = Blueprint("insight", __name__)

RANGES = {"1": 1, "7": 7, "30": 30}


def _panels() -> list[dict[str, Any]]:
    out = []
    for panel in registry.dashboard_panels(current_app):
        try:
            result = panel()
        except Exception:
            current_app.logger.exception("dashboard panel %r failed", panel)
            result = {"title": "Panel unavailable", "html": "This panel failed; see the service log."}
        if result:
            out.append(result)
    return out


LEARNED_KEY = "smartshelf.learned_ids"


def _learned_ids() -> frozenset[str] | None:
    """The factor file's item ids, read again only when the file was replaced (not on every view)."""
    path = current_app.config["FACTORS_PATH"]
    stamp = file_stamp(path)
    cached = current_app.extensions.get(LEARNED_KEY)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    ids = learned_ids(path)
    current_app.extensions[LEARNED_KEY] = (stamp, ids)
    return ids


@bp.route("/")
def dashboard() -> Any:
    now = time.time()
    days = RANGES.get(request.args.get("days", "7"), 7)
    reader = get_event_reader()
    hourly = impressions_per_hour(reader, now)
    tot = totals(reader, days, now)
    repo = get_repository()
    products = repo.products_by_sku()
    top = tot.items.most_common(10)
    top_labels = [f"{sku} {products[sku]['name']}" if sku in products else sku for sku, _ in top]
    segments = sorted(tot.segments.items(), key=lambda kv: (-kv[1], kv[0]))
    status = read_status(get_runtime_dir(), stale_s=float(current_app.config["DEVICE_STALE_S"]), now=now)
    tz = datetime.fromtimestamp(now).astimezone().strftime("%Z") or "local time"
    discrepancies, low = repo.stock_alerts()
    alerts = discrepancies + low
    readiness = shelf_readiness(
        repo.list_products(), [s["slot"] for s in repo.list_slots()],
        learned=_learned_ids(),
    )
    return render_template(
        "insight/dashboard.html",
        hourly_svg=column_chart([f"{h:02d}" for h in range(24)], hourly,
                                title=f"Picks shown per hour today ({tz})"),
        today_total=sum(hourly),
        segment_svg=bar_chart([s for s, _ in segments], [n for _, n in segments],
                              title=f"Picks shown per shopper group, last {days} day(s)"),
        top_svg=bar_chart(top_labels, [n for _, n in top], title=f"Most shown products, last {days} day(s)"),
        totals=tot, days=days, status=status, alerts=alerts, panels=_panels(), readiness=readiness,
        visits_today=totals(reader, 1, now).visits if days != 1 else tot.visits,
        retrain=read_retrain_report(current_app.config["FACTORS_PATH"]),
        fmt_time=lambda t: datetime.fromtimestamp(float(t)).astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "never",
    )
