"""Keep OpenBLAS to one thread while training.

Training does thousands of small matrix products; OpenBLAS's worker threads spin between them and, on a
busy machine (the Pi also runs the camera pipeline; a build box runs other jobs), cost far more than they
save: MovieLens-100K training took 15 s with the default threads on a loaded 2-core box and 1.3 s with one.
numpy offers no API for this, so the OpenBLAS library numpy loaded is found in ``/proc/self/maps`` and its
``*_set_num_threads`` entry point is called through ctypes (what threadpoolctl does). Anywhere this is not
possible (no /proc, another BLAS) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

#: Entry points of OpenBLAS builds: plain, 64-bit-integer (numpy's wheels) and scipy-openblas names.
_STEMS = (
    "openblas_{}_num_threads",
    "openblas_{}_num_threads64_",
    "scipy_openblas_{}_num_threads",
    "scipy_openblas_{}_num_threads64_",
)


def _openblas_controls() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            paths = {line.split()[-1] for line in handle if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for stem in _STEMS:
            get = getattr(lib, stem.format("get"), None)
            put = getattr(lib, stem.format("set"), None)
            if get is not None and put is not None:
                get.restype = ctypes.c_int
                put.argtypes = [ctypes.c_int]
                return (lambda g=get: int(g())), (lambda n, p=put: p(int(n)))
    return None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block, OpenBLAS uses one thread (restored after); a no-op where it cannot be controlled.

    Also a decorator (``@single_threaded_blas()``): every call of the function runs in a fresh block."""
    controls = _openblas_controls()
    if controls is None:
        yield
        return
    get, put = controls
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)
