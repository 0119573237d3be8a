"""The terminal API through the Flask app: signatures, replay window, terminals, duplicates,
whole-or-nothing events, refunds, negative stock alert on the page, Stripe webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from admin_web.terminals import signing
from admin_web.terminals.views import get_ledger

URL = "/api/v1/terminal/events"


@pytest.fixture
def shop(app: Any) -> dict[str, Any]:
    repo = app.extensions["smartshelf.repository"]
    for sku, stock in (("A", 5), ("B", 1)):
        repo.create_product({"sku": sku, "name": f"Product {sku}", "price": 250, "currency": "EUR", "stock": stock})
    with app.app_context():
        pairing = get_ledger().pair("Till 1")
    return {"id": pairing.terminal_id, "secret": pairing.secret, "app": app}


def event(eid: str = "e-1", kind: str = "sale", lines: list[tuple[str, int]] | None = None) -> bytes:
    lines = [("A", 2)] if lines is None else lines
    return json.dumps({"id": eid, "type": kind, "lines": [{"sku": s, "qty": q} for s, q in lines],
                       "amount": 500, "currency": "EUR", "time": "2026-11-26T10:00:00Z"}).encode()


def send(client: Any, shop: dict[str, Any], body: bytes, *, t: int | None = None, secret: str | None = None,
         terminal: str | None = None, header: str | None = "sign") -> Any:
    headers = {"Content-Type": "application/json", "X-Terminal-Id": terminal if terminal is not None else shop["id"]}
    if header == "sign":
        headers["X-Signature"] = signing.sign(secret or shop["secret"], int(time.time()) if t is None else t, body)
    elif header is not None:
        headers["X-Signature"] = header
    return client.post(URL, data=body, headers=headers)


def state(app: Any) -> tuple[dict[str, int], list[str]]:
    with app.app_context():
        ledger = get_ledger()
        return {p["sku"]: p["stock"] for p in ledger.products()}, [s["event_id"] for s in ledger.sales()]


def test_signed_sale_applies_then_duplicate(client: Any, shop: dict[str, Any]) -> None:
    r = send(client, shop, event())
    assert r.status_code == 200 and r.get_json() == {"status": "applied"}
    r = send(client, shop, event())
    assert r.status_code == 200 and r.get_json() == {"status": "duplicate"}
    assert state(shop["app"]) == ({"A": 3, "B": 1}, ["e-1"])


@pytest.mark.parametrize("how", ["wrong secret", "missing", "malformed", "tampered body", "other timestamp"])
def test_bad_signature_is_401_and_changes_nothing(client: Any, shop: dict[str, Any], how: str) -> None:
    body = event()
    now = int(time.time())
    if how == "wrong secret":
        r = send(client, shop, body, secret="not-the-secret")
    elif how == "missing":
        r = send(client, shop, body, header=None)
    elif how == "malformed":
        r = send(client, shop, body, header="v1=deadbeef;t=now")
    elif how == "tampered body":
        r = send(client, shop, body, header=signing.sign(shop["secret"], now, event(lines=[("A", 1)])))
    else:
        good = signing.compute_signature(shop["secret"], now, body)
        r = send(client, shop, body, header=f"t={now - 1},v1={good}")
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    assert state(shop["app"]) == ({"A": 5, "B": 1}, [])


@pytest.mark.parametrize("skew", [-301, 301, -3600])
@pytest.mark.parametrize("synced", [True, False])
def test_replay_window(client: Any, shop: dict[str, Any], skew: int, synced: bool) -> None:
    get_ledger_of(shop["app"]).clock_synced = lambda: synced
    r = send(client, shop, event(), t=int(time.time()) + skew)
    message = r.get_json()["message"]
    assert r.status_code == 401
    if synced:
        assert "check the terminal's clock" in message
    else:
        assert "the shelf's clock is not set" in message and "terminal's clock" not in message
    assert state(shop["app"]) == ({"A": 5, "B": 1}, [])


def test_unknown_and_revoked_terminals(client: Any, shop: dict[str, Any]) -> None:
    r = send(client, shop, event(), terminal="term_doesnotexist")
    assert r.status_code == 401
    r = send(client, shop, event(), terminal="")
    assert r.status_code == 401
    with shop["app"].app_context():
        get_ledger().revoke(shop["id"])
    r = send(client, shop, event())
    assert r.status_code == 401 and "revoked" in r.get_json()["message"]
    assert state(shop["app"]) == ({"A": 5, "B": 1}, [])


def test_bad_body_and_unknown_sku_are_422_and_nothing_applies(client: Any, shop: dict[str, Any]) -> None:
    r = send(client, shop, b"{broken")
    assert r.status_code == 422
    r = send(client, shop, event("e-2", lines=[("A", 1), ("NOPE", 1)]))  # one bad line: nothing applied
    assert r.status_code == 422 and "NOPE" in r.get_json()["message"]
    assert state(shop["app"]) == ({"A": 5, "B": 1}, [])
    r = send(client, shop, event("e-2", lines=[("A", 1), ("B", 1)]))  # fixed event with the same id applies
    assert r.get_json() == {"status": "applied"}
    assert state(shop["app"]) == ({"A": 4, "B": 0}, ["e-2"])


def test_refund_restores_stock(client: Any, shop: dict[str, Any]) -> None:
    send(client, shop, event("s-1", lines=[("A", 3)]))
    r = send(client, shop, event("r-1", kind="refund", lines=[("A", 2)]))
    assert r.get_json() == {"status": "applied"}
    assert state(shop["app"]) == ({"A": 4, "B": 1}, ["s-1", "r-1"])


def test_sale_beyond_stock_is_recorded_and_alert_is_visible(client: Any, shop: dict[str, Any], auth: Any) -> None:
    r = send(client, shop, event("s-big", lines=[("B", 4)]))
    assert r.status_code == 200 and r.get_json() == {"status": "applied", "stock_alert": ["B"]}
    assert state(shop["app"])[0]["B"] == -3
    auth.login()
    page = client.get("/terminals/")
    assert page.status_code == 200
    assert b'id="stock-discrepancy"' in page.data and b"<b>B</b>" in page.data
    dashboard = client.get("/")
    assert b"stock-discrepancy" in dashboard.data and b"Sales after the shelf showed a product" in dashboard.data


def test_api_needs_no_login_but_the_page_does(client: Any, shop: dict[str, Any]) -> None:
    assert client.get("/terminals/").status_code in (302, 401)
    assert send(client, shop, event()).status_code == 200


# -- Stripe ---------------------------------------------------------------------------------------
WHSEC = "whsec_testsecret123"


def stripe_sign(payload: bytes, secret: str, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()


def pi_event(pi: str = "pi_1", lines: list[dict[str, Any]] | None = None) -> bytes:
    lines = lines or [{"sku": "A", "qty": 1}]
    return json.dumps({"id": "evt_" + pi, "object": "event", "type": "payment_intent.succeeded", "created": 1_790_000_000,
                       "data": {"object": {"id": pi, "object": "payment_intent", "amount": 250, "amount_received": 250,
                                           "currency": "eur", "created": 1_790_000_000,
                                           "metadata": {"lines": json.dumps(lines)}}}}).encode()


def test_stripe_webhook_good_and_bad_signature(client: Any, shop: dict[str, Any]) -> None:
    with shop["app"].app_context():
        stripe_id = get_ledger().pair("Stripe reader", provider="stripe", secret=WHSEC).terminal_id
    url = f"/api/v1/terminal/stripe/{stripe_id}"
    body = pi_event()
    r = client.post(url, data=body, headers={"Stripe-Signature": stripe_sign(body, "whsec_wrong")})
    assert r.status_code == 401
    assert state(shop["app"]) == ({"A": 5, "B": 1}, [])
    r = client.post(url, data=body, headers={"Stripe-Signature": stripe_sign(body, WHSEC)})
    assert r.status_code == 200 and r.get_json() == {"status": "applied"}
    r = client.post(url, data=body, headers={"Stripe-Signature": stripe_sign(body, WHSEC)})
    assert r.get_json() == {"status": "duplicate"}
    assert state(shop["app"]) == ({"A": 4, "B": 1}, ["stripe:pi_1"])
    # the generic endpoint does not accept a Stripe terminal, nor the Stripe route a generic one
    assert send(client, shop, event(), terminal=stripe_id, secret=WHSEC).status_code == 401
    r = client.post(f"/api/v1/terminal/stripe/{shop['id']}", data=body,
                    headers={"Stripe-Signature": stripe_sign(body, shop["secret"])})
    assert r.status_code == 401


def test_secrets_are_not_stored_in_clear(shop: dict[str, Any], data_dir: Path) -> None:
    raw = (data_dir / "store.json").read_text()
    assert shop["secret"] not in raw and shop["id"] in raw
    assert (data_dir / "terminal.key").stat().st_mode & 0o777 == 0o600


def get_ledger_of(app: Any) -> Any:
    from admin_web.terminals.views import EXTENSION

    return app.extensions[EXTENSION]
