"""Authentication, CSRF and login rate limiting for the admin app.

Default deny: :func:`install` adds a ``before_request`` hook that requires a logged-in session or a
valid ``Authorization: Bearer <token>`` for every endpoint, except the static files and views
marked with :func:`public`. Browsers get a redirect to the login page, ``/api/`` clients a JSON 401.

CSRF: every state-changing request (POST/PUT/PATCH/DELETE) that is authenticated by the session
cookie must carry the session's token (form field ``csrf_token`` or header ``X-CSRF-Token``);
requests authenticated by a bearer token carry no ambient credentials and need none. Views marked
:func:`csrf_exempt` (signed terminal webhooks) skip the check.

For other areas (e.g. admin_web/terminals)::

    from admin_web.security import login_required, public, csrf_exempt, csrf_token, current_user
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def public(view: F) -> F:
    """Mark a view as reachable without login (the login page, signed webhooks)."""
    view._smartshelf_public = True  # type: ignore[attr-defined]
    return view


def csrf_exempt(view: F) -> F:
    """Mark a view as not needing a CSRF token (it authenticates each request itself)."""
    view._smartshelf_csrf_exempt = True  # type: ignore[attr-defined]
    return view


def current_user() -> str | None:
    """'admin' for a session login, 'token:<name>' for an API token, None when anonymous."""
    return g.get("user")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _deny() -> Any:
    if _wants_json():
        response = jsonify(error="unauthorized", message="log in or send Authorization: Bearer <token>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="smartshelf"'
        return response
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


def login_required(view: F) -> F:
    """Explicit guard for a view (the app already denies by default; this documents intent)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return _deny()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def csrf_token() -> str:
    """The session's CSRF token (created on first use); put it in every form."""
    token = session.get("_csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["_csrf"] = token
    return str(token)


def _csrf_ok() -> bool:
    expected = session.get("_csrf")
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    return bool(expected and sent and hmac.compare_digest(str(expected), str(sent)))


def safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login."""
    if not target:
        return url_for("insight.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("insight.dashboard")
    return target


class LoginRateLimiter:
    """Per client address: at most ``max_failures`` failed logins in ``window_s`` seconds."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str) -> int:
        """Seconds until another try is allowed (0 = allowed now)."""
        with self._lock:
            now = self.clock()
            q = self._prune(key, now)
            if len(q) < self.max_failures:
                if not q:
                    self._failures.pop(key, None)
                return 0
            return max(1, int(q[0] + self.window_s - now + 0.999))

    def failed(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._prune(key, now).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray of addresses
                oldest = min(self._failures, key=lambda k: self._failures[k][-1] if self._failures[k] else 0)
                self._failures.pop(oldest, None)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def _authenticate() -> Any:
    """before_request: resolve the user, enforce login and CSRF. Returns a response to stop."""
    g.user = None
    auth = request.headers.get("Authorization", "")
    bearer = False
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _deny()
        from admin_web.db import get_accounts

        name = get_accounts().verify_token(token.strip())
        if name is None:
            return _deny()
        g.user = f"token:{name}"
        bearer = True
    elif session.get("user"):
        g.user = str(session["user"])

    view = current_app.view_functions.get(request.endpoint or "")
    is_public = request.endpoint == "static" or getattr(view, "_smartshelf_public", False)
    if request.endpoint is None:  # 404/405 fall through to Flask's handlers, but only after login
        if g.user is None:
            return _deny()
        return None
    if g.user is None and not is_public:
        return _deny()
    if (
        request.method not in SAFE_METHODS
        and not bearer
        and not getattr(view, "_smartshelf_csrf_exempt", False)
        and not _csrf_ok()
    ):
        abort(400, description="The form's security token is missing or expired. Reload the page and try again.")
    return None


def install(app: Flask) -> None:
    app.extensions["smartshelf.login_limiter"] = LoginRateLimiter(
        int(app.config["LOGIN_MAX_FAILURES"]), float(app.config["LOGIN_WINDOW_S"])
    )
    app.before_request(_authenticate)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user


def login_limiter() -> LoginRateLimiter:
    return current_app.extensions["smartshelf.login_limiter"]
