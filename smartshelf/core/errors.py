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
