"""Local test servers: a free loopback port, waiting for a server to listen, stopping it.

The one copy used by the load test, the browser tests and every test that starts a server.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, proc: subprocess.Popen[str], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the admin server exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the admin server did not listen on {host}:{port} within {timeout} s")


def stop_server(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate a server process and wait for it; kill it if it has not exited after ``timeout`` s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
