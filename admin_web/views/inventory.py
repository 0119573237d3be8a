"""Inventory pages: product list with stock alerts, add/edit/delete, restock, image, CSV import/export."""

from __future__ import annotations

import math
import threading
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from admin_web.csvio import TEMPLATE_COLUMNS, decode, export_products_csv, parse_products_csv
from admin_web.db import get_data_dir, get_repository
from admin_web.device_client import DeviceClient
from admin_web.errors import Conflict, NotFound, ValidationError
from admin_web.images import IMAGE_DIR, MIME, NAME_RE, delete_image, save_image
from admin_web.products import DEFAULT_LOW_STOCK, GENDERS, stock_state, validate_product
from admin_web.repository import SlotTaken
from admin_web.shop import ShopSettings
from smartshelf.core.errors import ImageError

bp = Blueprint("inventory", __name__, url_prefix="/products")

PER_PAGE = 50


def notify_device() -> None:
    """Best-effort POST /control/reload in the background (the device also watches store.json)."""
    client = DeviceClient(current_app.config["DEVICE_URL"], timeout=float(current_app.config["DEVICE_TIMEOUT_S"]),
                          data_dir=current_app.config["DATA_DIR"])
    threading.Thread(target=client.reload_quietly, name="device-reload", daemon=True).start()


def _form_to_product(form: Any, shop: ShopSettings) -> tuple[dict[str, Any], list[ValidationError]]:
    """(product fields, price errors): the price is read in the shop's number format ("12,50")."""
    currency = (form.get("currency") or "").strip().upper() or shop.currency
    price_text = (form.get("price") or "").strip()
    data: dict[str, Any] = {
        k: (form.get(k) or "").strip() or None
        for k in ("sku", "name", "brand", "gender", "category", "slot", "item_id")
    }
    data["currency"] = currency
    errors: list[ValidationError] = []
    data["price"] = None
    if price_text:
        try:
            data["price"] = shop.parse_amount(price_text, currency)
        except ValidationError as exc:
            errors.append(exc)
    data["stock"] = (form.get("stock") or "").strip() or None
    data["low_stock"] = (form.get("low_stock") or "").strip() or None
    return data, errors


def _save_form(data: dict[str, Any], price_errors: list[ValidationError], *, sku: str | None) -> Any:
    """Save through the repository; every error of the form at once (price errors first)."""
    repo = get_repository()
    if price_errors:  # check the other fields too, so that staff see every error at once; save nothing
        others: list[ValidationError] = []
        try:
            existing = repo.get_product(sku) if sku else None
            validate_product({**data, "price": 0}, existing=existing, shop=repo.settings(), slots=repo.slot_names())
        except ValidationError as exc:
            others = exc.errors
        except NotFound:
            pass
        raise ValidationError.many(price_errors + others)
    return repo.save_product(data, sku=sku, move=request.form.get("move") == "1")


def _price_major(product: dict[str, Any], shop: ShopSettings) -> str:
    try:
        return shop.format_minor(int(product.get("price") or 0), product.get("currency") or shop.currency)
    except (TypeError, ValueError):
        return str(product.get("price") or "")


def _stage_upload(sku: str) -> str | None:
    """Check and store an uploaded image before the product is saved; returns its file name."""
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        return None
    limit = int(current_app.config["MAX_IMAGE_BYTES"])
    return save_image(get_data_dir(), sku, upload.read(limit + 1), max_bytes=limit)


def _attach(sku: str, name: str | None) -> None:
    if name is None:
        return
    previous = get_repository().set_image(sku, name)
    if previous and previous != name:
        delete_image(get_data_dir(), previous)


@bp.route("/")
def index() -> Any:
    repo = get_repository()
    search = request.args.get("q", "").strip()
    alert_filter = request.args.get("filter", "")
    products = repo.list_products(search=search or None)
    discrepancies, low = repo.stock_alerts()
    if alert_filter == "alerts":
        products = [p for p in products if stock_state(p) != "ok"]
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    pages = max(1, math.ceil(len(products) / PER_PAGE))
    page = min(page, pages)
    shown = products[(page - 1) * PER_PAGE: page * PER_PAGE]
    return render_template("inventory/list.html", products=shown, total=len(products), page=page, pages=pages,
                           q=search, filter=alert_filter, discrepancies=discrepancies, low=low)


def _render_form(product: dict[str, Any], *, creating: bool, error: Any, price_text: str,
                 confirm: SlotTaken | None = None) -> Any:
    shop = get_repository().settings()
    errors = error.errors if isinstance(error, ValidationError) else ([error] if error else [])
    status = 409 if confirm else (422 if errors else 200)
    return render_template("inventory/form.html", product=product, creating=creating, errors=errors,
                           error=str(error) if error else None, genders=GENDERS, price_text=price_text,
                           shop=shop, confirm=confirm, slots=sorted(get_repository().slot_names())), status


def _moved_message(saved: Any) -> str:
    moves = saved.moves()
    return (" " + "; ".join(moves) + ".") if moves else ""


