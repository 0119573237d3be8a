"""Errors of the admin domain (repository, validation, device calls)."""

from __future__ import annotations

from smartshelf.core.errors import SmartShelfError


class ValidationError(SmartShelfError, ValueError):
    """Input failed validation; ``field`` names the offending field (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(SmartShelfError, LookupError):
    """The named product/slot does not exist (HTTP 404)."""


class Conflict(SmartShelfError, ValueError):
    """The change clashes with existing data, e.g. a duplicate sku (HTTP 409)."""


class DeviceUnavailable(SmartShelfError, ConnectionError):
    """The shelf device's loopback control endpoint did not answer."""
