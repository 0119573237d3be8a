"""Shop settings page: shop name, currency, number format and the A/B control share.

The values are the defaults everywhere staff enter data (see :mod:`admin_web.shop`); the device
reads the A/B share from store.json.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from admin_web.db import get_repository
from admin_web.errors import ValidationError
from admin_web.shop import LOCALE_CHOICES, currencies
from admin_web.views.inventory import notify_device

bp = Blueprint("settings", __name__, url_prefix="/settings")


@bp.route("/", methods=["GET", "POST"])
def index() -> Any:
    repo = get_repository()
    settings = repo.settings()
    errors: list[ValidationError] = []
    form: dict[str, Any] = settings.to_dict()
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in ("shop_name", "currency", "locale", "generic_share")}
        try:
            settings = repo.set_settings(form)
        except ValidationError as exc:
            errors = exc.errors
        else:
            notify_device()
            flash(f"Saved the shop settings: prices in {settings.currency}, written like {settings.example_price}.",
                  "ok")
            return redirect(url_for("settings.index"))
    locales = list(LOCALE_CHOICES)
    if form.get("locale") and form["locale"] not in dict(locales):
        locales.append((form["locale"], form["locale"]))
    return render_template("settings/index.html", form=form, settings=settings, errors=errors, locales=locales,
                           currencies=sorted(currencies())), (422 if errors else 200)
