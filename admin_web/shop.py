"""Shop settings (name, currency, number format, A/B share) and reading amounts as staff type them.

The settings live in store.json's ``settings`` table (one document, owned by the admin repository);
they are the default everywhere staff enter data: a product without a currency gets the shop's, a
price typed on the form, in a CSV or as text in the API is read in the shop's number format.
Number formats and ISO 4217 currencies come from Babel (the CLDR data), not from hand-kept tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import (
    NumberFormatError,
    format_decimal,
    get_currency_precision,
    get_decimal_symbol,
    get_group_symbol,
    list_currencies,
    parse_decimal,
)

from admin_web.errors import ValidationError

#: Number formats offered on the settings page (any CLDR locale id is accepted).
LOCALE_CHOICES: tuple[tuple[str, str], ...] = (
    ("en_IN", "1,23,456.78 (India)"),
    ("en_GB", "123,456.78 (UK, Ireland)"),
    ("en_US", "123,456.78 (US)"),
    ("de_DE", "123.456,78 (Germany, Austria)"),
    ("nl_NL", "123.456,78 (Netherlands)"),
    ("es_ES", "123.456,78 (Spain)"),
    ("it_IT", "123.456,78 (Italy)"),
    ("fr_FR", "123 456,78 (France)"),
    ("pl_PL", "123 456,78 (Poland)"),
    ("sv_SE", "123 456,78 (Sweden)"),
    ("de_CH", "123’456.78 (Switzerland)"),
)
MAX_STOCK = 1_000_000
_SPACES = re.compile(r"[ \u00a0\u202f\u2009]")


@lru_cache(maxsize=1)
def currencies() -> frozenset[str]:
    """Active ISO 4217 codes known to CLDR."""
    return frozenset(list_currencies())


def check_currency(value: Any, field: str = "currency") -> str:
    """An ISO 4217 code (upper-cased) or ValidationError naming the value."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, f"must be a 3-letter ISO 4217 code such as EUR, got {value!r}")
    code = value.strip().upper()
    if code not in currencies():
        raise ValidationError(field, f"{value.strip()!r} is not an ISO 4217 currency code (e.g. EUR, INR, GBP)")
    return code


def currency_exponent(currency: str) -> int:
    """Decimals of the currency's minor unit (EUR 2, JPY 0, KWD 3)."""
    try:
        return int(get_currency_precision(currency.upper()))
    except Exception:  # noqa: BLE001 - Babel raises various errors for unknown codes
        return 2


@dataclass(frozen=True)
class ShopSettings:
    shop_name: str = "My shop"
    currency: str = "INR"
    locale: str = "en_IN"
    #: Share of visits that get the non-personalised picks (the A/B control group), 0 to 0.5; the
    #: device uses it instead of the config's ``recommend.generic_share`` once staff saved the settings.
    generic_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def decimal_symbol(self) -> str:
        return str(get_decimal_symbol(self.locale))

    @property
    def example_price(self) -> str:
        return self.format_amount(Decimal("1234.5"), self.currency)

    def format_amount(self, amount: Decimal | float, currency: str | None = None, *, grouping: bool = True) -> str:
        """``1.234,50`` (grouping) or ``1234,50`` in a German-format shop."""
        exp = currency_exponent(currency or self.currency)
        pattern = ("#,##0" if grouping else "0") + ("." + "0" * exp if exp else "")
        return str(format_decimal(amount, format=pattern, locale=self.locale))

    def format_minor(self, minor: int, currency: str | None = None, *, grouping: bool = True) -> str:
        exp = currency_exponent(currency or self.currency)
        return self.format_amount(Decimal(minor).scaleb(-exp), currency, grouping=grouping)

    def parse_amount(self, text: str, currency: str | None = None, *, field: str = "price") -> int:
        """Amount typed by staff -> minor units of ``currency`` (default the shop's).

        Read in the shop's number format (``12,50`` and ``1.234,56`` in a German-format shop); a
        decimal point that cannot be a thousands separator is read as a decimal point too (``12.50``
        anywhere), and the other way round. Ambiguous input (``1.234`` in a German shop) follows the
        shop's format. Anything else is refused with the value named.
        """
        currency = currency or self.currency
        raw = str(text).strip()
        if not raw:
            raise ValidationError(field, "is required")
        amount = _parse(raw, self.locale)
        if amount is None:
            example = self.example_price
            raise ValidationError(field, f"{raw!r} is not an amount (write it like {example})")
        if not amount.is_finite() or amount < 0:
            raise ValidationError(field, f"must be zero or more, got {raw!r}")
        exp = currency_exponent(currency)
        scaled = amount.scaleb(exp)
        if scaled != scaled.to_integral_value():
            raise ValidationError(field, f"{raw!r} has more decimals than {currency} allows ({exp})")
        if scaled > 10**12:
            raise ValidationError(field, f"{raw!r} is out of range")
        return int(scaled)


def _parse(raw: str, locale: str) -> Decimal | None:
    for loc in (locale, _other_convention(locale)):
        group = str(get_group_symbol(loc))
        text = _SPACES.sub(group, raw) if _SPACES.fullmatch(group) else raw
        if loc != locale:
            # Only where the other convention is unambiguous: its decimal mark followed by 1, 2 or 4+
            # digits (never 3, which reads as a thousands group in the shop's own format).
            mark = str(get_decimal_symbol(loc))
            if mark not in text or re.search(re.escape(mark) + r"\d{3}$", text):
                return None
        try:
            return Decimal(parse_decimal(text, locale=loc, strict=True))
        except (NumberFormatError, ValueError, ArithmeticError):
            continue
    return None


def _other_convention(locale: str) -> str:
    return "en_US" if str(get_decimal_symbol(locale)) == "," else "de_DE"


def validate_settings(data: Mapping[str, Any], current: ShopSettings) -> ShopSettings:
    """New settings from a form or JSON object; every field error is collected (ValidationError)."""
    errors: list[ValidationError] = []
    values = current.to_dict()
    name = data.get("shop_name", current.shop_name)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 80 or any(ord(c) < 32 for c in name):
        errors.append(ValidationError("shop_name", f"must be 1 to 80 characters of text, got {name!r}"))
    else:
        values["shop_name"] = name.strip()
    try:
        values["currency"] = check_currency(data.get("currency", current.currency))
    except ValidationError as exc:
        errors.append(exc)
    locale = data.get("locale", current.locale)
    try:
        values["locale"] = str(Locale.parse(str(locale).strip().replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        errors.append(ValidationError("locale", f"{locale!r} is not a known number format (e.g. de_DE, en_IN)"))
    share = data.get("generic_share", current.generic_share)
    try:
        share_value = float(str(share).strip().replace(",", ".")) if isinstance(share, str) else float(share)
        if not 0.0 <= share_value <= 0.5:
            raise ValueError
        values["generic_share"] = share_value
    except (TypeError, ValueError):
        errors.append(ValidationError("generic_share", f"must be a number from 0 to 0.5, got {share!r}"))
    unknown = [k for k in data if k not in values and k != "csrf_token"]
    errors += [ValidationError(str(k), "is not a shop setting") for k in unknown]
    if errors:
        raise ValidationError.many(errors)
    return ShopSettings(**values)


def settings_from_doc(doc: Mapping[str, Any] | None) -> ShopSettings:
    """The stored settings (defaults for what is missing or no longer valid)."""
    if not doc:
        return ShopSettings()
    try:
        return validate_settings({k: v for k, v in doc.items() if k in ShopSettings.__dataclass_fields__},
                                 ShopSettings())
    except ValidationError:
        return ShopSettings()
