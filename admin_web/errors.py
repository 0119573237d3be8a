"""Errors of the admin domain (repository, validation, device calls)."""

from __future__ import annotations

from smartshelf.core.errors import SmartShelfError


class ValidationError(SmartShelfError, ValueError):
    """Input failed validation; ``field`` names the offending field (HTTP 422).

    ``errors`` lists every problem found in the same input (this one first), so that staff see all
    of them at once; :meth:`many` builds one from several.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.errors: list[ValidationError] = [self]

    @classmethod
    def many(cls, errors: list[ValidationError]) -> ValidationError:
        first = errors[0]
        combined = cls(first.field, first.message)
        combined.errors = [e for err in errors for e in err.errors]
        if len(combined.errors) > 1:
            combined.args = ("; ".join(str(e) for e in combined.errors),)
        return combined


class NotFound(SmartShelfError, LookupError):
    """The named product/slot does not exist (HTTP 404)."""


class Conflict(SmartShelfError, ValueError):
    """The change clashes with existing data, e.g. a duplicate sku (HTTP 409)."""


class DeviceUnavailable(SmartShelfError, ConnectionError):
    """The shelf device's loopback control endpoint did not answer.

    ``str(exc)`` is the technical detail (URL, errno: for the log and the CLI); ``plain`` is what
    staff read on the page."""

    def __init__(self, message: str, *, plain: str = "the shelf is not running or not answering") -> None:
        super().__init__(message)
        self.plain = plain
