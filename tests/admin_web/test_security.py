"""Login, default deny over every route, CSRF, rate limit, API tokens, cookies and headers."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ADMIN_PASSWORD

# the terminals area's signed webhooks authenticate each request themselves
PUBLIC_ENDPOINTS = {"static", "auth.login", "api.openapi", "terminals.generic_events", "terminals.stripe_events"}


def _fill(rule: Any) -> str:
    values = {arg: "A1" for arg in rule.arguments}
    if "name" in rule.arguments:
        values["name"] = "x.png"
    return rule.build(values, append_unknown=False)[1]


def test_every_non_public_route_needs_login(app: Any, client: Any) -> None:
    checked = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint == "static" or getattr(view, "_smartshelf_public", False):
            continue
        path = _fill(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            if path.startswith("/api/"):
                assert response.status_code == 401, (method, path)
                assert response.is_json and response.json["error"] == "unauthorized"
            else:
                assert response.status_code == 302, (method, path, response.status_code)
                assert response.headers["Location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 25


def test_only_the_expected_views_are_public(app: Any) -> None:
    public = {e for e, v in app.view_functions.items() if getattr(v, "_smartshelf_public", False)}
    assert public <= PUBLIC_ENDPOINTS and "auth.login" in public


def test_unknown_paths_do_not_leak_to_anonymous_users(client: Any) -> None:
    assert client.get("/no-such-page").status_code == 302
    assert client.get("/api/v1/no-such").status_code == 401


def test_login_redirects_to_next_and_logout_ends_session(client: Any, auth: Any) -> None:
    response = auth.login(next="/slots/")
    assert response.status_code == 302 and response.headers["Location"] == "/slots/"
    assert client.get("/products/").status_code == 200
    auth.logout()
    assert client.get("/products/").status_code == 302


def test_login_refuses_offsite_next(auth: Any) -> None:
    response = auth.login(next="https://evil.example/")
    assert response.headers["Location"] == "/"
    assert auth.login(next="//evil.example/").headers["Location"] == "/"


def test_wrong_password_is_refused(client: Any, auth: Any) -> None:
    response = auth.login(password="wrong password!")
    assert response.status_code == 401
    assert b"Wrong user name or password" in response.data
    assert client.get("/products/").status_code == 302


def test_no_password_set_explains_how_to_set_one(tmp_path: Any) -> None:
    from admin_web import create_app

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "DEVICE_URL": "http://127.0.0.1:9"})
    response = app.test_client().get("/login")
    assert response.status_code == 503
    assert b"No admin password has been set" in response.data
    assert b"smartshelf admin set-password --data-dir" in response.data


def test_login_is_rate_limited_per_client_and_account_with_backoff(app: Any, client: Any, auth: Any) -> None:
    now = [1000.0]
    app.extensions["smartshelf.login_limiter"].clock = lambda: now[0]
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert auth.login(password="nope nope nope").status_code == 401
    blocked = auth.login(password=ADMIN_PASSWORD)  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    other = app.test_client()

    def login_from(address: str, user: str) -> Any:
        page = other.get("/login", environ_base={"REMOTE_ADDR": address})
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
        return other.post("/login", data={"username": user, "password": ADMIN_PASSWORD, "csrf_token": token},
                          environ_base={"REMOTE_ADDR": address})

    # another address guessing another account is not affected (a wrong password there: 401, not 429)
    assert login_from("10.0.0.9", "someone-else").status_code == 401
    # the same account from another address waits too, but only the backoff, not a lockout
    assert login_from("10.0.0.10", "admin").status_code == 429
    now[0] += 2
    assert login_from("10.0.0.10", "admin").status_code == 302


def test_rate_limiter_backs_off_and_the_window_expires() -> None:
    from admin_web.security import LoginRateLimiter

    now = [1000.0]
    limiter = LoginRateLimiter(max_failures=2, window_s=60, clock=lambda: now[0], base_delay_s=1, max_delay_s=8)
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == 1  # first step of the backoff
    now[0] += 1
    for expected in (2, 4, 8, 8):  # doubles, capped: never a lockout
        assert limiter.begin("a") == 0
        assert limiter.retry_after("a") == expected
        now[0] += expected
    now[0] += 61
    assert limiter.retry_after("a") == 0
    limiter.failed("b")
    limiter.succeeded("b")
    assert limiter.retry_after("b") == 0


def test_csrf_token_is_required_for_form_posts(client: Any, auth: Any, csrf: Any) -> None:
    auth.login()
    form = {"sku": "A1", "name": "Shirt", "price": "10", "currency": "INR", "stock": "1"}
    assert client.post("/products/new", data=form).status_code == 400
    assert client.post("/products/new", data={**form, "csrf_token": "forged"}).status_code == 400
    assert client.get("/api/v1/products/A1").status_code == 404  # nothing was created
    assert client.post("/products/new", data={**form, "csrf_token": csrf()}).status_code == 302
    # JSON API with a session cookie needs the token too (header form)
    assert client.delete("/api/v1/products/A1").status_code == 400
    assert client.delete("/api/v1/products/A1", headers={"X-CSRF-Token": csrf()}).status_code == 204


def test_login_form_needs_csrf(client: Any) -> None:
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 400


def test_bearer_tokens(app: Any, client: Any) -> None:
    from admin_web.accounts import AccountStore

    store = AccountStore(app.config["DATA_DIR"])
    token = store.create_token("pos-sync", ["products:read", "products:write"])
    stored = Path(app.config["DATA_DIR"], "accounts.json").read_text()
    assert token not in stored and "pos-sync" in stored  # only the hash is stored
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/products", headers=headers).status_code == 200
    created = client.post("/api/v1/products", headers=headers,
                          json={"sku": "T1", "name": "Tee", "price": 100, "stock": 1})
    assert created.status_code == 201  # no CSRF needed: a bearer token is not ambient
    assert client.get("/api/v1/products", headers={"Authorization": "Bearer ss_wrong"}).status_code == 401
    assert client.get("/api/v1/products", headers={"Authorization": "Basic abc"}).status_code == 401
    store.revoke_token("pos-sync")
    assert client.get("/api/v1/products", headers=headers).status_code == 401


def test_session_cookie_flags_and_security_headers(client: Any, auth: Any) -> None:
    response = auth.login()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/products/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_secret_key_is_created_once_with_private_mode(tmp_path: Any) -> None:
    from admin_web import create_app

    a = create_app({"DATA_DIR": str(tmp_path), "DEVICE_URL": "http://127.0.0.1:9"})
    b = create_app({"DATA_DIR": str(tmp_path), "DEVICE_URL": "http://127.0.0.1:9"})
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert a.config["SECRET_KEY"] == b.config["SECRET_KEY"] and len(a.config["SECRET_KEY"]) >= 32
    assert (tmp_path / "accounts.json").stat().st_mode & 0o777 == 0o600


def test_request_body_limit(app: Any, client: Any, auth: Any, csrf: Any) -> None:
    auth.login()
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/products/import", data={"csrf_token": csrf(), "file": (io.BytesIO(b"x" * 4096), "big.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 413


@pytest.mark.parametrize("password", ["short", " leading space x", "line\nbreak12345"])
def test_weak_passwords_are_refused(tmp_path: Any, password: str) -> None:
    from admin_web.accounts import AccountStore
    from admin_web.errors import ValidationError

    with pytest.raises(ValidationError, match="password"):
        AccountStore(tmp_path).set_password("admin", password)
