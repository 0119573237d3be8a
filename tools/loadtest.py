"""Load test of the real admin server: ``python -m tools.loadtest``.

Seeds a temp data dir with N products (default 2,000, from the Myntra catalogue when available,
else synthetic) and a day of decision events, starts the production server (``smartshelf admin``, waitress) in
its own process on a free loopback port, logs in, then drives concurrent clients (threads, one keep-alive http.client
connection each) against the product list page, the API list and the dashboard. Prints p50/p99
latency and requests/s per target. Target: p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from device.events import EventLog
from tools.servers import free_port, stop_server, wait_for_port

MYNTRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "myntra" / "myntra_products_catalog.csv"
PASSWORD = "load test password"
TARGETS = {
    "products page": "/products/",
    "api list": "/api/v1/products?page=3&per_page=50",
    "dashboard": "/?days=7",
}


def seed(data_dir: Path, n_products: int, n_events: int, rng: random.Random) -> str:
    """Fill ``data_dir``; return an API token."""
    from admin_web.accounts import AccountStore
    from admin_web.csvio import parse_products_csv
    from admin_web.repository import InventoryRepository
    from smartshelf.core.storage import atomic_write_json

    products: list[dict[str, Any]] = []
    if MYNTRA.exists():
        products = parse_products_csv(MYNTRA.read_text(encoding="utf-8")).products[:n_products]
    while len(products) < n_products:
        i = len(products)
        products.append({"sku": f"SYN-{i:05d}", "name": f"Synthetic product {i}", "brand": "Acme", "gender": None,
                         "category": None, "price": 10000 + i, "currency": "INR", "stock": 0, "slot": None,
                         "item_id": None, "low_stock": 2, "image": None, "updated_at": "2026-01-01T00:00:00+00:00"})
    for i, p in enumerate(products):
        p["stock"] = rng.randint(-1, 30)
        p["slot"] = f"S{i}" if i < 12 else None
    InventoryRepository(data_dir).import_products(products)
    accounts = AccountStore(data_dir)
    accounts.set_password("admin", PASSWORD)
    token = accounts.create_token("loadtest", ["products:read", "products:write", "stock:write"])

    now = time.time()
    segments = [f"{g}/{a}" for g in ("female", "male") for a in ("18-24", "25-34", "35-44", "45-54")] + ["generic"]
    shelf = [p["sku"] for p in products[:12]]
    log = EventLog(data_dir, clock_synced=lambda: True)
    for i in range(n_events):
        t = now - rng.uniform(0, 86400 * 3)
        log.record({
            "time": t, "visit_id": i // 2, "segment": rng.choice(segments), "confidence": 0.8,
            "reason": "personalised", "variant": "personalised", "items": rng.sample(shelf, 3),
            "slots": ["S0"], "timings_ms": {"total": 40.0},
        })
    log.close()
    atomic_write_json(data_dir / "status.json", {
        "updated_at": now + 3600, "version": "loadtest", "pid": 0, "paused": False,
        "camera": {"type": "replay", "state": "ok", "fps": 10.0, "error": None},
        "models": {"detector": "d.tflite", "age_gender": "a.tflite"}, "factors": {"path": "", "version": None},
        "last_decision_at": now, "visits_today": 10})
    return token


def login(host: str, port: int) -> str:
    """Log in like a browser; return the session cookie header value."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = resp.getheader("Set-Cookie", "").split(";", 1)[0]
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not match:
        raise SystemExit(f"login page without CSRF token (HTTP {resp.status})")
    body = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": match.group(1)})
    conn.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 302:
        raise SystemExit(f"login failed: HTTP {resp.status}")
    conn.close()
    return resp.getheader("Set-Cookie", "").split(";", 1)[0]


def worker(host: str, port: int, headers_for: dict[str, dict[str, str]], deadline: float,
           results: dict[str, list[float]], errors: list[str], lock: threading.Lock, seed_: int) -> None:
    rng = random.Random(seed_)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    names = list(results)
    local: dict[str, list[float]] = {name: [] for name in names}
    while time.perf_counter() < deadline:
        name = rng.choice(names)
        start = time.perf_counter()
        try:
            conn.request("GET", TARGETS[name], headers=headers_for[name])
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as exc:
            with lock:
                errors.append(f"{name}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            continue
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            with lock:
                errors.append(f"{name}: HTTP {resp.status}")
            continue
        local[name].append(elapsed)
    conn.close()
    with lock:
        for name, values in local.items():
            results[name].extend(values)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(products: int = 2000, events: int = 5000, clients: int = 8, seconds: float = 15.0,
        threads: int = 8, warmup: float = 2.0, targets: list[str] | None = None) -> dict[str, Any]:
    names = targets or list(TARGETS)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="smartshelf-load-") as tmp:
        data_dir = Path(tmp)
        token = seed(data_dir, products, events, rng)
        port = free_port()
        # the real production entry point, in its own process (its own GIL, like on the Pi)
        server_log = (data_dir / "server.log").open("w")  # a file, not a pipe: a full pipe would stall it
        server = subprocess.Popen(
            [sys.executable, "-m", "smartshelf.cli", "admin", "serve", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads)],
            stdout=subprocess.DEVNULL, stderr=server_log, text=True)
        try:
            wait_for_port("127.0.0.1", port, server, data_dir / "server.log")
            cookie = login("127.0.0.1", port)
            headers_for = {
                "products page": {"Cookie": cookie},
                "api list": {"Authorization": f"Bearer {token}"},
                "dashboard": {"Cookie": cookie},
            }
            for phase, duration in (("warmup", warmup), ("measure", seconds)):
                results: dict[str, list[float]] = {name: [] for name in names}
                errors: list[str] = []
                lock = threading.Lock()
                deadline = time.perf_counter() + duration
                started = time.perf_counter()
                pool = [threading.Thread(target=worker, args=("127.0.0.1", port, headers_for, deadline, results,
                                                                errors, lock, i)) for i in range(clients)]
                for t in pool:
                    t.start()
                for t in pool:
                    t.join()
                wall = time.perf_counter() - started
        finally:
            stop_server(server)
            server_log.close()
    report: dict[str, Any] = {"products": products, "events": events, "clients": clients, "threads": threads,
                              "seconds": round(wall, 2), "errors": len(errors), "targets": {}}
    all_values: list[float] = []
    for name, values in results.items():
        all_values.extend(values)
        report["targets"][name] = {
            "requests": len(values), "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1), "req_s": round(len(values) / wall, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else None,
        }
    report["overall"] = {"requests": len(all_values), "p50_ms": round(percentile(all_values, 0.5) * 1000, 1),
                         "p99_ms": round(percentile(all_values, 0.99) * 1000, 1),
                         "req_s": round(len(all_values) / wall, 1)}
    if errors:
        report["first_errors"] = errors[:5]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5000, help="decision events spread over 3 days")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated subset of: {', '.join(TARGETS)} (default all, mixed at random)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        parser.error(f"--targets: unknown {unknown}; choose from {', '.join(TARGETS)}")
    report = run(args.products, args.events, args.clients, args.seconds, args.threads, targets=targets)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['products']} products, {report['events']} events, {report['clients']} clients, "
              f"{report['threads']} server threads, {report['seconds']} s, errors: {report['errors']}")
        print(f"{'target':<16}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
        for name, r in [*report["targets"].items(), ("overall", report["overall"])]:
            print(f"{name:<16}{r['requests']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['req_s']:>10}")
    target_met = report["overall"]["p99_ms"] < 100 and report["errors"] == 0
    print(("OK: " if target_met else "MISSED: ") + "target p99 < 100 ms with no errors", file=sys.stderr)
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())
