"""systemd notification protocol (sd_notify) with the standard library only.

``notify("READY=1")`` sends one datagram to ``$NOTIFY_SOCKET`` and returns False (never raises)
when the process does not run under systemd. :class:`Watchdog` wraps the messages a
``Type=notify`` service with ``WatchdogSec=`` needs: call :meth:`Watchdog.ready` once the device is
up, :meth:`Watchdog.ping` on every loop step (rate-limited to half of ``$WATCHDOG_USEC``), and
:meth:`Watchdog.stopping` on shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

__all__ = ["Watchdog", "notify", "watchdog_interval_s"]


def _address(env: Mapping[str, str]) -> str | None:
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    if address[0] not in ("/", "@"):
        logger.debug("NOTIFY_SOCKET=%r is not a unix socket path; ignoring it", address)
        return None
    if address[0] == "@":  # abstract namespace
        return "\0" + address[1:]
    return address


def notify(message: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``) to systemd; True if it was sent.

    Returns False when ``$NOTIFY_SOCKET`` is unset (not started by systemd) or the send fails;
    a failure is logged, never raised, so the device loop does not depend on systemd.
    """
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        logger.warning("sd_notify %r to %r failed: %s", message.split("\n", 1)[0], address, exc)
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds from ``$WATCHDOG_USEC``, or None when no watchdog is armed.

    Like sd_watchdog_enabled(3), a ``$WATCHDOG_PID`` naming another process disables it.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not a number; watchdog disabled", usec)
        return None
    if value <= 0:
        return None
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return value / 1_000_000


class Watchdog:
    """The notifications of a ``Type=notify`` service with ``WatchdogSec=``.

    ``env`` and ``clock`` are injectable for tests. Every method returns whether a message was sent.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._clock = clock
        timeout = watchdog_interval_s(self._env)
        #: Seconds between pings: half the watchdog timeout; None when no watchdog is armed.
        self.interval_s: float | None = None if timeout is None else timeout / 2
        self._last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        """True when systemd armed a watchdog for this process."""
        return self.interval_s is not None

    def _send(self, message: str) -> bool:
        return notify(message, env=self._env)

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), optionally with a status line."""
        message = "READY=1" if status is None else f"READY=1\nSTATUS={status}"
        sent = self._send(message)
        if sent and self.enabled:
            self._last_ping = self._clock()
        return sent

    def ping(self) -> bool:
        """``WATCHDOG=1``, at most once per half watchdog timeout; True when a ping was sent now."""
        if not self.enabled:
            return False
        now = self._clock()
        assert self.interval_s is not None
        if self._last_ping is not None and now - self._last_ping < self.interval_s:
            return False
        sent = self._send("WATCHDOG=1")
        if sent:
            self._last_ping = now
        return sent

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status`` (``STATUS=...``)."""
        return self._send("STATUS=" + " ".join(text.splitlines()))

    def stopping(self) -> bool:
        """Tell systemd the service is shutting down (``STOPPING=1``)."""
        return self._send("STOPPING=1")
