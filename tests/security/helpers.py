"""Helpers of the attack tests and fuzzers: an app on a fresh data dir, login, a snapshot of
the data dir (to show that a refused request changed nothing), and the fuzzing budget.

Fuzzing budget: ``SMARTSHELF_FUZZ_EXAMPLES`` (default 40 per fuzz test, the CI run) sets how many
requests Hypothesis generates per test; the long run in docs/security.md uses 1000. Each fuzz test
adds what it sent to :data:`FUZZ_STATS`, printed at the end of the run.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("SMARTSHELF_FUZZ_EXAMPLES", "40"))
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("SMARTSHELF_FUZZ_RANDOM") != "1",  # CI: the same examples every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    database=None,
)
#: surface -> Counter(routes=..., requests=..., server_errors=..., refused=...)
FUZZ_STATS: dict[str, Counter[str]] = {}
FUZZ_ROUTES: dict[str, set[str]] = {}


def record(surface: str, route: str, status: int) -> None:
    stats = FUZZ_STATS.setdefault(surface, Counter())
    FUZZ_ROUTES.setdefault(surface, set()).add(route)
    stats["requests"] += 1
    if status >= 500:
        stats["server_errors"] += 1
    elif status >= 400:
        stats["refused"] += 1


def snapshot(data_dir: Path) -> dict[str, str]:
    """Digest of every file in the data dir (lock files aside): equal snapshots = nothing changed."""
    out: dict[str, str] = {}
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and not path.name.endswith(".lock") and not path.name.endswith(".tmp"):
            out[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def login(client: Any, user: str = "admin", password: str = "correct horse battery", **environ: Any) -> Any:
    page = client.get("/login", environ_base=environ)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token},
                       environ_base=environ)


def csrf_of(client: Any) -> str:
    with client.session_transaction() as sess:
        return str(sess.get("_csrf") or "")


def make_app(data_dir: Path, **extra: Any) -> Any:
    from admin_web import create_app
    from admin_web.accounts import AccountStore
    from tools.servers import free_port

    data_dir.mkdir(parents=True, exist_ok=True)
    AccountStore(data_dir).set_password("admin", "correct horse battery")
    return create_app({
        "TESTING": True, "DATA_DIR": str(data_dir), "DEVICE_URL": f"http://127.0.0.1:{free_port()}",
        "SHELF_NAME": "Fuzz shelf", "DEVICE_TIMEOUT_S": 0.2, **extra,
    })


def terminal_summary(terminalreporter: Any) -> None:
    """What the fuzzers sent (called from tests/conftest.py's pytest_terminal_summary)."""
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


def start_device_server(data_dir: Path, *, name: str = "t", heartbeat_s: float = 0.2, status: Any = None) -> Any:
    """The device's real loopback server on a free port, with a control function that validates and
    records each command (``server.commands``), its control secret (``server.secret_value``) and data dir."""
    from device.controller import validate_command
    from device.display.kiosk import KioskServer
    from device.display.screen import KioskScreen
    from smartshelf.core.control import load_or_create_secret

    commands: list[tuple[str, dict[str, Any]]] = []

    def control(command: str, body: dict[str, Any]) -> dict[str, Any]:
        if command not in ("identify", "pause", "reload"):
            raise KeyError(f"unknown command {command!r}")
        commands.append((command, validate_command(command, body)))
        return {"ok": True}

    secret = load_or_create_secret(data_dir)
    extra = {} if status is None else {"status": status}
    server = KioskServer(KioskScreen(name), port=0, control=control, data_dir=data_dir, heartbeat_s=heartbeat_s,
                         **extra).start()
    server.commands = commands
    server.secret_value = secret
    server.data_dir = data_dir
    return server
