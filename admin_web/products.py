"""Product and slot documents: validation and normalisation (pure, no I/O).

The document shape is fixed by CONTRACTS.md ("products doc"). Prices are integers in minor units
(paise for INR); what staff type ("1174.50", "12,50") is read by
:meth:`admin_web.shop.ShopSettings.parse_amount` in the shop's number format.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from admin_web.errors import ValidationError
from admin_web.shop import MAX_STOCK, ShopSettings, check_currency, currency_exponent

__all__ = ["MAX_PRICE", "MAX_STOCK", "currency_exponent", "format_price", "stock_state", "validate_product", "validate_slot"]

PRODUCT_FIELDS: tuple[str, ...] = (
    "sku", "name", "brand", "gender", "category", "price", "currency", "stock", "slot", "item_id", "low_stock",
)
#: Fields the server sets; accepted in input (so a GET document can be PUT back) but ignored.
READ_ONLY_FIELDS: frozenset[str] = frozenset({"image", "updated_at", "sold", "moved"})
REQUIRED_FIELDS: tuple[str, ...] = ("sku", "name", "price", "stock")
GENDERS: tuple[str, ...] = ("female", "male", "unisex")
DEFAULT_CURRENCY = "INR"
DEFAULT_LOW_STOCK = 2

SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SLOT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")
CURRENCY_RE = re.compile(r"[A-Z]{3}")
MAX_ABS_INT = 10**12
#: Bounds of every integer field (inclusive). Stock may go below 0 (more sold than counted).
MAX_PRICE = 10**10


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(field: str, value: Any, *, max_len: int, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, not {type(value).__name__}")
    value = value.strip()
    if len(value) > max_len:
        raise ValidationError(field, f"is longer than {max_len} characters")
    if any(ord(c) < 32 for c in value):
        raise ValidationError(field, "contains control characters")
    return value


def _int(field: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,15}\s*", value):
            value = int(value)
        else:
            raise ValidationError(field, f"must be a whole number, got {str(value)[:40]!r}")
    if abs(value) > MAX_ABS_INT:
        raise ValidationError(field, f"{value} is out of range")
    if minimum is not None and value < minimum:
        raise ValidationError(field, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValidationError(field, f"must be at most {maximum:,}, got {value:,}")
    return value


def validate_product(
    data: Mapping[str, Any],
    *,
    existing: Mapping[str, Any] | None = None,
    shop: ShopSettings | None = None,
    slots: Collection[str] | None = None,
) -> dict[str, Any]:
    """Return a complete, normalised product document or raise ValidationError listing every field
    at fault (``.errors``), each naming the field and the value.

    With ``existing`` the input is a partial update merged over that document (its sku cannot
    change). Unknown fields are rejected; read-only fields (image, updated_at, sold) are ignored.
    ``shop`` gives the defaults (currency) and the number format of prices given as text (an
    integer price is in minor units). ``slots``: the shelf's slot names; a slot outside them is
    refused (None or empty: any well-formed name, for a shelf whose slots are not set up yet).
    """
    shop = shop or ShopSettings()
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object")
    errors: list[ValidationError] = []
    for key in data:
        if key not in PRODUCT_FIELDS and key not in READ_ONLY_FIELDS:
            errors.append(ValidationError(str(key), "is not a product field"))
    if existing is not None:
        if "sku" in data and data["sku"] != existing["sku"]:
            errors.append(ValidationError("sku", "cannot be changed (delete and re-create the product)"))
        merged: dict[str, Any] = {k: existing.get(k) for k in PRODUCT_FIELDS}
        merged.update({k: v for k, v in data.items() if k in PRODUCT_FIELDS})
    else:
        merged = {k: data.get(k) for k in PRODUCT_FIELDS}
        for field in REQUIRED_FIELDS:
            if data.get(field) is None or data.get(field) == "":
                errors.append(ValidationError(field, "is required"))
    missing = {e.field for e in errors if e.message == "is required"}

    def check(field: str, fn: Any, *args: Any, **kw: Any) -> Any:
        if field in missing:
            return None
        try:
            return fn(*args, **kw)
        except ValidationError as exc:
            errors.extend(exc.errors)
            return None

    out: dict[str, Any] = {}
    sku = check("sku", _text, "sku", merged["sku"], max_len=64, required=True)
    if sku is not None and not SKU_RE.fullmatch(sku):
        errors.append(ValidationError("sku", f"{sku!r} may only hold letters, digits, '.', '_' and '-' (at most 64)"))
    out["sku"] = sku
    out["name"] = check("name", _text, "name", merged["name"], max_len=200, required=True)
    out["brand"] = check("brand", _text, "brand", merged["brand"], max_len=100, required=False)
    gender = check("gender", _text, "gender", merged["gender"], max_len=10, required=False)
    if gender is not None:
        gender = gender.lower()
        if gender not in GENDERS:
            errors.append(ValidationError("gender", f"must be one of {', '.join(GENDERS)} or empty, got {gender!r}"))
    out["gender"] = gender
    out["category"] = check("category", _text, "category", merged["category"], max_len=100, required=False)
    currency_raw = merged["currency"]
    if currency_raw is None or (isinstance(currency_raw, str) and not currency_raw.strip()):
        currency: str | None = shop.currency
    else:
        currency = check("currency", check_currency, currency_raw)
    out["currency"] = currency
    out["price"] = check("price", _price, merged["price"], currency or shop.currency, shop)
    if existing is not None and "stock" not in data:
        out["stock"] = int(existing.get("stock") or 0)  # sales may have taken it below zero: keep as is
    else:
        out["stock"] = check("stock", _int, "stock", merged["stock"], minimum=0, maximum=MAX_STOCK)
    slot = check("slot", _text, "slot", merged["slot"], max_len=16, required=False)
    if slot is not None and not SLOT_RE.fullmatch(slot):
        errors.append(ValidationError("slot", f"{slot!r} may only hold letters, digits, '_' and '-' (at most 16), e.g. A1"))
    elif slot is not None and slots and slot not in slots:
        errors.append(ValidationError("slot", f"{slot!r} is not a slot of this shelf (slots: {', '.join(sorted(slots))})"))
    out["slot"] = slot
    out["item_id"] = check("item_id", _text, "item_id", merged["item_id"], max_len=64, required=False)
    low = merged["low_stock"]
    out["low_stock"] = (
        DEFAULT_LOW_STOCK if low is None or low == ""
        else check("low_stock", _int, "low_stock", low, minimum=0, maximum=MAX_STOCK)
    )
    if errors:
        raise ValidationError.many(errors)
    out["image"] = existing.get("image") if existing is not None else None
    out["sold"] = int(existing.get("sold") or 0) if existing is not None else 0
    out["updated_at"] = now_iso()
    return out


def _price(value: Any, currency: str, shop: ShopSettings) -> int:
    """An integer is minor units (the API's contract); text is an amount in the shop's number format."""
    if isinstance(value, str):
        if re.fullmatch(r"\s*[0-9]{1,15}\s*", value) is None:
            return shop.parse_amount(value, currency)
        value = int(value)
    if isinstance(value, float):
        raise ValidationError(
            "price", f"{value!r}: give minor units as a whole number (1250) or the amount as text (\"12,50\")"
        )
    return _int("price", value, minimum=0, maximum=MAX_PRICE)


def validate_slot(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return a normalised slots doc ``{"slot", "pin", "label"}``; pins are BCM 2..27."""
    slot = _text("slot", data.get("slot"), max_len=16, required=True)
    assert slot is not None
    if not SLOT_RE.fullmatch(slot):
        raise ValidationError("slot", "may only hold letters, digits, '_' and '-' (at most 16), e.g. A1")
    pin_raw = data.get("pin")
    pin: int | None = None
    if pin_raw is not None and pin_raw != "":
        pin = _int("pin", pin_raw, maximum=MAX_STOCK)
        if not 2 <= pin <= 27:
            raise ValidationError("pin", f"must be a BCM GPIO number between 2 and 27, got {pin}")
    label = _text("label", data.get("label"), max_len=60, required=False)
    return {"slot": slot, "pin": pin, "label": label}


def format_price(minor: int, currency: str) -> str:
    exp = currency_exponent(currency)
    if exp == 0:
        return f"{minor:,} {currency}"
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole:,}.{frac:0{exp}d} {currency}"


def stock_state(product: Mapping[str, Any]) -> str:
    """'discrepancy' (stock < 0: more sold than counted), 'low' (<= low_stock), 'out' (0) or 'ok'."""
    stock = int(product.get("stock") or 0)
    if stock < 0:
        return "discrepancy"
    if stock == 0:
        return "out"
    if stock <= int(product.get("low_stock") if product.get("low_stock") is not None else DEFAULT_LOW_STOCK):
        return "low"
    return "ok"
