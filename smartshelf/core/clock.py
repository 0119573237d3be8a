"""Is the system clock set? A Pi 4 has no real-time clock: after a power cut it boots with the time
it saved at shutdown (fake-hwclock) or 1970, until NTP sets it.

:func:`clock_synced` asks the kernel (``adjtimex``: the clock is synchronised when its state is not
``TIME_ERROR``, the test ``systemd-time-wait-sync`` uses) and, where the kernel cannot be asked,
systemd-timesyncd's flag file ``/run/systemd/timesync/synchronized``. :class:`SyncWatch` caches the
answer for the decision loop: once synchronised a clock stays so, and until then it asks at most
every ``recheck_s`` seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
TIME_ERROR = 5
CLOCK_NOT_SET = "the shelf's clock is not set (no time sync since boot)"


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h): modes, then 10 longs, then a timeval and more; we only read the
    # return value, so a generously sized tail is enough.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_long * 64)]


def _kernel_synced() -> bool | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    buf = _Timex()
    state = adjtimex(ctypes.byref(buf))
    if state < 0:
        return None
    return state != TIME_ERROR


def clock_synced() -> bool:
    """True when the system clock has been synchronised (NTP) since boot."""
    kernel = _kernel_synced()
    if kernel is not None:
        return kernel or TIMESYNC_FLAG.exists()
    return TIMESYNC_FLAG.exists()


class SyncWatch:
    """``watch()`` -> bool, cheap enough to call per event."""

    def __init__(self, probe: Callable[[], bool] = clock_synced, *, recheck_s: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self.recheck_s = recheck_s
        self.monotonic = monotonic
        self._synced = False
        self._checked_at: float | None = None

    def __call__(self) -> bool:
        if self._synced:
            return True
        now = self.monotonic()
        if self._checked_at is None or now - self._checked_at >= self.recheck_s:
            self._checked_at = now
            self._synced = bool(self.probe())
            if self._synced:
                logger.info("the system clock is synchronised")
        return self._synced
