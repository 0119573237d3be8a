"""Shelf slots: slot -> LED pin (slots table) and slot -> product (product.slot); identify button.

The device picks changes up from store.json's mtime; a best-effort POST /control/reload is sent too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from admin_web.db import get_repository
from admin_web.device_client import DeviceClient
from admin_web.errors import DeviceUnavailable, NotFound, ValidationError
from admin_web.repository import SlotTaken
from admin_web.views.inventory import notify_device

bp = Blueprint("slots", __name__, url_prefix="/slots")


def _device() -> DeviceClient:
    return DeviceClient(current_app.config["DEVICE_URL"], timeout=float(current_app.config["DEVICE_TIMEOUT_S"]),
                          data_dir=current_app.config["DATA_DIR"])


@bp.route("/")
def index() -> Any:
    repo = get_repository()
    slots = repo.list_slots()
    products = repo.list_products()
    by_slot = {p["slot"]: p for p in products if p.get("slot")}
    known = {s["slot"] for s in slots}
    orphans = sorted(s for s in by_slot if s not in known)  # products in slots that have no pin row
    return render_template("slots/index.html", slots=slots, by_slot=by_slot, products=products, orphans=orphans)


@bp.route("/save", methods=["POST"])
def save() -> Any:
    try:
        doc = get_repository().set_slot(request.form)
    except ValidationError as exc:
        flash(f"Slot not saved: {exc}", "error")
        return redirect(url_for("slots.index")), 303
    notify_device()
    flash(f"Saved slot {doc['slot']}.", "ok")
    return redirect(url_for("slots.index"))


@bp.route("/<slot>/assign", methods=["POST"])
def assign(slot: str) -> Any:
    """Put a product on a slot; a move that takes another product off the shelf, or this one off
    its own slot, is asked first (a confirmation page; nothing changes until it is confirmed)."""
    sku = request.form.get("sku", "").strip() or None
    try:
        saved = get_repository().assign_slot(slot, sku, move=request.form.get("move") == "1")
    except NotFound as exc:
        abort(404, description=str(exc))
    except SlotTaken as exc:
        return render_template("slots/confirm.html", slot=slot, sku=sku, taken=exc), 409
    notify_device()
    moves = "; ".join(saved.moves()) if saved else ""
    flash(f"Slot {slot} now holds {sku or 'nothing'}." + (f" {moves}." if moves else ""), "ok")
    return redirect(url_for("slots.index"))


@bp.route("/<slot>/delete", methods=["GET", "POST"])
def delete(slot: str) -> Any:
    if request.method == "GET":  # the confirmation page (works without JavaScript)
        repo = get_repository()
        if slot not in {s["slot"] for s in repo.list_slots()}:
            abort(404, description=f"No slot {slot}.")
        held = [p["name"] for p in repo.products_by_sku().values() if p.get("slot") == slot]
        return render_template(
            "confirm.html", title=f"Remove slot {slot}?",
            consequence=(f"Slot {slot} and its light will no longer be used"
                         + (f"; {held[0]} stays in the product list but is on no slot" if held else "")
                         + ". You can add the slot again later."),
            action=url_for("slots.delete", slot=slot), confirm_label="Remove slot",
            cancel=url_for("slots.index"))
    try:
        get_repository().delete_slot(slot)
    except NotFound as exc:
        abort(404, description=str(exc))
    notify_device()
    flash(f"Removed slot {slot}.", "ok")
    return redirect(url_for("slots.index"))


@bp.route("/<slot>/identify", methods=["POST"])
def identify(slot: str) -> Any:
    try:
        _device().identify(slot, seconds=5)
    except DeviceUnavailable as exc:
        current_app.logger.warning("identify %s failed: %s", slot, exc)
        flash(f"Could not blink slot {slot}'s light: {exc.plain}. Try again in a minute; "
              "if it persists, restart the shelf.", "error")
        return redirect(url_for("slots.index")), 303
    flash(f"Slot {slot}'s light is blinking for 5 seconds.", "ok")
    return redirect(url_for("slots.index"))
