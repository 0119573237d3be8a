"""CSV import/export of products.

Two import formats, told apart by the header:

* **template**: the product fields as columns (:data:`TEMPLATE_COLUMNS`); ``price`` is the amount as
  staff write it, in the shop's number format (``12,50`` or ``1.234,56`` in a German-format shop,
  ``12.50`` anywhere); a row without a currency gets the shop's. This is also what export writes
  (in the shop's format). sku, name, price and stock are required per row.

The delimiter (``,`` or ``;``, Excel's default where the decimal mark is a comma) is sniffed
with :class:`csv.Sniffer` from the header line.
* **myntra**: the Myntra catalogue (``Product_ID, Product_Name, Product_Brand, Gender, Price, ...``,
  price in whole rupees). Product_ID becomes both sku and item_id (the factor file's item id);
  new products start with stock 0; for existing products stock, slot, low stock, category and
  image are kept.

:func:`parse_products_csv` validates every row and returns all errors; the caller writes only if
there are none (nothing is ever half-imported).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from admin_web.errors import ValidationError
from admin_web.products import PRODUCT_FIELDS, validate_product
from admin_web.shop import ShopSettings
from smartshelf.core.csvsafe import safe_cell

TEMPLATE_COLUMNS: tuple[str, ...] = PRODUCT_FIELDS
MYNTRA_COLUMNS: tuple[str, ...] = ("Product_ID", "Product_Name", "Product_Brand", "Gender", "Price")
MYNTRA_GENDER = {
    "women": "female", "girls": "female", "men": "male", "boys": "male", "unisex": "unisex", "unisex kids": "unisex",
}
#: Fields an import from the catalogue never overwrites on an existing product.
MYNTRA_KEEP: tuple[str, ...] = ("stock", "slot", "low_stock", "category")
MAX_ROWS = 50_000


@dataclass(frozen=True)
class RowError:
    line: int  # line number in the file (the header is line 1)
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ImportResult:
    format: str  # "template" | "myntra"
    products: list[dict[str, Any]]
    errors: list[RowError]
    keep: tuple[str, ...]  # fields kept on existing products


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationError("file", "is not UTF-8 text")


def _myntra_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    pid = (row.get("Product_ID") or "").strip()
    gender_raw = (row.get("Gender") or "").strip()
    gender = MYNTRA_GENDER.get(gender_raw.lower()) if gender_raw else None
    if gender_raw and gender is None:
        raise ValidationError("Gender", f"unknown value {gender_raw!r} (expected Women, Men, Unisex, Boys, Girls)")
    price_raw = (row.get("Price") or "").strip()
    if not price_raw.isdigit():
        raise ValidationError("Price", f"must be whole rupees, got {price_raw!r}")
    return {
        "sku": pid, "item_id": pid or None, "name": (row.get("Product_Name") or "").strip(),
        "brand": (row.get("Product_Brand") or "").strip() or None, "gender": gender,
        "price": int(price_raw) * 100, "currency": "INR", "stock": 0,
    }


def sniff_delimiter(text: str) -> str:
    """``,`` or ``;`` (or tab), from the header line: a one-column header is a plain comma file."""
    header = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def parse_products_csv(
    text: str, *, shop: ShopSettings | None = None, slots: Collection[str] | None = None
) -> ImportResult:
    """Every row validated; every error of every row collected (nothing is written by this)."""
    shop = shop or ShopSettings()
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    header = [h.strip() for h in (reader.fieldnames or []) if h is not None]
    if all(c in header for c in MYNTRA_COLUMNS):
        fmt, keep = "myntra", MYNTRA_KEEP
    elif "sku" in header:
        fmt, keep = "template", ()
        unknown = [h for h in header if h and h not in TEMPLATE_COLUMNS]
        missing = [c for c in ("sku", "name", "price", "stock") if c not in header]
        if unknown or missing:
            what = (f"unknown column(s) {', '.join(unknown)}" if unknown else "") + (
                ("; " if unknown and missing else "") + (f"missing column(s) {', '.join(missing)}" if missing else ""))
            return ImportResult(fmt, [], [RowError(1, "header", what)], keep)
    else:
        return ImportResult("unknown", [], [RowError(1, "header", (
            "not a product CSV: expected the template columns (" + ", ".join(TEMPLATE_COLUMNS)
            + ") or the Myntra catalogue columns (" + ", ".join(MYNTRA_COLUMNS) + ")"))], ())
    products: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if len(products) + len(errors) >= MAX_ROWS:
                errors.append(RowError(line, "file", f"more than {MAX_ROWS} rows; split the file"))
                break
            if not any((v or "").strip() for k, v in row.items() if k is not None and isinstance(v, str)):
                continue  # blank line
            row_errors: list[ValidationError] = []
            try:
                if fmt == "myntra":
                    raw = _myntra_row(row)
                else:
                    if row.get(None):  # type: ignore[call-overload]
                        raise ValidationError("row", f"has more cells than the header ({_delimiter_hint(reader)})")
                    raw = {k.strip(): (v if v is None else v.strip()) for k, v in row.items() if k}
                    raw = {k: (None if v == "" else v) for k, v in raw.items()}
                    raw, row_errors = _amounts(raw, shop)
                doc = validate_product(raw, shop=shop, slots=slots)
                if row_errors:
                    raise ValidationError.many(row_errors)
            except ValidationError as exc:
                found = row_errors + [e for e in exc.errors if e not in row_errors]
                if any(e.field == "price" for e in row_errors):
                    found = [e for e in found if not (e.field == "price" and e.message == "is required")]
                errors.extend(RowError(line, e.field, e.message) for e in found)
                continue
            if doc["sku"] in seen:
                errors.append(RowError(line, "sku", f"{doc['sku']} also appears on line {seen[doc['sku']]}"))
                continue
            seen[doc["sku"]] = line
            products.append(doc)
    except csv.Error as exc:
        errors.append(RowError(reader.line_num, "file", f"broken CSV: {exc}"))
    return ImportResult(fmt, products, errors, keep)


def _amounts(raw: dict[str, Any], shop: ShopSettings) -> tuple[dict[str, Any], list[ValidationError]]:
    """The row with its price read in the shop's number format (minor units), and the price error."""
    price = raw.get("price")
    if price is None:
        return raw, []
    currency = str(raw.get("currency") or shop.currency).upper()
    try:
        return {**raw, "price": shop.parse_amount(str(price), currency)}, []
    except ValidationError as exc:
        return {**raw, "price": 0}, [exc]


