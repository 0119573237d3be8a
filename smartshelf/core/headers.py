"""One parser per HTTP header we read, shared by the admin app and the device's loopback server.

Each function takes the raw header value (``None`` when absent) and returns the parsed value or
raises :class:`HeaderError` with a one-line message naming the header and what is wrong. Values are
matched whole (``re.fullmatch``) and bounded in length, so no header can reach a view half-parsed.
"""

from __future__ import annotations

import hmac
import re

from smartshelf.core.errors import SmartShelfError

MAX_HEADER = 1024
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/=-]{1,256}")
_MEDIA = re.compile(r"([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)\s*(?:;.*)?", re.IGNORECASE | re.DOTALL)
_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})(?::([0-9]{1,5}))?")
_DIGITS = re.compile(r"[0-9]{1,19}")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class HeaderError(SmartShelfError, ValueError):
    """A request header is malformed; the message names it."""


def _value(name: str, raw: str | None, *, required: bool = True) -> str | None:
    if raw is None or raw.strip(" \t") == "":
        if required:
            raise HeaderError(f"missing {name} header")
        return None
    if len(raw) > MAX_HEADER:
        raise HeaderError(f"{name} header is longer than {MAX_HEADER} characters")
    return raw.strip(" \t")  # only the blanks HTTP allows around a value; a line break is an error


def parse_bearer(raw: str | None) -> str:
    """``Authorization: Bearer <token>`` -> the token."""
    value = _value("Authorization", raw)
    assert value is not None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        raise HeaderError("Authorization header must be 'Bearer <token>'")
    token = token.strip(" \t")
    if not _TOKEN68.fullmatch(token):
        raise HeaderError("Authorization header's token is empty or has characters a token cannot have")
    return token


def parse_media_type(raw: str | None) -> str | None:
    """``Content-Type`` -> the lower-case media type without parameters (None when absent)."""
    value = _value("Content-Type", raw, required=False)
    if value is None:
        return None
    match = _MEDIA.fullmatch(value)
    if not match:
        raise HeaderError(f"Content-Type header {value[:60]!r} is not a media type")
    return match.group(1).lower()


def require_json(raw: str | None) -> None:
    """A body must be sent as ``Content-Type: application/json`` (a browser cannot send that cross-site
    without a CORS preflight, which nothing here answers)."""
    if parse_media_type(raw) != "application/json":
        raise HeaderError("Content-Type must be application/json")


def parse_host(raw: str | None) -> tuple[str, int | None]:
    """``Host`` -> (lower-case host name, port or None)."""
    value = _value("Host", raw)
    assert value is not None
    match = _HOST.fullmatch(value)
    if not match:
        raise HeaderError(f"Host header {value[:60]!r} is not host[:port]")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise HeaderError(f"Host header port {port} is out of range")
    return match.group(1).lower(), port


def check_host(raw: str | None, *, allowed_hosts: frozenset[str], port: int) -> None:
    """Refuse a Host that is not one of ``allowed_hosts`` on ``port`` (DNS rebinding)."""
    host, sent_port = parse_host(raw)
    if host not in allowed_hosts or (sent_port if sent_port is not None else 80) != port:
        raise HeaderError(f"Host header {raw[:60]!r} is not this device's loopback address")  # type: ignore[index]


def parse_content_length(raw: str | None, *, limit: int) -> int:
    """``Content-Length`` -> bytes (0 when absent); over ``limit`` or not digits is an error."""
    value = _value("Content-Length", raw, required=False)
    if value is None:
        return 0
    if not _DIGITS.fullmatch(value):
        raise HeaderError(f"Content-Length header {value[:40]!r} is not a whole number")
    length = int(value)
    if length > limit:
        raise HeaderError(f"Content-Length {length} is over the limit of {limit} bytes")
    return length


def parse_identifier(name: str, raw: str | None) -> str:
    """An id header (``X-Terminal-Id``): 1-128 of ``A-Z a-z 0-9 _ . : -``, starting alphanumeric."""
    value = _value(name, raw)
    assert value is not None
    if not _IDENT.fullmatch(value):
        raise HeaderError(f"{name} header {value[:60]!r} must be 1-128 of A-Z a-z 0-9 _ . : -")
    return value


def check_secret(name: str, raw: str | None, expected: str) -> None:
    """A shared-secret header, compared in constant time."""
    value = _value(name, raw)
    assert value is not None
    if not hmac.compare_digest(value.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise HeaderError(f"{name} header does not match the shared secret")
