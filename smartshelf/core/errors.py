"""Error hierarchy. Every error subclasses SmartShelfError and the matching built-in."""

from __future__ import annotations


class SmartShelfError(Exception):
    """Root of every error raised on purpose by smartshelf."""


class ConfigError(SmartShelfError, ValueError):
    """A configuration file, key or value is invalid; the message names it."""


class HardwareUnavailable(SmartShelfError, RuntimeError):
    """A camera, GPIO backend or other device could not be opened; the message says how to fix it."""


class ModelError(SmartShelfError, ValueError):
    """A model or factor file is missing, corrupt, tampered with or of the wrong version."""


class CameraError(HardwareUnavailable):
    """The camera stopped delivering frames (it may come back: the loop reopens it)."""


class StorageError(SmartShelfError, OSError):
    """A data file could not be read or written."""


class ImageError(SmartShelfError, ValueError):
    """A file given as an image is not a readable image."""


#: What an EPERM from a camera or GPIO library most likely means inside smartshelf-device.service.
SYSCALL_FILTER_HINT = (
    "EPERM (operation not permitted): if the user is in the video and gpio groups, the service's "
    "system-call filter may have refused a call the camera or GPIO library makes "
    "(SystemCallFilter=~@resources in smartshelf-device.service); to see which: sudo systemctl edit "
    "smartshelf-device -> [Service] SystemCallLog=@resources @privileged, restart, then "
    "journalctl -k -g type=1326 (docs/arm64.md)"
)


def is_eperm(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception it was raised from is an EPERM ("Operation not permitted")."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == 1:  # errno.EPERM
            return True
        if "Operation not permitted" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class PortUnavailable(SmartShelfError, OSError):
    """A server cannot listen on its address (port in use, a privileged port, an unknown host)."""

    @classmethod
    def from_os_error(cls, what: str, host: str, port: int, exc: OSError, *, setting: str) -> PortUnavailable:
        """One line naming the server, the address, the cause and the fix (``setting``: how to choose another)."""
        import errno

        if exc.errno == errno.EADDRINUSE:
            cause = "the port is already in use (is another smartshelf or another server running?)"
            fix = f"stop that server or choose another port with {setting}"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            cause = "permission denied (ports below 1024 need root)"
            fix = f"use a port above 1023 with {setting}"
        elif exc.errno == errno.EADDRNOTAVAIL:
            cause = "this machine has no such address"
            fix = "listen on 127.0.0.1 or 0.0.0.0"
        else:
            cause, fix = exc.strerror or str(exc), f"check the address or choose another port with {setting}"
        return cls(exc.errno or 0, f"{what} cannot listen on {host}:{port}: {cause}; {fix}")

    def __str__(self) -> str:
        return str(self.strerror)
