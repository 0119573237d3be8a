"""JSON API v1 (session or ``Authorization: Bearer <token>``; tokens from ``smartshelf admin create-token``).

``GET/POST /api/v1/products``, ``GET/PUT/DELETE /api/v1/products/<sku>``,
``PUT /api/v1/products/<sku>/stock``, ``GET /api/v1/slots``, ``GET/PUT /api/v1/settings`` (the shop
settings: scopes settings:read / settings:write, never in a default token); the OpenAPI description of all of them
at ``GET /api/v1/openapi.json`` (``admin_web/openapi.json``, kept in step with the routes by a test).
Each view names the token scope it needs (:func:`~admin_web.security.requires_scope`).
Bodies must be ``Content-Type: application/json`` objects, at most ``MAX_JSON_DEPTH`` deep.
Errors are JSON ``{"error": code, "message": text[, "field": name]}`` with 400 (malformed JSON),
404, 409 (duplicate sku; ``slot_taken``: the product would take another off its slot, or leave its own:
``displaced`` and ``moved_from`` say what, and the same request with ``"move": true`` in the body or
``?move=1`` does it), 422 (validation; ``field`` names the first field at fault, ``errors`` lists
every ``{"field", "message"}``).

Prices: an integer is minor units (cents); text is an amount in the shop's number format ("12,50").
A product without a currency gets the shop's.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from admin_web.db import get_repository
from admin_web.errors import Conflict, NotFound, ValidationError
from admin_web.products import MAX_STOCK
from admin_web.repository import SlotTaken
from admin_web.security import public, requires_scope
from admin_web.views.inventory import notify_device
from smartshelf.core.headers import HeaderError, require_json
from smartshelf.core.jsonsafe import JSONDepthError, loads_bounded

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PER_PAGE = 500


def _error(status: int, code: str, message: str, **extra: Any) -> Any:
    return jsonify(error=code, message=message, **extra), status


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Any:
    return _error(422, "validation", str(exc), field=exc.field,
                  errors=[{"field": e.field, "message": e.message} for e in exc.errors])


@bp.errorhandler(SlotTaken)
def _slot_taken(exc: SlotTaken) -> Any:
    return _error(409, "slot_taken", str(exc), field="slot", displaced=exc.displaced, moved_from=exc.moved_from)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return _error(404, "not_found", str(exc))


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Any:
    return _error(409, "conflict", str(exc), field="sku")


class _BadJSON(Exception):
    pass


@bp.errorhandler(_BadJSON)
def _bad_json(exc: _BadJSON) -> Any:
    return _error(400, "bad_request", str(exc))


MAX_JSON_DEPTH = 8


def _body() -> dict[str, Any]:
    try:
        require_json(request.headers.get("Content-Type"))
    except HeaderError as exc:
        raise _BadJSON(str(exc)) from None
    raw = request.get_data(cache=False)
    try:
        data = loads_bounded(raw, max_depth=MAX_JSON_DEPTH)
    except JSONDepthError as exc:
        raise _BadJSON(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadJSON(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise _BadJSON("the JSON body must be an object")
    return data


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise ValidationError(name, f"must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValidationError(name, f"must be between {lo} and {hi}, got {value}")
    return value


@bp.get("/openapi.json")
@public
def openapi() -> Any:
    """The OpenAPI 3 description of this API (public: it holds no data)."""
    text = resources.files("admin_web").joinpath("openapi.json").read_text("utf-8")
    return Response(text, mimetype="application/json")


@bp.get("/products")
@requires_scope("products:read")
def list_products() -> Any:
    page = _int_arg("page", 1, 1, 10**6)
    per_page = _int_arg("per_page", 50, 1, MAX_PER_PAGE)
    query = request.args.get("q") or None
    if query is not None and len(query) > 200:
        raise ValidationError("q", "is longer than 200 characters")
    products = get_repository().list_products(search=query)
    total = len(products)
    items = products[(page - 1) * per_page: page * per_page]
    return jsonify(items=items, page=page, per_page=per_page, total=total,
                   pages=max(1, math.ceil(total / per_page)))


def _move(body: dict[str, Any]) -> bool:
    """``"move": true`` in the body (taken out of it) or ``?move=1``: confirm a slot move."""
    flag = body.pop("move", None)
    if flag is not None and not isinstance(flag, bool):
        raise ValidationError("move", f"must be true or false, got {flag!r}")
    return bool(flag) or request.args.get("move") in ("1", "true")


def _saved_json(saved: Any) -> dict[str, Any]:
    out = dict(saved.doc)
    if saved.displaced or saved.moved_from:
        out["moved"] = {"displaced": saved.displaced, "moved_from": saved.moved_from, "said": saved.moves()}
    return out


@bp.post("/products")
@requires_scope("products:write")
def create_product() -> Any:
    body = _body()
    saved = get_repository().save_product(body, move=_move(body))
    doc = saved.doc
    notify_device()
    response = jsonify(_saved_json(saved))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_product", sku=doc["sku"])
    return response


@bp.get("/products/<sku>")
@requires_scope("products:read")
def get_product(sku: str) -> Any:
    return jsonify(get_repository().get_product(sku))


@bp.put("/products/<sku>")
@requires_scope("products:write")
def update_product(sku: str) -> Any:
    body = _body()
    saved = get_repository().save_product(body, sku=sku, move=_move(body))
    notify_device()
    return jsonify(_saved_json(saved))


@bp.delete("/products/<sku>")
@requires_scope("products:write")
def delete_product(sku: str) -> Any:
    get_repository().delete_product(sku)
    notify_device()
    return "", 204


@bp.put("/products/<sku>/stock")
@requires_scope("stock:write")
def set_stock(sku: str) -> Any:
    """``{"stock": n}`` sets the count, ``{"add": n}`` adds to it (a POS sync or a delivery)."""
    body = _body()
    if set(body) not in ({"stock"}, {"add"}):
        raise ValidationError("body", 'must be exactly {"stock": <count>} or {"add": <units>}')
    key, value = next(iter(body.items()))
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_STOCK <= value <= MAX_STOCK:
        raise ValidationError(key, f"must be a whole number between {-MAX_STOCK} and {MAX_STOCK}")
    doc = get_repository().set_stock(sku, value if key == "stock" else None, add=value if key == "add" else None)
    notify_device()
    return jsonify(doc)


@bp.get("/slots")
@requires_scope("products:read")
def list_slots() -> Any:
    return jsonify(items=get_repository().list_slots())


@bp.get("/settings")
@requires_scope("settings:read")
def get_settings() -> Any:
    return jsonify(get_repository().settings().to_dict())


@bp.put("/settings")
@requires_scope("settings:write")
def put_settings() -> Any:
    settings = get_repository().set_settings(_body())
    notify_device()
    return jsonify(settings.to_dict())
