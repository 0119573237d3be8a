"""Local test servers: a free loopback port, waiting for a server to listen, stopping it.

The one copy used by the load test, the browser tests and every test that starts a server.
"""

from __future__ import annotations

import getpass
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


# ------------------------------------------------------------------------------ Mosquitto
def mosquitto_binary() -> str | None:
    """The ``mosquitto`` executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    import shutil

    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class Mosquitto:
    """A real Mosquitto broker on a free 127.0.0.1 port with a generated config in ``workdir``.

    ``password_file``/``acl_file``: when given, anonymous clients are refused and the files apply
    (the store hub writes them, :mod:`admin_web.store_bus`). Persistence is on, in ``workdir``, so a
    :meth:`restart` keeps sessions and queued QoS-1 messages like a real hub's broker does.
    ``config_text``: run a config the product wrote (``smartshelf store hub-config``) instead, with only
    the persistence, log and user lines added; ``port`` is the one of its listeners to wait for.
    """

    def __init__(self, workdir: Path, *, password_file: Path | None = None, acl_file: Path | None = None,
                 port: int | None = None, config_text: str | None = None) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (tests/install-tools.sh installs it as root)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.password_file = password_file
        self.acl_file = acl_file
        self.config_text = config_text
        self.log = self.workdir / "mosquitto.log"
        self.conf = self.workdir / "mosquitto.conf"
        self.proc: subprocess.Popen[str] | None = None
        self.write_config()

    def write_config(self) -> None:
        # config_text: a config the product wrote (its listeners, auth, TLS; ``port`` must be one of its
        # listeners), to which only the test's own lines below are added
        lines = [self.config_text.rstrip("\n")] if self.config_text else [f"listener {self.port} 127.0.0.1"]
        lines += [
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # Started as root (CI), mosquitto would switch to the 'mosquitto' user and could not read the
            # test's 0600 files; as anyone else this is a no-op.
            f"user {getpass.getuser()}",
        ]
        if self.config_text is None and self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
            if self.acl_file is not None:
                lines.append(f"acl_file {self.acl_file}")
        elif self.config_text is None:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 15.0) -> Mosquitto:
        log = self.log.open("a")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log, text=True)
        log.close()
        wait_for_port(self.host, self.port, self.proc, self.log, timeout)
        return self

    def reload(self) -> None:
        """SIGHUP: re-read the password and ACL files (what the hub does after pairing a shelf)."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)  # SIGTERM: mosquitto saves its persistence file on the way out
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