def _delimiter_hint(reader: Any) -> str:
    delimiter = reader.reader.dialect.delimiter
    other = ";" if delimiter == "," else ","
    return (f"the file is read as '{delimiter}'-separated: a price like 12{other}50 must be in quotes, "
            f"or separate the columns with '{other}'") if delimiter in ",;" else "check the separators"


def export_products_csv(products: Iterable[Mapping[str, Any]], *, shop: ShopSettings | None = None) -> str:
    """The template columns; prices in the shop's number format; ``;``-separated where the shop's
    decimal mark is a comma (as a spreadsheet there expects it)."""
    shop = shop or ShopSettings()
    out = io.StringIO()
    delimiter = ";" if shop.decimal_symbol == "," else ","
    writer = csv.DictWriter(out, fieldnames=list(TEMPLATE_COLUMNS), extrasaction="ignore", lineterminator="\r\n",
                            delimiter=delimiter)
    writer.writeheader()
    for p in products:
        row = {k: ("" if p.get(k) is None else _safe_cell(p.get(k))) for k in TEMPLATE_COLUMNS}
        if p.get("price") is not None:
            row["price"] = shop.format_minor(int(p["price"]), p.get("currency") or shop.currency, grouping=False)
        writer.writerow(row)
    return out.getvalue()



def _safe_cell(value: Any) -> Any:
    """Defuse spreadsheet formulas in text cells (CSV injection): :func:`smartshelf.core.csvsafe.safe_cell`."""
    return safe_cell(value)
