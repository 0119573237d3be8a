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
from admin_web.products import (
    DEFAULT_CURRENCY,
    DEFAULT_LOW_STOCK,
    GENDERS,
    currency_exponent,
    parse_major_price,
    stock_state,
)
from smartshelf.core.errors import ImageError

bp = Blueprint("inventory", __name__, url_prefix="/products")

PER_PAGE = 50


def notify_device() -> None:
    """Best-effort POST /control/reload in the background (the device also watches store.json)."""
    client = DeviceClient(current_app.config["DEVICE_URL"], timeout=float(current_app.config["DEVICE_TIMEOUT_S"]))
    threading.Thread(target=client.reload_quietly, name="device-reload", daemon=True).start()


def _form_to_product(form: Any) -> dict[str, Any]:
    currency = (form.get("currency") or DEFAULT_CURRENCY).strip().upper() or DEFAULT_CURRENCY
    price_text = (form.get("price") or "").strip()
    data: dict[str, Any] = {
        k: (form.get(k) or "").strip() or None
        for k in ("sku", "name", "brand", "gender", "category", "slot", "item_id")
    }
    data["currency"] = currency
    data["price"] = parse_major_price(price_text, currency) if price_text else None
    data["stock"] = (form.get("stock") or "").strip() or None
    data["low_stock"] = (form.get("low_stock") or "").strip() or None
    return data


def _price_major(product: dict[str, Any]) -> str:
    exp = currency_exponent(product.get("currency") or DEFAULT_CURRENCY)
    price = int(product.get("price") or 0)
    return str(price) if exp == 0 else f"{price / 10**exp:.{exp}f}"


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


@bp.route("/new", methods=["GET", "POST"])
def new() -> Any:
    product: dict[str, Any] = {"currency": DEFAULT_CURRENCY, "low_stock": DEFAULT_LOW_STOCK, "stock": 0}
    error = None
    if request.method == "POST":
        staged = None
        try:
            data = _form_to_product(request.form)
            staged = _stage_upload(str(data.get("sku") or ""))
            product = get_repository().create_product(data)
            _attach(product["sku"], staged)
            notify_device()
            flash(f"Added {product['sku']} ({product['name']}).", "ok")
            return redirect(url_for("inventory.index", q=product["sku"]))
        except (ValidationError, Conflict, ImageError) as exc:
            delete_image(get_data_dir(), staged)
            error = str(exc)
            product = dict(request.form)
    return render_template("inventory/form.html", product=product, creating=True, error=error,
                           genders=GENDERS, price_text=request.form.get("price", "")), (422 if error else 200)


@bp.route("/<sku>/edit", methods=["GET", "POST"])
def edit(sku: str) -> Any:
    repo = get_repository()
    try:
        product = repo.get_product(sku)
    except NotFound:
        abort(404, description=f"No product with SKU {sku}.")
    error = None
    price_text = _price_major(product)
    if request.method == "POST":
        try:
            data = _form_to_product(request.form)
            data["sku"] = sku
            staged = _stage_upload(sku)
            try:
                product = repo.update_product(sku, data)
            except ValidationError:
                if staged and staged != product.get("image"):
                    delete_image(get_data_dir(), staged)
                raise
            _attach(sku, staged)
            if request.form.get("remove_image") and not staged:
                delete_image(get_data_dir(), repo.set_image(sku, None))
            notify_device()
            flash(f"Saved {sku}.", "ok")
            return redirect(url_for("inventory.index", q=sku))
        except (ValidationError, ImageError) as exc:
            error = str(exc)
            product = {**product, **request.form.to_dict()}
            price_text = request.form.get("price", "")
    return render_template("inventory/form.html", product=product, creating=False, error=error,
                           genders=GENDERS, price_text=price_text), (422 if error else 200)


@bp.route("/<sku>/delete", methods=["POST"])
def delete(sku: str) -> Any:
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
    if not NAME_RE.match(name):
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
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS), 422
        try:
            result = parse_products_csv(decode(upload.read()))
        except ValidationError as exc:
            flash(f"Import refused: {exc}", "error")
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS), 422
        if result.errors:
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, result=result), 422
        try:
            created, updated = get_repository().import_products(result.products, keep=result.keep)
        except ValidationError as exc:
            return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, result=result,
                                   write_error=str(exc)), 422
        notify_device()
        summary = {"created": created, "updated": updated, "format": result.format}
    return render_template("inventory/import.html", columns=TEMPLATE_COLUMNS, result=result, summary=summary)


@bp.route("/export.csv")
def export_csv() -> Response:
    body = export_products_csv(get_repository().list_products())
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=smartshelf-products.csv"})


@bp.route("/template.csv")
def template_csv() -> Response:
    return Response(export_products_csv([]), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=smartshelf-template.csv"})
