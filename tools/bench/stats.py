"""Latency statistics and timing helpers for the benchmark (pure; no I/O)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]) of a non-empty sequence."""
    if not samples:
        raise ValueError("percentile() of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """``{"median", "p95", "mean", "min", "max", "n"}`` of latencies in milliseconds (rounded to 4 digits)."""
    if not samples_ms:
        raise ValueError("summarize() of no samples")
    n = len(samples_ms)
    return {
        "median": round(percentile(samples_ms, 50), 4),
        "p95": round(percentile(samples_ms, 95), 4),
        "mean": round(sum(samples_ms) / n, 4),
        "min": round(min(samples_ms), 4),
        "max": round(max(samples_ms), 4),
        "n": n,
    }


def time_ms(fn: Callable[[], Any], repeats: int, *, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    out: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out
