"""Stripe adapter: signatures computed in the test with Stripe's scheme, event mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from admin_web.terminals.adapters import StripeAdapter, adapter_for
from admin_web.terminals.errors import AuthError, EventError

WHSEC = "whsec_test_0123456789abcdef"


def stripe_header(payload: bytes, secret: str, t: int | None = None) -> str:
    """Stripe's scheme: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>, computed independently."""
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def pi_succeeded(pi: str = "pi_123", lines: object = None) -> bytes:
    lines = [{"sku": "A", "qty": 2}] if lines is None else lines
    return json.dumps({
        "id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "created": 1_790_000_000,
        "data": {"object": {"id": pi, "object": "payment_intent", "amount": 500, "amount_received": 500,
                            "currency": "eur", "created": 1_790_000_000, "metadata": {"lines": json.dumps(lines)}}},
    }).encode()


def charge_refunded(evt: str = "evt_2", *, full: bool = True, refund_lines: object = None) -> bytes:
    metadata = {"lines": json.dumps([{"sku": "A", "qty": 2}])}
    if refund_lines is not None:
        metadata["refund_lines"] = json.dumps(refund_lines)
    return json.dumps({
        "id": evt, "object": "event", "type": "charge.refunded", "created": 1_790_000_100,
        "data": {"object": {"id": "ch_1", "object": "charge", "amount": 500, "amount_refunded": 500 if full else 250,
                            "refunded": full, "currency": "eur", "created": 1_790_000_000, "metadata": metadata}},
    }).encode()


def read(body: bytes, header: str | None) -> object:
    headers = {} if header is None else {"Stripe-Signature": header}
    return StripeAdapter().read(body=body, headers=headers, secret=WHSEC, now=time.time())


def test_good_signature_gives_a_sale() -> None:
    body = pi_succeeded()
    ev = read(body, stripe_header(body, WHSEC))
    assert ev.id == "stripe:pi_123" and ev.type == "sale" and ev.amount == 500 and ev.currency == "EUR"
    assert [(line.sku, line.qty) for line in ev.lines] == [("A", 2)]


@pytest.mark.parametrize("how", ["wrong secret", "tampered", "missing", "old", "garbage"])
def test_bad_signature_is_refused(how: str) -> None:
    body = pi_succeeded()
    header = {
        "wrong secret": stripe_header(body, "whsec_other"),
        "tampered": stripe_header(body, WHSEC),
        "missing": None,
        "old": stripe_header(body, WHSEC, t=int(time.time()) - 301),
        "garbage": "nonsense",
    }[how]
    if how == "tampered":  # signed the original, sends another payment intent id
        body = body.replace(b"pi_123", b"pi_999")
        assert b"pi_999" in body
    with pytest.raises(AuthError, match="Stripe signature"):
        read(body, header)


def test_full_refund_restores_the_sold_lines_and_partial_needs_refund_lines() -> None:
    body = charge_refunded()
    ev = read(body, stripe_header(body, WHSEC))
    assert ev.type == "refund" and ev.id == "stripe:evt_2" and ev.amount == 500
    body = charge_refunded("evt_3", full=False, refund_lines=[{"sku": "A", "qty": 1}])
    ev = read(body, stripe_header(body, WHSEC))
    assert [(line.sku, line.qty) for line in ev.lines] == [("A", 1)]
    body = charge_refunded("evt_4", full=False)
    with pytest.raises(EventError, match="refund_lines"):
        read(body, stripe_header(body, WHSEC))


def test_other_event_types_are_ignored_and_bad_metadata_is_422() -> None:
    body = json.dumps({"id": "evt_9", "type": "payment_intent.created", "data": {"object": {}}}).encode()
    assert read(body, stripe_header(body, WHSEC)) is None
    body = pi_succeeded(lines="not a list")
    with pytest.raises(EventError):
        read(body, stripe_header(body, WHSEC))


def test_adapter_registry() -> None:
    assert adapter_for("stripe").provider == "stripe" and adapter_for("generic").provider == "generic"
    with pytest.raises(ValueError, match="sumup"):
        adapter_for("sumup")
