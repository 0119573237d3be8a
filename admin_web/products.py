"""Product and slot documents: validation and normalisation (pure, no I/O).

The document shape is fixed by CONTRACTS.md ("products doc"). Prices are integers in minor units
(paise for INR); :func:`parse_major_price` converts what staff type in a form ("1174.50").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from admin_web.errors import ValidationError

PRODUCT_FIELDS: tuple[str, ...] = (
    "sku", "name", "brand", "gender", "category", "price", "currency", "stock", "slot", "item_id", "low_stock",
)
#: Fields the server sets; accepted in input (so a GET document can be PUT back) but ignored.
READ_ONLY_FIELDS: frozenset[str] = frozenset({"image", "updated_at"})
REQUIRED_FIELDS: tuple[str, ...] = ("sku", "name", "price", "stock")
GENDERS: tuple[str, ...] = ("female", "male", "unisex")
DEFAULT_CURRENCY = "INR"
DEFAULT_LOW_STOCK = 2

SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SLOT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")
CURRENCY_RE = re.compile(r"[A-Z]{3}")
#: ISO 4217 currencies without minor units (others have 2 decimals, which covers the rest we sell in).
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF"})
MAX_ABS_INT = 10**12
#: Bounds of every integer field (inclusive). Stock may go below 0 (more sold than counted).
MAX_PRICE = 10**10
MAX_STOCK = 1_000_000


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


def _int(field: str, value: Any, *, minimum: int | None = None, maximum: int = MAX_ABS_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,15}\s*", value):
            value = int(value)
        else:
            raise ValidationError(field, f"must be a whole number, got {str(value)[:40]!r}")
    low = -maximum if minimum is None else minimum
    if not low <= value <= maximum:
        raise ValidationError(field, f"must be between {low} and {maximum}, got {str(value)[:40]}")
    return value


def validate_product(data: Mapping[str, Any], *, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a complete, normalised product document or raise ValidationError naming the field.

    With ``existing`` the input is a partial update merged over that document (its sku cannot
    change). Unknown fields are rejected; read-only fields (image, updated_at) are ignored.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object")
    for key in data:
        if key not in PRODUCT_FIELDS and key not in READ_ONLY_FIELDS:
            raise ValidationError(str(key), "is not a product field")
    if existing is not None:
        if "sku" in data and data["sku"] != existing["sku"]:
            raise ValidationError("sku", "cannot be changed (delete and re-create the product)")
        merged: dict[str, Any] = {k: existing.get(k) for k in PRODUCT_FIELDS}
        merged.update({k: v for k, v in data.items() if k in PRODUCT_FIELDS})
    else:
        merged = {k: data.get(k) for k in PRODUCT_FIELDS}
        for field in REQUIRED_FIELDS:
            if data.get(field) is None or data.get(field) == "":
                raise ValidationError(field, "is required")

    out: dict[str, Any] = {}
    sku = _text("sku", merged["sku"], max_len=64, required=True)
    assert sku is not None
    if not SKU_RE.fullmatch(sku):
        raise ValidationError("sku", "may only hold letters, digits, '.', '_' and '-' (at most 64)")
    out["sku"] = sku
    out["name"] = _text("name", merged["name"], max_len=200, required=True)
    out["brand"] = _text("brand", merged["brand"], max_len=100, required=False)
    gender = _text("gender", merged["gender"], max_len=10, required=False)
    if gender is not None:
        gender = gender.lower()
        if gender not in GENDERS:
            raise ValidationError("gender", f"must be one of {', '.join(GENDERS)} or empty, got {gender!r}")
    out["gender"] = gender
    out["category"] = _text("category", merged["category"], max_len=100, required=False)
    out["price"] = _int("price", merged["price"], minimum=0, maximum=MAX_PRICE)
    currency = _text("currency", merged["currency"], max_len=3, required=False) or DEFAULT_CURRENCY
    currency = currency.upper()
    if not CURRENCY_RE.fullmatch(currency):
        raise ValidationError("currency", f"must be a 3-letter ISO 4217 code, got {currency!r}")
    out["currency"] = currency
    out["stock"] = _int("stock", merged["stock"], maximum=MAX_STOCK)
    slot = _text("slot", merged["slot"], max_len=16, required=False)
    if slot is not None and not SLOT_RE.fullmatch(slot):
        raise ValidationError("slot", "may only hold letters, digits, '_' and '-' (at most 16), e.g. A1")
    out["slot"] = slot
    out["item_id"] = _text("item_id", merged["item_id"], max_len=64, required=False)
    low = merged["low_stock"]
    out["low_stock"] = DEFAULT_LOW_STOCK if low is None or low == "" else _int("low_stock", low, minimum=0, maximum=MAX_STOCK)
    out["image"] = existing.get("image") if existing is not None else None
    out["updated_at"] = now_iso()
    return out


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


def currency_exponent(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2


def parse_major_price(text: str, currency: str) -> int:
    """'1174.50' INR -> 117450 (minor units); raises ValidationError('price')."""
    try:
        amount = Decimal(str(text).strip().replace(",", ""))
    except InvalidOperation:
        raise ValidationError("price", f"must be a number such as 1174.50, got {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError("price", "must be a positive amount")
    scaled = amount * (10 ** currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValidationError("price", f"has more decimals than {currency} allows")
    return int(scaled)


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
