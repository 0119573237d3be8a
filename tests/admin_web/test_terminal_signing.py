"""Generic terminal signatures: X-Signature t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from admin_web.terminals import signing
from admin_web.terminals.errors import AuthError

SECRET = "s3cret-value"
BODY = b'{"id":"e1","type":"sale"}'
NOW = 1_800_000_000


def test_signature_matches_an_independent_hmac() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, NOW, BODY) == f"t={NOW},v1={expected}"
    assert signing.verify(f"t={NOW},v1={expected}", BODY, SECRET, now=NOW) == NOW


def test_wrong_secret_body_or_timestamp_fails() -> None:
    header = signing.sign(SECRET, NOW, BODY)
    with pytest.raises(AuthError, match="does not match"):
        signing.verify(header, BODY, "other", now=NOW)
    with pytest.raises(AuthError, match="does not match"):
        signing.verify(header, BODY + b" ", SECRET, now=NOW)
    forged_t = header.replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(AuthError, match="does not match"):
        signing.verify(forged_t, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "v1=00", f"t={NOW}", f"t={NOW},v0=aa",
                                    "t=1,v1=" + "0" * 2000])
def test_missing_or_malformed_header_fails(header: str | None) -> None:
    with pytest.raises(AuthError):
        signing.verify(header, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("skew", [-301, 301, -10_000, 10_000])
def test_replay_window_refuses_old_and_future(skew: int) -> None:
    header = signing.sign(SECRET, NOW + skew, BODY)
    with pytest.raises(AuthError, match="from the server clock"):
        signing.verify(header, BODY, SECRET, now=NOW)


def test_outside_the_window_with_an_unset_shelf_clock_blames_the_shelf() -> None:
    header = signing.sign(SECRET, NOW + 10_000, BODY)
    with pytest.raises(AuthError, match="the shelf's clock is not set") as caught:
        signing.verify(header, BODY, SECRET, now=NOW, clock_synced=False)
    assert "terminal's clock" not in str(caught.value)
    signing.verify(signing.sign(SECRET, NOW + 10, BODY), BODY, SECRET, now=NOW, clock_synced=False)  # inside: fine


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_replay_window_edges_accepted(skew: int) -> None:
    assert signing.verify(signing.sign(SECRET, NOW + skew, BODY), BODY, SECRET, now=NOW) == NOW + skew


def test_one_of_several_signatures_may_match() -> None:
    good = signing.compute_signature(SECRET, NOW, BODY)
    assert signing.verify(f"t={NOW},v1={'0' * 64},v1={good}", BODY, SECRET, now=NOW) == NOW
