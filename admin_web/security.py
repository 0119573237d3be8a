"""Authentication, CSRF and login rate limiting for the admin app.

Default deny: :func:`install` adds a ``before_request`` hook that requires a logged-in session or a
valid ``Authorization: Bearer <token>`` for every endpoint, except the static files and views
marked with :func:`public`. Browsers get a redirect to the login page, ``/api/`` clients a JSON 401.

CSRF: every state-changing request (POST/PUT/PATCH/DELETE) that is authenticated by the session
cookie must carry the session's token (form field ``csrf_token`` or header ``X-CSRF-Token``);
requests authenticated by a bearer token carry no ambient credentials and need none. Views marked
:func:`csrf_exempt` (signed terminal webhooks) skip the check.

Sessions: the signed cookie carries a server-side session id (``sid``), checked against
accounts.json on every request; a revoked or expired record logs the browser out on its next
request. The cookie is not re-issued on each response (``SESSION_REFRESH_EACH_REQUEST = False``) and
the record has an absolute expiry (``PERMANENT_SESSION_LIFETIME``), so nothing slides.

Tokens: a bearer token reaches only the views marked :func:`requires_scope` with one of its scopes
(the JSON API); everything else answers 403 to a token, whatever its scopes.

Login limiter: per account and per client address, reserved atomically before the password check
(so parallel guesses cannot overtake the count), with exponential backoff after ``max_failures``
rather than a lockout: the owner can always try again after a short, bounded wait.

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


def requires_scope(scope: str) -> Callable[[F], F]:
    """Let API tokens holding ``scope`` call this view (sessions of staff always may)."""
    from admin_web.accounts import SCOPES

    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")

    def mark(view: F) -> F:
        view._smartshelf_scope = scope  # type: ignore[attr-defined]
        return view

    return mark


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
    """Failed logins per key (``user:<name>``, ``addr:<ip>``) with exponential backoff.

    Up to ``max_failures`` failures in ``window_s`` seconds cost nothing; each further one doubles
    the wait before the next try (``base_delay_s``, 2x, 4x ... at most ``max_delay_s``), counted
    from the last failure. :meth:`begin` checks every key and reserves a failure on each in one
    locked step, before the (slow) password check, so N parallel guesses are N counted failures;
    :meth:`succeeded` takes the reservation back and clears the keys.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, *, base_delay_s: float = 1.0,
                 max_delay_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def _wait(self, key: str, now: float) -> float:
        q = self._prune(key, now)
        over = len(q) - self.max_failures
        if over < 0:
            if not q:
                self._failures.pop(key, None)
            return 0.0
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(over, 30))
        return max(0.0, q[-1] + delay - now)

    def retry_after(self, *keys: str) -> int:
        """Seconds until another try is allowed for all ``keys`` (0 = allowed now)."""
        with self._lock:
            now = self.clock()
            wait = max((self._wait(k, now) for k in keys), default=0.0)
        return 0 if wait <= 0 else max(1, int(wait + 0.999))

    def begin(self, *keys: str) -> int:
        """Atomically: the wait (seconds, > 0: refused, nothing reserved) or 0 and one failure
        reserved on every key (call :meth:`succeeded` on a right password)."""
        with self._lock:
            now = self.clock()
            wait = max((self._wait(k, now) for k in keys), default=0.0)
            if wait > 0:
                return max(1, int(wait + 0.999))
            for key in keys:
                self._prune(key, now).append(now)
            self._bound()
            return 0

    def failed(self, *keys: str) -> None:
        with self._lock:
            now = self.clock()
            for key in keys:
                self._prune(key, now).append(now)
            self._bound()

    def _bound(self) -> None:
        while len(self._failures) > 10_000:  # bound memory under a spray of addresses and names
            oldest = min(self._failures, key=lambda k: self._failures[k][-1] if self._failures[k] else 0)
            self._failures.pop(oldest, None)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def _forbidden(message: str) -> Any:
    response = jsonify(error="forbidden", message=message)
    response.status_code = 403
    return response


def _authenticate() -> Any:
    """before_request: resolve the user, enforce login and CSRF. Returns a response to stop."""
    from admin_web.db import get_accounts
    from smartshelf.core.headers import HeaderError, parse_bearer

    g.user = None
    g.session_record = None
    g.token = None
    bearer = False
    view = current_app.view_functions.get(request.endpoint or "")
    if "Authorization" in request.headers:
        try:
            token = parse_bearer(request.headers.get("Authorization"))
        except HeaderError:
            return _deny()
        info = get_accounts().token_info(token)
        if info is None:
            return _deny()
        g.user = f"token:{info['name']}"
        g.token = info
        bearer = True
    elif session.get("sid"):
        record = get_accounts().session_user(session["sid"])
        if record is None:  # revoked, expired or from another data dir: logged out
            session.clear()
        else:
            g.user = str(record["user"])
            g.session_record = record

    is_public = request.endpoint == "static" or getattr(view, "_smartshelf_public", False)
    if request.endpoint is None:  # 404/405 fall through to Flask's handlers, but only after login
        if g.user is None:
            return _deny()
        return None
    if g.user is None and not is_public:
        return _deny()
    if bearer and not is_public:
        scope = getattr(view, "_smartshelf_scope", None)
        if scope is None:
            return _forbidden("API tokens cannot use this page; log in as staff")
        if scope not in g.token["scopes"]:
            return _forbidden(f"this token lacks the scope {scope!r} (it has: {', '.join(g.token['scopes'])})")
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
        int(app.config["LOGIN_MAX_FAILURES"]), float(app.config["LOGIN_WINDOW_S"]),
        base_delay_s=float(app.config.get("LOGIN_BACKOFF_S", 1.0)),
        max_delay_s=float(app.config.get("LOGIN_MAX_BACKOFF_S", 60.0)),
    )
    app.before_request(_authenticate)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user


def login_limiter() -> LoginRateLimiter:
    return current_app.extensions["smartshelf.login_limiter"]
