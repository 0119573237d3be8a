"""How costs grow: ranking vs catalogue size, the admin product list vs product count, events per day."""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from smartshelf.core.errors import SmartShelfError
from tools.bench.peers import sample_event, synthetic_model
from tools.bench.stats import summarize, time_ms

logger = logging.getLogger(__name__)

BENCH_PASSWORD = "bench password 0123"


def recommend_scaling(sizes: list[int], *, rounds: int, n: int = 3) -> dict[str, Any]:
    """Ranker latency (top-n with MMR diversity 0.3) for synthetic catalogues of each size: over the
    whole catalogue, and over an explicit candidate list naming every item (the in-stock filter path)."""
    from device.recommend.ranker import Ranker
    from smartshelf.core.types import Segment

    segment = Segment.parse("male/35-44")
    rows = []
    for size in sizes:
        model = synthetic_model(size, seed=size)
        ranker = Ranker(model)
        candidates = list(model.item_ids)
        all_items = summarize(time_ms(lambda r=ranker: r.rank(segment, n=n), rounds))
        filtered = summarize(
            time_ms(lambda r=ranker, c=candidates: r.rank(segment, n=n, candidates=c), rounds)
        )
        rows.append({"items": size, "all_items": all_items, "candidate_list": filtered})
    return {"rows": rows, "rank": 32, "top_n": n, "diversity": 0.3}


def _synthetic_products(count: int) -> list[dict[str, Any]]:
    from admin_web.products import now_iso

    stamp = now_iso()
    return [
        {
            "sku": f"SYN-{i:06d}",
            "name": f"Synthetic product {i}",
            "brand": ("Acme", "Globex", "Initech")[i % 3],
            "gender": ("female", "male", "unisex")[i % 3],
            "category": ("Tops", "Shoes", "Bags", "Watches")[i % 4],
            "price": 49900 + i,
            "currency": "INR",
            "stock": (i * 7) % 30 - 1,
            "slot": None,
            "item_id": f"SYN-{i:06d}",
            "low_stock": 2,
            "image": None,
            "updated_at": stamp,
        }
        for i in range(count)
    ]


def admin_list_scaling(sizes: list[int], *, rounds: int) -> dict[str, Any]:
    """The admin product list page (``GET /products/``, logged in, Flask test client) for N products:
    warm (store.json unchanged: the repository's snapshot cache) and after a change (re-read + parse),
    plus the repository's ``list_products()`` on a cold repository."""
    from admin_web import create_app
    from admin_web.accounts import AccountStore
    from admin_web.repository import InventoryRepository

    rows = []
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        for size in sizes:
            data_dir = Path(tmp) / f"admin-{size}"
            data_dir.mkdir()
            InventoryRepository(data_dir).import_products(_synthetic_products(size))
            AccountStore(data_dir).set_password("admin", BENCH_PASSWORD)
            app = create_app(
                {
                    "TESTING": True,
                    "DATA_DIR": str(data_dir),
                    "DEVICE_URL": "http://127.0.0.1:9",
                    "SHELF_NAME": "Bench shelf",
                    "DEVICE_TIMEOUT_S": 0.2,
                }
            )
            client = app.test_client()
            page = client.get("/login")
            match = re.search(rb'name="csrf_token" value="([^"]+)"', page.data)
            token = match.group(1).decode() if match else ""
            login = client.post(
                "/login",
                data={"username": "admin", "password": BENCH_PASSWORD, "csrf_token": token, "next": ""},
            )
            if login.status_code not in (302, 303):
                raise SmartShelfError(f"bench could not log in to the admin app (HTTP {login.status_code})")

            def get_page(client: Any = client) -> None:
                response = client.get("/products/")
                if response.status_code != 200:
                    raise SmartShelfError(f"GET /products/ answered HTTP {response.status_code}")

            warm = summarize(time_ms(get_page, rounds))
            writer = InventoryRepository(data_dir)
            after_change: list[float] = []
            for i in range(max(3, rounds // 4)):
                writer.restock(f"SYN-{i:06d}", 1)  # another process's write: the next request re-reads
                t = time.perf_counter()
                get_page()
                after_change.append((time.perf_counter() - t) * 1000.0)
            writer.close()

            def cold_list(data_dir: Path = data_dir) -> None:
                repo = InventoryRepository(data_dir)
                repo.list_products()
                repo.close()

            cold = summarize(time_ms(cold_list, max(3, rounds // 4), warmup=0))
            rows.append(
                {
                    "products": size,
                    "store_bytes": (data_dir / "store.json").stat().st_size,
                    "page_warm": warm,
                    "page_after_change": summarize(after_change),
                    "repository_cold_list": cold,
                }
            )
    return {"rows": rows, "what": "GET /products/ (50 per page) through the Flask test client"}


def events_per_day(profiles: dict[str, float], *, opening_hours: float) -> dict[str, Any]:
    """Size one day adds to the event database for each traffic profile (seconds between decisions),
    written through the device's EventLog (SQLite) with realistic event documents, and what one more
    event's flush costs at the end of that day (it must not grow with the day)."""
    from device.events import EventLog

    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        for name, every_s in profiles.items():
            count = int(opening_hours * 3600 / every_s)
            data_dir = Path(tmp) / name.split()[0]
            log = EventLog(data_dir, clock_synced=lambda: True, flush_interval_s=1e9)
            for i in range(count):
                log.record(sample_event(i, t0))
            log.flush(sync=True)
            # What one more decision's flush costs late that day (one small transaction).
            late = summarize(time_ms(lambda log=log, c=count: (log.record(sample_event(c, t0)), log.flush()), 5,
                                     warmup=0))
            log.close()
            size = sum(p.stat().st_size for p in data_dir.glob("events.sqlite3*"))
            rows.append(
                {
                    "profile": name,
                    "every_s": every_s,
                    "decisions": count,
                    "bytes": size,
                    "bytes_per_event": round(size / max(count, 1), 1),
                    "mb_per_90_days": round(size * 90 / 1e6, 1),
                    "insert_at_end_of_day_ms": late,
                }
            )
    return {"rows": rows, "opening_hours": opening_hours}
