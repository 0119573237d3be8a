"""A payment-terminal simulator: signed sale/refund events over HTTP, for demos and load tests.

Standard library only (``http.client`` + threads), so it runs on any machine with Python. Each worker
thread keeps one keep-alive connection. Events are signed at send time (a retry is signed again, so
it is never stale). A ``duplicates`` share of the sends repeats an earlier event id with the same
body, the way a terminal retries after a lost answer.

Library use (tests): :func:`plan_events` + :func:`run`; command line: ``smartshelf terminal simulate``.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from admin_web.terminals import signing

logger = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/terminal/events"


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    event: dict[str, Any]
    duplicate: bool
    """True when this send repeats an earlier event id."""



def _refusal(data: bytes | str | None) -> str | None:
    """The server's reason in an error answer (its JSON ``message`` or ``error``), or None."""
    try:
        body = json.loads(data or b"")
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict):
        return None
    reason = body.get("message") or body.get("error")
    return str(reason)[:300] if reason else None

@dataclass
class Summary:
    sent: int = 0
    applied: int = 0
    duplicate: int = 0
    errors: int = 0
    retries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    #: Why the server refused: "http 422: <its message>" -> count.
    reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    outcomes: dict[int, str] = field(default_factory=dict)
    """Per planned index: "applied", "duplicate" or the last error."""

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the answered sends' latencies (ms)."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        p50, p99 = self.percentile(50), self.percentile(99)
        return {
            "sent": self.sent,
            "applied": self.applied,
            "duplicate": self.duplicate,
            "errors": self.errors,
            "retries": self.retries,
            "statuses": dict(self.statuses),
            "reasons": dict(self.reasons),
            "p50_ms": None if p50 is None else round(p50, 2),
            "p99_ms": None if p99 is None else round(p99, 2),
            "events_per_s": round(self.rate, 1),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def text(self) -> str:
        d = self.as_dict()
        return (
            f"sent {d['sent']}  applied {d['applied']}  duplicate {d['duplicate']}  errors {d['errors']}"
            f"  retries {d['retries']}\n"
            f"latency p50 {d['p50_ms']} ms  p99 {d['p99_ms']} ms  throughput {d['events_per_s']} events/s"
            f"  ({d['elapsed_s']} s)  statuses {d['statuses']}"
        ) + "".join(f"\nrefused ({n}x) {reason}" for reason, n in self.reasons.most_common(5))


def plan_events(
    count: int,
    skus: Sequence[str],
    *,
    duplicates: float = 0.0,
    refunds: float = 0.0,
    currency: str = "EUR",
    max_qty: int = 3,
    seed: int | None = None,
    prefix: str | None = None,
) -> list[PlannedEvent]:
    """``count`` sends: about ``duplicates`` of them repeat an earlier event, ``refunds`` of the new
    ones are refunds. Deterministic for a given ``seed``."""
    if not skus:
        raise ValueError("plan_events needs at least one sku")
    if not 0 <= duplicates < 1 or not 0 <= refunds <= 1:
        raise ValueError("duplicates must be in [0, 1) and refunds in [0, 1]")
    rng = random.Random(seed)
    prefix = prefix or f"sim-{uuid.uuid4().hex[:8]}"
    n_dup = round(count * duplicates)
    n_new = count - n_dup
    originals: list[dict[str, Any]] = []
    for i in range(n_new):
        lines = [{"sku": sku, "qty": rng.randint(1, max_qty)} for sku in rng.sample(list(skus), k=min(len(skus), rng.randint(1, 2)))]
        originals.append(
            {
                "id": f"{prefix}-{i}",
                "type": "refund" if rng.random() < refunds else "sale",
                "lines": lines,
                "amount": 100 * sum(line["qty"] for line in lines),
                "currency": currency,
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    keyed = [(float(i), PlannedEvent(e, False)) for i, e in enumerate(originals)]
    for _ in range(n_dup if n_new else 0):
        # a repeat comes after its original, sometimes right after, sometimes much later
        src = rng.randrange(n_new)
        keyed.append((src + 0.5 + rng.random() * (n_new - src), PlannedEvent(originals[src], True)))
    keyed.sort(key=lambda kv: kv[0])
    plan = [p for _, p in keyed]
    return plan


class _Worker:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url {url!r} must be http(s)://host[:port]")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.conn = cls(self.host, self.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self._connection()
        try:
            conn.request("POST", self.base + EVENTS_PATH, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, data
        except BaseException:
            self.close()
            raise


def run(
    url: str,
    terminal_id: str,
    secret: str,
    plan: Sequence[PlannedEvent],
    *,
    concurrency: int = 4,
    rate: float | None = None,
    retries: int = 0,
    retry_wait_s: float = 0.2,
    timeout_s: float = 10.0,
) -> Summary:
    """Send ``plan`` from ``concurrency`` threads, at most ``rate`` sends per second overall.

    A send that gets no 200 (connection refused or reset, 5xx) is retried up to ``retries`` times
    (re-signed, after ``retry_wait_s``); 401 and 422 are final. Never raises for HTTP errors.
    """
    summary = Summary()
    lock = threading.Lock()
    next_index = iter(range(len(plan)))
    start = time.perf_counter()

    def record(index: int, status: str, latency_ms: float | None) -> None:
        with lock:
            summary.sent += 1
            summary.statuses[status] += 1
            if latency_ms is not None:
                summary.latencies_ms.append(latency_ms)

    def work() -> None:
        worker = _Worker(url, timeout_s)
        try:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                if rate:
                    delay = start + index / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                body = json.dumps(plan[index].event, separators=(",", ":")).encode("utf-8")
                outcome = "error"
                for attempt in range(retries + 1):
                    if attempt:
                        with lock:
                            summary.retries += 1
                        time.sleep(retry_wait_s)
                    headers = {
                        "Content-Type": "application/json",
                        "X-Terminal-Id": terminal_id,
                        "X-Signature": signing.sign(secret, int(time.time()), body),
                    }
                    t0 = time.perf_counter()
                    try:
                        status, data = worker.post(body, headers)
                    except (OSError, http.client.HTTPException) as exc:
                        outcome = f"error: {type(exc).__name__}"
                        with lock:
                            summary.statuses[outcome] += 1
                        continue
                    latency = (time.perf_counter() - t0) * 1000
                    if status == 200:
                        try:
                            outcome = str(json.loads(data).get("status"))
                        except (ValueError, AttributeError):
                            outcome = "error: bad 200 body"
                        record(index, outcome, latency)
                        break
                    outcome = f"http {status}"
                    record(index, outcome, latency)
                    reason = _refusal(data)
                    if reason:
                        with lock:
                            summary.reasons[f"{outcome}: {reason}"] += 1
                    if status in (401, 422):
                        break
                with lock:
                    summary.outcomes[index] = outcome
                    if outcome == "applied":
                        summary.applied += 1
                    elif outcome == "duplicate":
                        summary.duplicate += 1
                    else:
                        summary.errors += 1
        finally:
            worker.close()

    threads = [threading.Thread(target=work, name=f"sim-{i}", daemon=True) for i in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary.elapsed_s = time.perf_counter() - start
    return summary
