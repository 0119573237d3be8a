"""Errors of the terminal linkage. Each maps to one HTTP status in the API."""

from __future__ import annotations

from smartshelf.core.errors import SmartShelfError


class TerminalError(SmartShelfError):
    """Root of the terminal linkage's errors."""


class AuthError(TerminalError, PermissionError):
    """The request is not from a paired, active terminal (HTTP 401): bad, missing or stale signature,
    unknown or revoked terminal. Nothing is changed."""


class EventError(TerminalError, ValueError):
    """The event body is not a valid event or names an unknown product (HTTP 422). Nothing is changed."""


class KeyFileError(TerminalError, OSError):
    """The terminal key file is missing, unreadable or does not open the stored secrets."""
