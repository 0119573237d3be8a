"""Property-based fuzzing of every HTTP surface with Hypothesis.

Surfaces: the admin pages (every route and method of the Flask app, as staff with a valid CSRF
token and as an anonymous visitor), the JSON API (with full, default and bad tokens), the generic
terminal events (correctly signed, so bodies reach the parser, and badly signed), the Stripe webhook
(signed with the terminal's webhook secret) and the device's loopback server (a real
:class:`~device.display.kiosk.KioskServer` on a loopback port).

Invariants on every generated request:
* no 5xx, ever;
* a refused request (4xx, or a login redirect for an anonymous visitor) changes no file in the data
  dir, and on the device runs no command.

``SMARTSHELF_FUZZ_EXAMPLES`` sets the number of requests per test (CI: 40; docs/security.md has the
long run).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import string
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from admin_web.terminals import signing
from tests.security.helpers import (
    FUZZ_EXAMPLES,
    FUZZ_SETTINGS,
    csrf_of,
    login,
    make_app,
    record,
    snapshot,
    start_device_server,
)

#: Route-by-route surfaces (admin pages, JSON API) fuzz every route and method with this many requests each.
PER_ROUTE = settings(FUZZ_SETTINGS, max_examples=max(4, FUZZ_EXAMPLES // 4))


def one_line(value: str) -> str:
    """A header value a client can send (no line breaks; latin-1)."""
    return value.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")

# -- strategies ---------------------------------------------------------------------------------------------
NASTY = ["", "A", "A1", "0", "-1", "9" * 30, "1e309", "null", "true", "../../etc/passwd", "%00", "\x00", "\u202e",
         "=cmd|' /C calc'!A0", "<script>alert(1)</script>", "' OR 1=1 --", "A" * 300, "stripe:pi_1", " ", "\n",
         "2026-11-26T10:00:00Z", "0001-01-01T00:00:00+01:00", "\ud7ff", "😀", "NaN", "{}", "[]"]
text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                      st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(text, st.sampled_from(
        ["sku", "name", "price", "stock", "currency", "slot", "low_stock", "gender", "item_id", "brand",
         "category", "image", "id", "type", "lines", "qty", "amount", "time", "add", "paused", "seconds"])),
        inner, max_size=6)), max_leaves=12)


@st.composite
def nested(draw: Any) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=3000))
    opener = draw(st.sampled_from(["[", '{"a":']))
    closer = "]" if opener == "[" else "}"
    return (opener * depth + "1" + closer * depth).encode()


json_body = st.one_of(json_value.map(lambda v: json.dumps(v).encode()), nested(), st.binary(max_size=200),
                      st.sampled_from([b"", b"{", b'{"a": NaN}', b'{"stock": 1e400}', b"\xff\xfe", b"[]"]))
form = st.dictionaries(st.sampled_from(["sku", "name", "price", "currency", "stock", "slot", "pin", "label",
                                        "quantity", "q", "operator", "paused", "provider", "webhook_secret",
                                        "username", "password", "next", "current_password", "new_password",
                                        "confirm_password", "scopes", "brand", "gender", "low_stock",
                                        "remove_image", "item_id", "category"]) | text, text, max_size=8)


def _path_for(rule: Any, values: dict[str, str]) -> str:
    return rule.build({k: quote(v, safe="") or "x" for k, v in values.items()}, append_unknown=False)[1]


def _rules(app: Any, *, api: bool) -> list[tuple[Any, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/v1/terminal/"):
            continue
        if rule.rule.startswith("/api/") != api:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule, method))
    return out


def _still_logged_in(app: Any, client: Any) -> None:
    with client.session_transaction() as sess:
        sid = sess.get("sid")
    if not sid or app.extensions["smartshelf.accounts"].session_user(sid) is None:
        # the fuzzed /login may have run the limiter up for this address and account: the harness's own
        # re-login is not part of the attack
        app.extensions["smartshelf.login_limiter"].succeeded("user:admin", "addr:127.0.0.1")
        assert login(client).status_code == 302


def _seed(app: Any) -> None:
    repo = app.extensions["smartshelf.repository"]
    for sku, slot in (("A", "A1"), ("B", None)):
        repo.create_product({"sku": sku, "name": f"Product {sku}", "price": 250, "stock": 3, "slot": slot})
    repo.set_slot({"slot": "A1", "pin": 5, "label": "top"})


# -- admin pages -----------------------------------------------------------------------------------------------
def test_fuzz_admin_pages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = make_app(data)
    _seed(app)
    staff, anonymous = app.test_client(), app.test_client()
    rules = _rules(app, api=False)
    assert len(rules) >= 25

    @PER_ROUTE
    @given(as_staff=st.booleans(), with_csrf=st.booleans(),
           values=st.dictionaries(st.sampled_from(["sku", "slot", "name", "terminal_id", "session_id"]),
                                  st.one_of(st.sampled_from(["A", "B", "A1", "x.png", "interactions"]), text)),
           query=st.dictionaries(st.sampled_from(["q", "next", "page", "sku", "x"]), text, max_size=3),
           fields=form)
    def run(rule: Any, method: str, as_staff: bool, with_csrf: bool, values: dict[str, str],
            query: dict[str, str], fields: dict[str, str]) -> None:
        client = staff if as_staff else anonymous
        if as_staff:
            _still_logged_in(app, client)
        args = {a: values.get(a, "A") for a in rule.arguments}
        path = _path_for(rule, args)
        body = dict(fields)
        if with_csrf and method != "GET" and as_staff:
            body["csrf_token"] = csrf_of(client)
        before = snapshot(data)
        response = client.open(path, method=method, query_string=query,
                               data=body if method != "GET" else None)
        record("admin pages", f"{method} {rule.rule}", response.status_code)
        assert response.status_code < 500, (method, path, body, response.data[:300])
        refused = response.status_code >= 400 or (
            not as_staff and response.status_code == 302 and "/login" in response.headers.get("Location", ""))
        if refused:
            assert snapshot(data) == before, (method, path, body, response.status_code)

    for rule, method in rules:
        run(rule, method)


# -- JSON API --------------------------------------------------------------------------------------------------------
def test_fuzz_json_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = make_app(data)
    _seed(app)
    accounts = app.extensions["smartshelf.accounts"]
    tokens = {
        "full": accounts.create_token("full", ["products:read", "products:write", "stock:write", "settings:read",
                                              "settings:write"]),
        "default": accounts.create_token("pos"),
        "none": None, "garbage": "ss_not-a-token", "malformed": "\x00\u202e",
    }
    client = app.test_client()
    rules = _rules(app, api=True)

    @PER_ROUTE
    @given(who=st.sampled_from(sorted(tokens)), sku=st.one_of(
        st.sampled_from(["A", "B", "NEW-1"]), text), body=json_body,
        content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                      "application/x-www-form-urlencoded", None, "application/json\x00"]),
        query=st.dictionaries(st.sampled_from(["page", "per_page", "q"]), text, max_size=3))
    def run(rule: Any, method: str, who: str, sku: str, body: bytes, content_type: str | None,
            query: dict[str, str]) -> None:
        path = _path_for(rule, {a: sku for a in rule.arguments})
        headers = {}
        if tokens[who] is not None:
            headers["Authorization"] = one_line(f"Bearer {tokens[who]}")
        if content_type is not None:
            headers["Content-Type"] = content_type
        before = snapshot(data)
        response = client.open(path, method=method, headers=headers, query_string=query,
                               data=body if method in ("POST", "PUT") else None)
        record("JSON API", f"{method} {rule.rule}", response.status_code)
        assert response.status_code < 500, (method, path, body[:200], response.data[:300])
        if response.status_code >= 400:
            assert snapshot(data) == before
            assert response.is_json and set(response.get_json()) >= {"error", "message"}

    for rule, method in rules:
        run(rule, method)


# -- generic terminal events ------------------------------------------------------------------------------------------
@st.composite
def terminal_event(draw: Any) -> bytes:
    """A valid sale or refund with 0-2 fields replaced by hostile values (or, 1 in 4, any JSON body)."""
    if draw(st.integers(0, 3)) == 3:  # (Hypothesis favours small values: the rare branch is the large one)
        return draw(json_body)
    doc: dict[str, Any] = {
        "id": f"e-{draw(st.integers(0, 10**6))}", "type": draw(st.sampled_from(["sale", "refund"])),
        "lines": [{"sku": draw(st.sampled_from(["A", "B"])), "qty": draw(st.integers(1, 3))}],
        "amount": draw(st.integers(0, 10**4)), "currency": "INR", "time": "2026-11-26T10:00:00Z",
    }
    hostile = {
        "id": st.one_of(st.sampled_from(["stripe:pi_1", "x" * 200, "a\n", ""]), text),
        "type": text,
        "lines": st.one_of(st.lists(st.fixed_dictionaries({"sku": st.one_of(st.sampled_from(["A", "Z"]), text),
                                                           "qty": st.one_of(st.integers(-5, 20_000), json_leaf)}),
                                    max_size=3), json_value),
        "amount": st.one_of(st.integers(-(10**15), 10**15), json_leaf),
        "currency": st.one_of(st.sampled_from(["eur", "EURO"]), text),
        "time": st.one_of(st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                           "2026-02-30T00:00:00", "1970-01-01T00:00:00Z"]), text),
    }
    for key in draw(st.sets(st.sampled_from(sorted(hostile)), max_size=2)):
        doc[key] = draw(hostile[key])
    if draw(st.integers(0, 5)) == 5:
        del doc[draw(st.sampled_from(sorted(doc)))]
    if draw(st.integers(0, 5)) == 5:
        doc[draw(text)] = draw(json_leaf)
    return json.dumps(doc).encode()


def test_fuzz_terminal_events(tmp_path: Path) -> None:
    from admin_web.terminals.views import get_ledger

    data = tmp_path / "data"
    app = make_app(data)
    _seed(app)
    with app.app_context():
        till = get_ledger().pair("Till")
    client = app.test_client()

    @FUZZ_SETTINGS
    @given(body=terminal_event(), how=st.sampled_from(["good", "good", "good", "wrong secret", "garbage", "none"]),
           terminal=st.one_of(st.just(till.terminal_id), st.just(till.terminal_id), text), skew=st.integers(-(10**6), 10**6),
           header=text)
    def run(body: bytes, how: str, terminal: str, skew: int, header: str) -> None:
        now = int(time.time())
        headers = {"Content-Type": "application/json"}
        headers["X-Terminal-Id"] = one_line(terminal)
        if how == "good":
            headers["X-Signature"] = signing.sign(till.secret, now + (skew if skew % 7 == 0 else 0), body)
        elif how == "wrong secret":
            headers["X-Signature"] = signing.sign("wrong", now, body)
        elif how == "garbage":
            headers["X-Signature"] = one_line(header)
        before = snapshot(data)
        response = client.post("/api/v1/terminal/events", data=body, headers=headers)
        record("terminal events", "POST /api/v1/terminal/events", response.status_code)
        assert response.status_code < 500, (body[:200], headers, response.data[:300])
        if response.status_code >= 400 or response.get_json().get("status") != "applied":
            assert snapshot(data) == before, (body[:200], response.status_code, response.data[:200])

    run()


# -- Stripe webhook --------------------------------------------------------------------------------------------------
def _stripe_header(secret: str, payload: bytes, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@st.composite
def stripe_event(draw: Any) -> bytes:
    if draw(st.integers(0, 4)) == 4:
        return draw(json_body)
    kind = draw(st.one_of(st.sampled_from(["payment_intent.succeeded", "charge.refunded", "customer.created"]), text))
    lines = draw(st.one_of(st.just('[{"sku": "A", "qty": 1}]'), json_value.map(json.dumps), text, nested().map(bytes.decode)))
    obj = {"id": draw(st.one_of(st.just("pi_1"), text)), "amount": draw(st.one_of(st.integers(0, 10**6), json_leaf)),
           "amount_received": draw(st.one_of(st.integers(-10, 10**13), json_leaf)),
           "amount_refunded": draw(st.one_of(st.integers(0, 10**6), json_leaf)),
           "refunded": draw(json_leaf), "currency": draw(st.one_of(st.just("eur"), json_leaf)),
           "created": draw(st.one_of(st.integers(-(10**15), 10**15), st.just(1764150000), json_leaf)),
           "metadata": draw(st.one_of(st.fixed_dictionaries({"lines": st.just(lines)}), json_value))}
    data = draw(st.one_of(st.just({"object": obj}), json_value))
    return json.dumps({"id": draw(st.one_of(st.just("evt_1"), text)), "type": kind, "data": data,
                       "created": 1764150000}).encode()


def test_fuzz_stripe_webhook(tmp_path: Path) -> None:
    from admin_web.terminals.views import get_ledger

    data = tmp_path / "data"
    app = make_app(data)
    _seed(app)
    secret = "whsec_fuzz0123456789"
    with app.app_context():
        terminal = get_ledger().pair("Stripe", provider="stripe", secret=secret)
    client = app.test_client()

    @FUZZ_SETTINGS
    @given(body=stripe_event(), signed=st.sampled_from(["good", "good", "good", "bad", "garbage"]), header=text)
    def run(body: bytes, signed: str, header: str) -> None:
        if signed == "good":
            sig = _stripe_header(secret, body, int(time.time()))
        elif signed == "bad":
            sig = _stripe_header("whsec_other", body, int(time.time()))
        else:
            sig = one_line(header)
        before = snapshot(data)
        response = client.post(f"/api/v1/terminal/stripe/{terminal.terminal_id}", data=body,
                               headers={"Content-Type": "application/json", "Stripe-Signature": sig})
        record("Stripe webhook", "POST /api/v1/terminal/stripe/<terminal_id>", response.status_code)
        assert response.status_code < 500, (body[:300], sig, response.data[:300])
        if response.status_code >= 400 or response.get_json().get("status") != "applied":
            assert snapshot(data) == before

    run()


# -- the device's loopback server ------------------------------------------------------------------------------------
def test_fuzz_device_loopback(tmp_path: Path) -> None:
    server = start_device_server(tmp_path, name="fuzz", heartbeat_s=0.05, status=lambda: {"camera": {"state": "ok"}})
    commands, secret = server.commands, server.secret_value
    port = server.httpd.server_address[1]
    paths = ["/", "/index.html", "/state", "/status", "/static/kiosk.js", "/images/a.png", "/control/pause",
             "/control/identify", "/control/reload", "/control/explode", "/control/", "/nope"]
    header_text = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=40)

    @FUZZ_SETTINGS
    @given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
           path=st.one_of(st.sampled_from(paths), st.sampled_from(paths).map(lambda p: p + "?x=1"),
                          header_text.map(lambda t: "/" + quote(t))),
           # about half the requests are well-addressed and authorised, so they reach the commands
           host=st.one_of(st.sampled_from([f"127.0.0.1:{port}", f"localhost:{port}"]),
                          st.sampled_from(["evil.example", f"evil.example:{port}", "127.0.0.1", "", f"[::1]:{port}"]),
                          header_text),
           auth=st.sampled_from(["good", "good", "none", "bad"]),
           content_type=st.one_of(st.just("application/json"),
                                  st.sampled_from(["text/plain", "", "application/json;x", "application/json; charset=utf-8"]),
                                  header_text),
           body=json_body, length=st.one_of(st.none(), st.sampled_from(["-1", "abc", "99999999999", "1"])),
           # half the examples: a well-formed, authorised control POST whose body is hostile
           command=st.one_of(st.none(), st.tuples(
               st.sampled_from(["pause", "identify", "reload"]),
               st.dictionaries(st.one_of(st.sampled_from(["slot", "seconds", "paused"]), text), json_leaf, max_size=3))))
    def run(method: str, path: str, host: str, auth: str, content_type: str, body: bytes, length: str | None,
            command: tuple[str, dict[str, Any]] | None) -> None:
        if command is not None:
            method, path, host, auth, content_type, length = (
                "POST", f"/control/{command[0]}", f"127.0.0.1:{port}", "good", "application/json", None)
            body = json.dumps(command[1]).encode()
        if path.startswith("/events"):
            return  # the SSE stream is a long poll; covered by tests/device/test_kiosk.py
        done = len(commands)
        headers = {"Host": host, "Content-Type": content_type, "Content-Length": length or str(len(body))}
        if auth == "good":
            headers["X-Smartshelf-Control"] = secret
        elif auth == "bad":
            headers["X-Smartshelf-Control"] = "0" * 64
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.endheaders(body if method not in ("GET", "HEAD") and length is None else b"")
            response = conn.getresponse()
            status = response.status
            response.read()
        finally:
            conn.close()
        known = path.split("?")[0]
        record("device loopback", f"{method} {known if known in paths else '/<random>'}", status)
        assert status < 500, (method, path, headers)
        if status >= 400:
            assert len(commands) == done, (method, path, headers, status)

    try:
        run()
    finally:
        server.close()
