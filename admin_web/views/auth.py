"""Login / logout, one's own password, and the sessions and tokens page.

There is no default password: until ``smartshelf admin set-password`` has been run the login page
says so and how. Failed logins are limited per account and per client address (with backoff, see
:class:`~admin_web.security.LoginRateLimiter`). A login creates a server-side session record;
logout, a password change and "sign out everywhere" delete records, so a saved cookie stops working.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from admin_web.accounts import DEFAULT_SCOPES, SCOPES
from admin_web.db import get_accounts
from admin_web.errors import NotFound, ValidationError
from admin_web.security import csrf_token, current_user, login_limiter, public, safe_next

bp = Blueprint("auth", __name__)


def _lifetime_s() -> float:
    return current_app.permanent_session_lifetime.total_seconds()


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
        username = request.form.get("username", "admin")[:64]
        password = request.form.get("password", "")[:1024]
        keys = (f"addr:{client}", f"user:{username.strip().lower()}")
        limiter = login_limiter()
        wait = limiter.begin(*keys)  # reserves a failure on both keys before the slow check
        if wait:
            body = render_template("auth/login.html", error=f"Too many failed logins. Try again in {wait} s.",
                                   next=request.form.get("next", ""))
            return body, 429, {"Retry-After": str(wait)}
        if accounts.check_password(username, password):
            limiter.succeeded(*keys)
            target = safe_next(request.form.get("next"))
            session.clear()
            session.permanent = True
            session["sid"] = accounts.create_session(
                username.strip(), lifetime_s=_lifetime_s(), address=client,
                agent=request.headers.get("User-Agent", ""),
            )
            csrf_token()  # made now, so later pages never change the session (no cookie re-issued)
            return redirect(target)
        current_app.logger.warning("failed admin login for %r from %s", username[:64], client)
        error = "Wrong user name or password."
        status = 401
    return render_template("auth/login.html", error=error, next=request.args.get("next", "")
                           if request.method == "GET" else request.form.get("next", "")), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    sid = session.get("sid")
    if sid:
        get_accounts().end_session(str(sid))
    session.clear()
    return redirect(url_for("auth.login"))


def _staff() -> str:
    """The logged-in staff user (this page is for people, never for tokens)."""
    user = current_user()
    if user is None or g.get("session_record") is None:
        abort(403, description="log in as staff to manage sessions and tokens")
    return user


def _account_page(status: int = 200, **extra: Any) -> Any:
    accounts = get_accounts()
    record = g.get("session_record") or {}
    return render_template(
        "auth/account.html", user=_staff(), current_session=record.get("id"),
        sessions=accounts.list_sessions(), tokens=accounts.list_tokens(), scopes=SCOPES,
        default_scopes=DEFAULT_SCOPES, now=time.time(), **extra,
    ), status


@bp.get("/account/")
def account() -> Any:
    return _account_page()


@bp.post("/account/password")
def change_password() -> Any:
    user = _staff()
    accounts = get_accounts()
    current = request.form.get("current_password", "")[:1024]
    new = request.form.get("new_password", "")[:1024]
    if new != request.form.get("confirm_password", "")[:1024]:
        return _account_page(400, password_error="The new password and its confirmation differ.")
    if not accounts.check_password(user, current):
        return _account_page(400, password_error="The current password is wrong.")
    try:
        accounts.set_password(user, new)  # ends every session of this user, this one included
    except ValidationError as exc:
        return _account_page(400, password_error=f"New password {exc.message}.")
    session["sid"] = accounts.create_session(user, lifetime_s=_lifetime_s(), address=request.remote_addr or "",
                                             agent=request.headers.get("User-Agent", ""))
    session.pop("_csrf", None)
    csrf_token()
    flash("Password changed; every other session is signed out.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/sessions/<session_id>/revoke")
def revoke_session(session_id: str) -> Any:
    _staff()
    try:
        get_accounts().revoke_session(session_id)
    except NotFound as exc:
        abort(404, description=str(exc))
    flash("Session signed out.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/sessions/revoke-all")
def revoke_all_sessions() -> Any:
    _staff()
    count = get_accounts().revoke_sessions()
    session.clear()
    flash(f"Signed out everywhere ({count} sessions).", "info")
    return redirect(url_for("auth.login"))


@bp.post("/account/tokens")
def create_token() -> Any:
    _staff()
    name = request.form.get("name", "")
    scopes = request.form.getlist("scopes")
    try:
        token = get_accounts().create_token(name, scopes or None)
    except ValidationError as exc:
        return _account_page(400, token_error=f"{exc.field}: {exc.message}")
    # rendered, not redirected: the token is shown once and never put in a URL or the session
    return _account_page(new_token=token, new_token_name=name.strip())


@bp.get("/account/tokens/<name>/revoke")
def confirm_revoke_token(name: str) -> Any:
    """The confirmation page (a plain form: works without JavaScript and from the keyboard)."""
    _staff()
    if not any(t["name"] == name for t in get_accounts().list_tokens()):
        abort(404, description=f"No token named {name!r}.")
    return render_template(
        "confirm.html", title=f"Revoke the token {name!r}?",
        consequence=("Whatever uses this token (a till or stock sync) is refused from its next request. "
                     "To connect it again, create a new token and give it that one."),
        action=url_for("auth.revoke_token", name=name), confirm_label="Revoke token",
        cancel=url_for("auth.account"))


@bp.post("/account/tokens/<name>/revoke")
def revoke_token(name: str) -> Any:
    _staff()
    try:
        get_accounts().revoke_token(name)
    except NotFound as exc:
        abort(404, description=str(exc))
    flash(f"Token {name!r} revoked.", "info")
    return redirect(url_for("auth.account"))
