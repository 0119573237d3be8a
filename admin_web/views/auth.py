"""Login / logout. There is no default password: until ``smartshelf admin set-password`` has been
run the login page says so and how; failed logins are rate limited per client address."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from admin_web.db import get_accounts
from admin_web.security import login_limiter, public, safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    accounts = get_accounts()
    if not accounts.has_users():
        return render_template("auth/login.html", setup_needed=True,
                               data_dir=current_app.config["DATA_DIR"]), 503
    error = None
    status = 200
    if request.method == "POST":
        client = request.remote_addr or "unknown"
        limiter = login_limiter()
        wait = limiter.retry_after(client)
        if wait:
            body = render_template("auth/login.html", error=f"Too many failed logins. Try again in {wait} s.",
                                   next=request.form.get("next", ""))
            return body, 429, {"Retry-After": str(wait)}
        username = request.form.get("username", "admin")
        password = request.form.get("password", "")
        if accounts.check_password(username, password):
            limiter.succeeded(client)
            target = safe_next(request.form.get("next"))
            session.clear()
            session.permanent = True
            session["user"] = username.strip()
            return redirect(target)
        limiter.failed(client)
        current_app.logger.warning("failed admin login for %r from %s", username[:64], client)
        error = "Wrong user name or password."
        status = 401
    return render_template("auth/login.html", error=error, next=request.args.get("next", "")
                           if request.method == "GET" else request.form.get("next", "")), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
