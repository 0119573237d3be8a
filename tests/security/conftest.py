"""Fixtures of tests/security and the fuzzing summary at the end of a run (see helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.helpers import FUZZ_ROUTES, FUZZ_STATS, login


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FUZZ_STATS:
        return
    terminalreporter.section("fuzzing")
    total_routes = total_requests = 0
    for surface, stats in sorted(FUZZ_STATS.items()):
        routes = len(FUZZ_ROUTES.get(surface, ()))
        total_routes += routes
        total_requests += stats["requests"]
        terminalreporter.write_line(
            f"{surface}: {routes} routes, {stats['requests']} requests, {stats['refused']} refused (4xx), "
            f"{stats['server_errors']} server errors (5xx)"
        )
    terminalreporter.write_line(f"total: {total_routes} route/method pairs, {total_requests} generated requests")


@pytest.fixture
def logged_in(client: Any) -> Any:
    assert login(client).status_code == 302
    return client


@pytest.fixture
def products(app: Any) -> Any:
    repo = app.extensions["smartshelf.repository"]
    for sku, stock in (("A", 5), ("B", 1)):
        repo.create_product({"sku": sku, "name": f"Product {sku}", "price": 250, "currency": "EUR", "stock": stock})
    return repo
