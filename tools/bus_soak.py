"""Store-bus soak: one Mosquitto on loopback, one hub, N simulated shelves, for a bounded time.

    smartshelf bus-soak --shelves 100 --duration 60 --offline-s 60 --json

Every part is the shipped code: the broker is a real ``mosquitto`` with the hub's password file and
ACL (:class:`admin_web.store_bus.ShelfRegistry`), the hub is :class:`admin_web.store_bus.StoreHub`
(events into its SQLite store) and each shelf is a :class:`device.bus.ShelfBus` (stock written to its
own store.json, atomically). What it measures:

- stock-change latency: the hub publishes a change for a random shelf (``--stock-rate`` per second);
  the time until that shelf has written it, p50/p95/p99/max, overall and outside the restart window;
- QoS-1 events: every shelf publishes decision events (``--event-rate`` per second in total); the hub
  must hold each exactly once at the end (``lost`` and ``duplicates`` must be 0);
- a broker restart at ``--restart-at`` (share of the run) and one shelf offline for ``--offline-s``
  seconds: it must come back with every stock change sent while it was away;
- messages/s through the broker, and the memory of one shelf client (RSS growth / N, and the Python
  heap per client from tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from admin_web.store_bus import ShelfRegistry, StoreHub
from device.bus import ShelfBus
from smartshelf.core.bus_schema import decode
from smartshelf.core.config import BusConfig
from tools.servers import Mosquitto

logger = logging.getLogger(__name__)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Tracker:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[tuple[str, int], float] = field(default_factory=dict)  # (shelf, version) -> sent at
    received: dict[tuple[str, int], float] = field(default_factory=dict)
    events_sent: dict[str, int] = field(default_factory=dict)


def _wrap_stock(bus: ShelfBus, tracker: Tracker) -> None:
    """Record when the shelf has written each stock version (after ShelfBus's own handler)."""
    original = bus._on_stock

    def on_stock(client: Any, userdata: Any, msg: Any) -> None:
        original(client, userdata, msg)
        version = decode(msg.topic, msg.payload)["version"]
        with tracker.lock:
            tracker.received.setdefault((bus.shelf, version), time.monotonic())

    bus.client.message_callback_add(bus.topics.stock(bus.shelf), on_stock)


def run(
    *,
    shelves: int = 100,
    duration_s: float = 60.0,
    stock_rate: float = 20.0,
    event_rate: float = 100.0,
    restart_at: float = 0.5,
    offline_s: float = 60.0,
    settle_s: float = 30.0,
    seed: int = 0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="bus-soak-") if workdir is None else None
    root = Path(tmp.name) if tmp else Path(workdir)  # type: ignore[arg-type]
    names = [f"shelf-{i:03d}" for i in range(shelves)]
    registry = ShelfRegistry(root / "hub")
    passwords = {name: registry.add_shelf(name, [f"S{i}"]) for i, name in enumerate(names)}
    broker = Mosquitto(root / "broker", password_file=registry.password_file, acl_file=registry.acl_file).start()
    hub = StoreHub(root / "hub", port=broker.port).start()
    tracker = Tracker()
    cfg = BusConfig(enabled=True, host="127.0.0.1", port=broker.port, user="", keepalive_s=10)

    def make_shelf(name: str) -> ShelfBus:
        d = root / name
        d.mkdir(exist_ok=True)
        bus = ShelfBus(BusConfig(**{**cfg.__dict__, "shelf": name, "user": name}), name, data_dir=d,
                       factors_path=d / "factors.npz", on_command=lambda n, b: {"ok": True},
                       password=passwords[name])
        _wrap_stock(bus, tracker)
        return bus.start()

    tracemalloc.start()
    heap0, rss0 = tracemalloc.get_traced_memory()[0], rss_bytes()
    buses = {name: make_shelf(name) for name in names}
    deadline = time.monotonic() + 60
    while not all(b.connected for b in buses.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("not every shelf connected within 60 s")
        time.sleep(0.05)
    heap_per_client = (tracemalloc.get_traced_memory()[0] - heap0) / shelves
    rss_per_client = (rss_bytes() - rss0) / shelves
    tracemalloc.stop()

    offline_name = names[-1]
    offline_from = duration_s * 0.2
    offline_until = offline_from + offline_s
    restart_window: tuple[float, float] | None = None
    start = time.monotonic()
    next_stock = next_event = start
    version = 0
    offline_sent: list[int] = []
    restarted = went_offline = came_back = False
    events = 0
    while True:
        now = time.monotonic()
        t = now - start
        if t >= max(duration_s, offline_until + 1.0 if offline_s > 0 else 0.0) and (came_back or offline_s <= 0):
            break
        if not restarted and restart_at > 0 and t >= restart_at * duration_s:
            r0 = time.monotonic()
            broker.restart()
            restarted = True
            restart_window = (r0 - start, time.monotonic() - start + 5.0)
            logger.info("broker restarted at %.1f s", t)
        if offline_s > 0 and not went_offline and t >= offline_from:
            buses[offline_name].close()
            went_offline = True
        if went_offline and not came_back and t >= offline_until:
            buses[offline_name] = make_shelf(offline_name)
            came_back = True
        if now >= next_stock and t < duration_s:
            name = rng.choice(names)
            version += 1
            with tracker.lock:
                tracker.sent[(name, version)] = time.monotonic()
            hub.client.publish(hub.topics.stock(name), json.dumps(
                {"version": version, "products": [{"sku": f"P{version}", "stock": rng.randint(0, 20), "slot": "S"}],
                 "slots": {"S": None}}).encode(), qos=1, retain=True)
            if name == offline_name and went_offline and not came_back:
                offline_sent.append(version)
            next_stock += 1.0 / stock_rate
        if now >= next_event and t < duration_s:
            name = rng.choice(names)
            if not (name == offline_name and went_offline and not came_back):
                buses[name].publish_event({"time": time.time(), "segment": "female/25-34", "reason": "personalised",
                                           "items": ["i1"], "slots": ["S0"]})
                tracker.events_sent[name] = tracker.events_sent.get(name, 0) + 1
                events += 1
            next_event += 1.0 / event_rate
        time.sleep(max(0.0, min(next_stock, next_event) - time.monotonic()))
    run_s = time.monotonic() - start

    # Settle: wait (bounded) for every stock version and every event to arrive.
    settle_deadline = time.monotonic() + settle_s
    while time.monotonic() < settle_deadline:
        with tracker.lock:
            stock_done = all(k in tracker.received for k in tracker.sent)
        counts = hub.events.counts()
        if stock_done and all(counts.get(n, 0) >= c for n, c in tracker.events_sent.items()):
            break
        time.sleep(0.1)
    counts = hub.events.counts()
    with tracker.lock:
        latencies = [(k[0], tracker.sent[k] - start, tracker.received[k] - tracker.sent[k])
                     for k in tracker.sent if k in tracker.received]
        missing_stock = [k for k in tracker.sent if k not in tracker.received]
        offline_got = [v for v in offline_sent if (offline_name, v) in tracker.received]
    all_lat = [lat for _, _, lat in latencies]
    # The bar (p99 < 1 s) is for a running store: leave out what was sent while the broker restarted
    # (for every shelf) and what was sent to the offline shelf while it was away (it waits by design).
    outside = [lat for shelf, sent_at, lat in latencies
               if not (restart_window and restart_window[0] <= sent_at <= restart_window[1])
               and not (shelf == offline_name and offline_s > 0 and offline_from <= sent_at <= offline_until + 5)]
    lost = sum(max(0, c - counts.get(n, 0)) for n, c in tracker.events_sent.items())
    stored = sum(counts.values())
    # Messages through the broker: stock (+ the shelf's status republish per stock), events.
    messages = len(tracker.sent) * 2 + events
    report = {
        "shelves": shelves,
        "duration_s": round(run_s, 1),
        "stock_changes": len(tracker.sent),
        "events_sent": events,
        "events_stored": stored,
        "events_lost": lost,
        "event_duplicates_stored": max(0, stored - events),
        "stock_missing": len(missing_stock),
        "messages_per_s": round(messages / run_s, 1),
        "stock_latency_ms": {
            "all": {q: _ms(percentile(all_lat, p)) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
            | {"max": _ms(max(all_lat) if all_lat else None)},
            "outside_restart_and_offline": {q: _ms(percentile(outside, p))
                                            for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
            | {"max": _ms(max(outside) if outside else None), "n": len(outside)},
        },
        "broker_restart_at_s": round(restart_window[0], 1) if restart_window else None,
        "offline_shelf": {"seconds": offline_s, "stock_sent_while_offline": len(offline_sent),
                          "received_after_return": len(offline_got)} if offline_s > 0 else None,
        "memory_per_shelf_client": {"rss_kib": round(rss_per_client / 1024, 1),
                                    "python_heap_kib": round(heap_per_client / 1024, 1)},
    }
    for bus in buses.values():
        bus.close()
    hub.close()
    broker.stop()
    if tmp:
        tmp.cleanup()
    return report


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def ok(report: dict[str, Any]) -> bool:
    """The issue's bar: nothing lost, the offline shelf caught up, p99 < 1 s outside the restart."""
    offline = report["offline_shelf"]
    p99 = report["stock_latency_ms"]["outside_restart_and_offline"]["p99"]
    return (report["events_lost"] == 0 and report["stock_missing"] == 0 and report["event_duplicates_stored"] == 0
            and (offline is None or offline["received_after_return"] == offline["stock_sent_while_offline"])
            and p99 is not None and p99 < 1000)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bus-soak", help="soak the store bus: one Mosquitto, a hub and N shelves (dev)")
    p.add_argument("--shelves", type=int, default=100)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (default 60)")
    p.add_argument("--stock-rate", type=float, default=20.0, help="stock changes per second, store-wide")
    p.add_argument("--event-rate", type=float, default=100.0, help="decision events per second, store-wide")
    p.add_argument("--restart-at", type=float, default=0.5, help="restart the broker at this share of the run (0: never)")
    p.add_argument("--offline-s", type=float, default=60.0, help="one shelf offline this long (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    for name in ("device.bus", "admin_web.store_bus"):  # one line per message would drown the report
        logging.getLogger(name).setLevel(logging.WARNING)
    report = run(shelves=args.shelves, duration_s=args.duration, stock_rate=args.stock_rate,
                 event_rate=args.event_rate, restart_at=args.restart_at, offline_s=args.offline_s, seed=args.seed)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0 if ok(report) else 1

