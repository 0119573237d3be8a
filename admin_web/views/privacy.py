"""Privacy: what the shelf processes and keeps, the pause-camera switch, the printable shelf notice."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from admin_web.db import get_accounts, get_runtime_dir
from admin_web.device_client import DeviceClient
from admin_web.errors import DeviceUnavailable
from admin_web.insight import read_status

bp = Blueprint("privacy", __name__, url_prefix="/privacy")

OPERATOR_KEY = "notice_operator"


@bp.route("/")
def index() -> Any:
    status = read_status(get_runtime_dir(), stale_s=float(current_app.config["DEVICE_STALE_S"]))
    operator = get_accounts().get_setting(OPERATOR_KEY, "")
    return render_template("privacy/index.html", status=status, operator=operator)


@bp.route("/pause", methods=["POST"])
def pause() -> Any:
    paused = request.form.get("paused") == "1"
    client = DeviceClient(current_app.config["DEVICE_URL"], timeout=float(current_app.config["DEVICE_TIMEOUT_S"]),
                          data_dir=current_app.config["DATA_DIR"])
    try:
        client.pause(paused)
    except DeviceUnavailable as exc:
        current_app.logger.warning("camera %s failed: %s", "pause" if paused else "resume", exc)
        flash(f"Could not {'pause' if paused else 'resume'} the camera: {exc.plain}. Try again in a minute; "
              "if it persists, restart the shelf.", "error")
        return redirect(url_for("privacy.index")), 303
    flash("Camera paused: nothing is analysed until you resume it." if paused else "Camera resumed.", "ok")
    return redirect(url_for("privacy.index"))


@bp.route("/operator", methods=["POST"])
def operator() -> Any:
    text = request.form.get("operator", "").strip()
    if len(text) > 300:
        flash("The operator text is limited to 300 characters.", "error")
        return redirect(url_for("privacy.index")), 303
    get_accounts().set_setting(OPERATOR_KEY, text)
    flash("Saved the operator shown on the shelf notice.", "ok")
    return redirect(url_for("privacy.index"))


@bp.route("/notice")
def notice() -> Any:
    return render_template("privacy/notice.html", operator=get_accounts().get_setting(OPERATOR_KEY, ""))
