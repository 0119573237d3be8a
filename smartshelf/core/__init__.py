"""The shared core under both rooms: config (with its one path resolver), errors, storage, types.

It imports neither ``device`` nor ``admin_web``; both import it (an import-linter contract says so).
"""

__version__ = "0.1.0"
