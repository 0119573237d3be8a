"""smartshelf: the shelf runtime (``device``), the staff app (``admin_web``) and the installer's
commands (``smartshelf.installer``), assembled by the one console script (``smartshelf.cli``) over a
small shared core (``smartshelf.core``)."""

from smartshelf.core import __version__

__all__ = ["__version__"]