@bp.route("/new", methods=["GET", "POST"])
def new() -> Any:
    shop = get_repository().settings()
    product: dict[str, Any] = {"currency": shop.currency, "low_stock": DEFAULT_LOW_STOCK, "stock": 0}
    error: Any = None
    confirm = None
    if request.method == "POST":
        staged = None
        try:
            data, price_errors = _form_to_product(request.form, shop)
            staged = _stage_upload(str(data.get("sku") or ""))
            saved = _save_form(data, price_errors, sku=None)
            product = saved.doc
            _attach(product["sku"], staged)
            notify_device()
            flash(f"Added {product['sku']} ({product['name']}).{_moved_message(saved)}", "ok")
            return redirect(url_for("inventory.index", q=product["sku"]))
        except SlotTaken as exc:
            delete_image(get_data_dir(), staged)
            confirm = exc
            product = dict(request.form)
        except (ValidationError, Conflict, ImageError) as exc:
            delete_image(get_data_dir(), staged)
            error = exc
            product = dict(request.form)
    return _render_form(product, creating=True, error=error, price_text=request.form.get("price", ""),
                        confirm=confirm)


@bp.route("/<sku>/edit", methods=["GET", "POST"])
def edit(sku: str) -> Any:
    repo = get_repository()
    try:
        product = repo.get_product(sku)
    except NotFound:
        abort(404, description=f"No product with SKU {sku}.")
    error: Any = None
    confirm = None
    shop = repo.settings()
    price_text = _price_major(product, shop)
    if request.method == "POST":
        try:
            data, price_errors = _form_to_product(request.form, shop)
            data["sku"] = sku
            staged = _stage_upload(sku)
            try:
                saved = _save_form(data, price_errors, sku=sku)
            except (ValidationError, SlotTaken):
                if staged and staged != product.get("image"):
                    delete_image(get_data_dir(), staged)
                raise
            product = saved.doc
            _attach(sku, staged)
            if request.form.get("remove_image") and not staged:
                delete_image(get_data_dir(), repo.set_image(sku, None))
            notify_device()
            flash(f"Saved {sku}.{_moved_message(saved)}", "ok")
            return redirect(url_for("inventory.index", q=sku))
        except SlotTaken as exc:
            confirm = exc
            product = {**product, **request.form.to_dict()}
            price_text = request.form.get("price", "")
        except (ValidationError, ImageError) as exc:
            error = exc
            product = {**product, **request.form.to_dict()}
            price_text = request.form.get("price", "")
    return _render_form(product, creating=False, error=error, price_text=price_text, confirm=confirm)


@bp.route("/<sku>/delete", methods=["GET", "POST"])
def delete(sku: str) -> Any:
    if request.method == "GET":  # the confirmation page (works without JavaScript)
        product = get_repository().products_by_sku().get(sku)
        if product is None:
            abort(404, description=f"No product with SKU {sku}.")
        return render_template(
            "confirm.html", title=f"Delete {product['name']}?",
            consequence=(f"{product['name']} ({sku}) will be removed from the product list"
                         f"{' and from slot ' + product['slot'] if product.get('slot') else ''}. "
                         "Its sales history stays. This cannot be undone."),
            action=url_for("inventory.delete", sku=sku), confirm_label="Delete product",
            cancel=url_for("inventory.edit", sku=sku))
    try:
        removed = get_repository().delete_product(sku)
    except NotFound:
        abort(404, description=f"No product with SKU {sku}.")
    delete_image(get_data_dir(), removed.get("image"))
    notify_device()
    flash(f"Deleted {sku}.", "ok")
    return redirect(url_for("inventory.index"))


@bp.route("/<sku>/restock", methods=["POST"])
def restock(sku: str) -> Any:
    raw = request.form.get("quantity", "").strip()
    try:
        qty = int(raw)
        product = get_repository().restock(sku, qty)
    except ValueError:
        flash(f"Restock {sku}: quantity must be a whole number above 0, got {raw!r}.", "error")
        return redirect(request.referrer or url_for("inventory.index")), 303
    except NotFound:
        abort(404, description=f"No product with SKU {sku}.")
    notify_device()
    flash(f"Restocked {sku}: +{qty}, stock now {product['stock']}.", "ok")
    return redirect(url_for("inventory.index", q=request.form.get("q") or None))


@bp.route("/image/<name>")
def image(name: str) -> Any:
    if not NAME_RE.fullmatch(name):
        abort(404)
    ext = name.rsplit(".", 1)[1]
    return send_from_directory(get_data_dir() / IMAGE_DIR, name, mimetype=MIME[ext], max_age=3600)


@bp.route("/import", methods=["GET", "POST"])
def import_csv() -> Any:
    result = None
    summary = None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash("Choose a CSV file first.", "error")
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, shop=get_repository().settings()), 422
        try:
            repo = get_repository()
            result = parse_products_csv(decode(upload.read()), shop=repo.settings(), slots=repo.slot_names())
        except ValidationError as exc:
            flash(f"Import refused: {exc}", "error")
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, shop=get_repository().settings()), 422
        if result.errors:
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, shop=get_repository().settings(), result=result), 422
        try:
            created, updated = get_repository().import_products(result.products, keep=result.keep)
        except ValidationError as exc:
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, shop=get_repository().settings(), result=result,
                                   write_error=str(exc)), 422
        notify_device()
        summary = {"created": created, "updated": updated, "format": result.format}
    return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, shop=get_repository().settings(), result=result, summary=summary)


@bp.route("/export.csv")
def export_csv() -> Response:
    repo = get_repository()
    body = export_products_csv(repo.list_products(), shop=repo.settings())
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=smartshelf-products.csv"})


@bp.route("/template.csv")
def template_csv() -> Response:
    return Response(export_products_csv([], shop=get_repository().settings()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=smartshelf-template.csv"})
