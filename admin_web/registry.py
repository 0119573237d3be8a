"""Extension points of the admin app that areas register into: nav links and dashboard panels.

Both the app factory and the areas' blueprints (e.g. ``admin_web.terminals.views``) import this
module; neither imports the other, so there is no circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

#: A dashboard panel: called per request, returns {"title": str, "html": Markup} or None to hide.
DashboardPanel = Callable[[], "dict[str, Any] | None"]

NAV_KEY = "smartshelf.nav"
PANELS_KEY = "smartshelf.dashboard_panels"


def add_nav_link(app: Flask, endpoint: str, label: str) -> None:
    """Add a link to the top navigation (e.g. the terminals area's index page)."""
    app.extensions.setdefault(NAV_KEY, []).append((endpoint, label))


def register_dashboard_panel(app: Flask, panel: DashboardPanel) -> None:
    """Show ``panel()``'s result on the dashboard (the conversion-by-segment place)."""
    app.extensions.setdefault(PANELS_KEY, []).append(panel)


def nav_links(app: Flask) -> list[tuple[str, str]]:
    """The registered links whose endpoint exists."""
    return [(e, label) for e, label in app.extensions.get(NAV_KEY, []) if e in app.view_functions]


def dashboard_panels(app: Flask) -> list[DashboardPanel]:
    return list(app.extensions.get(PANELS_KEY, []))
