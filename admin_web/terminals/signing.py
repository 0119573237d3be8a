"""Request signatures for the generic terminal API.

Header ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. Several ``v1``
values may be present (secret rotation); one match is enough. Comparison is constant-time
(:func:`hmac.compare_digest`). A timestamp more than ``tolerance_s`` away from now, in either
direction, is refused, so a captured request cannot be replayed later (duplicates within the window
are caught by the event id).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from admin_web.terminals.errors import AuthError
from smartshelf.core.clock import CLOCK_NOT_SET

SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
_MAX_HEADER = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with the UTF-8 secret."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},{SCHEME}={compute_signature(secret, timestamp, body)}"


def parse_header(header: str | None) -> tuple[int, list[str]]:
    """Split a signature header into (timestamp, [v1 signatures]); AuthError says what is wrong."""
    if not header:
        raise AuthError("missing X-Signature header")
    if len(header) > _MAX_HEADER:
        raise AuthError("X-Signature header is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip(" \t").partition("=")
        if not sep:
            raise AuthError(f"malformed X-Signature element {part.strip()[:40]!r}; expected key=value")
        if key == "t":
            if not _TIMESTAMP.fullmatch(value):
                raise AuthError(f"malformed X-Signature timestamp {value[:40]!r}; expected unix seconds")
            timestamp = int(value)
        elif key == SCHEME:
            if not _HEX_SIGNATURE.fullmatch(value):
                raise AuthError(f"malformed X-Signature {SCHEME} value {value[:20]!r}; expected 64 hex digits")
            signatures.append(value)
    if timestamp is None:
        raise AuthError("X-Signature has no t=<unix seconds> element")
    if not signatures:
        raise AuthError(f"X-Signature has no {SCHEME}=<hex> element")
    return timestamp, signatures


def parse_stripe_header(header: str | None) -> int:
    """Check the shape of a ``Stripe-Signature`` header (``t=<unix seconds>,v1=<hex>[,...]``) before
    the Stripe library sees it; returns the timestamp. The library verifies the signature itself."""
    if not header:
        raise AuthError("missing Stripe-Signature header")
    if len(header) > _MAX_HEADER:
        raise AuthError("Stripe-Signature header is too long")
    timestamp: int | None = None
    for part in header.split(","):
        key, sep, value = part.strip(" \t").partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9]{1,8}", key) or not re.fullmatch(r"[A-Za-z0-9]{1,256}", value):
            raise AuthError(f"malformed Stripe-Signature element {part.strip()[:40]!r}; expected key=value")
        if key == "t":
            if not _TIMESTAMP.fullmatch(value):
                raise AuthError(f"malformed Stripe-Signature timestamp {value[:40]!r}; expected unix seconds")
            timestamp = int(value)
    if timestamp is None:
        raise AuthError("Stripe-Signature has no t=<unix seconds> element")
    return timestamp


def verify(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    clock_synced: bool = True,
) -> int:
    """Check ``header`` against ``body`` and ``secret``; return the signed timestamp or raise AuthError.

    ``clock_synced``: whether this machine's clock has been set since boot; when it has not, a
    timestamp outside the window blames the shelf's clock, not the terminal's.
    """
    timestamp, signatures = parse_header(header)
    expected = compute_signature(secret, timestamp, body)
    # Compare against every candidate without stopping early (constant time per candidate).
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii"))
    if not matched:
        raise AuthError("signature does not match the body and the terminal's secret")
    if abs(now - timestamp) > tolerance_s:
        if not clock_synced:
            raise AuthError(clock_not_set_message(now - timestamp, tolerance_s))
        raise AuthError(
            f"signature timestamp {timestamp} is {now - timestamp:+.0f} s from the server clock "
            f"(allowed: ±{tolerance_s} s); check the terminal's clock"
        )
    return timestamp


def clock_not_set_message(offset_s: float, tolerance_s: int) -> str:
    """The refusal when the signed time is outside the window and the shelf's clock was never set."""
    return (
        f"signature timestamp is {offset_s:+.0f} s from the shelf's clock (allowed: ±{tolerance_s} s), "
        f"and {CLOCK_NOT_SET}: check the shelf's network and time sync (timedatectl), not the terminal"
    )
