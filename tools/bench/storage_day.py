"""A busy day of storage on an accelerated clock, through the real writers: the device's EventLog and
the admin's TerminalLedger (group commit, sales ledger, store.json stock).

``python -m tools.bench.storage_day OUT.json [--decisions 14400] [--sales 2000] [--hours 12] [--dir DIR]``

Run in its own process (``smartshelf bench`` does, see :func:`run_storage_day`) so that the bytes
counted are this simulation's alone:

* **bytes written**: ``write_bytes`` of ``/proc/self/io`` (bytes this process caused to be sent to the
  storage layer, counted by the kernel at the file-system level), before and after, and per
  simulated hour. The folder must be on a disk-backed file system (a tmpfs counts nothing): its type
  is reported.
* **fsyncs**: counted by ``strace -f -ttt -e trace=fsync,fdatasync`` around this process when strace is
  installed (every fsync, SQLite's own included), per simulated hour from the call times; without
  strace, ``fsyncs`` is null and ``fsyncs_python`` counts only the calls made through ``os.fsync``
  (store.json, the event log's WAL sync), not SQLite's.
* **flush_ms**: wall time of each event-log flush that wrote events (one transaction, plus the WAL
  fsync when due); ``sale_ms``: each sale's submit, from the call to its durable answer.

The clock is simulated: decisions every ``hours * 3600 / decisions`` s, sales spread evenly, the
event log flushed every 2 s of simulated time, nothing waits on the wall clock. The script only uses
APIs that the earlier TinyDB writers had too, so it also measures an older checkout:
``PYTHONPATH=<old checkout> python tools/bench/storage_day.py OUT.json --decisions 2000``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench.stats import percentile

FLUSH_INTERVAL_S = 2.0
SEGMENTS = [f"{g}/{a}" for g in ("female", "male") for a in ("18-24", "25-34", "35-44", "45-54")] + ["generic"]


def write_bytes() -> int:
    with open("/proc/self/io", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise OSError("/proc/self/io has no write_bytes")


def fs_type(path: Path) -> str:
    """The file-system type of the mount holding ``path`` (from /proc/mounts)."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                inside = len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/"))
                if inside and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def _kwargs(cls: Any, **wanted: Any) -> dict[str, Any]:
    """The keyword arguments ``cls`` accepts (older writers lack the newer ones)."""
    accepted = inspect.signature(cls).parameters
    return {k: v for k, v in wanted.items() if k in accepted}


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"median": 0.0, "p95": 0.0, "n": 0}
    return {"median": round(percentile(samples, 50), 3), "p95": round(percentile(samples, 95), 3), "n": len(samples)}


def simulate(data_dir: Path, *, decisions: int, sales: int, hours: float, products: int,
             fsync_counter: list[int]) -> dict[str, Any]:
    from admin_web.repository import InventoryRepository
    from admin_web.terminals import ledger as ledger_module
    from admin_web.terminals.apply import Submission
    from admin_web.terminals.events import event_from_dict
    from admin_web.terminals.ledger import TerminalLedger
    from device.events import EventLog

    day_start = 1_796_000_400.0  # 2026-12-01 09:00 UTC: one simulated day
    clock = [day_start]
    skus = [f"SKU{i:04d}" for i in range(products)]
    repo = InventoryRepository(data_dir, **_kwargs(InventoryRepository, monotonic=lambda: clock[0]))
    repo.import_products({"sku": s, "name": f"Product {s} in blue, size M", "brand": "Brand", "category": "Tops",
                          "price": 1999, "currency": "EUR", "stock": 1_000_000, "slot": None,
                          "item_id": f"item-{s}", "created_at": "2026-11-01T09:00:00+00:00",
                          "updated_at": "2026-11-01T09:00:00+00:00"} for s in skus)
    ledger = TerminalLedger(data_dir, **_kwargs(TerminalLedger, clock=lambda: clock[0], repository=repo,
                                                clock_synced=lambda: True))
    terminal = ledger.pair("Till 1").terminal_id
    log = EventLog(data_dir, **_kwargs(EventLog, clock=lambda: clock[0], flush_interval_s=1e9,
                                       monotonic=lambda: clock[0], clock_synced=lambda: True))

    def stock_due(now: float) -> bool:
        """Whether the admin's store.json timer would have fired by ``now`` (releases that have one)."""
        since = repo.deferred_since() if hasattr(repo, "deferred_since") else None
        return since is not None and now >= since + getattr(ledger_module, "STOCK_WRITE_INTERVAL_S", 0.0)

    length = hours * 3600.0
    # the day's timeline: (simulated seconds, order, kind); at equal times decisions and sales come
    # before the flush that writes them and before the hour mark that counts them
    timeline: list[tuple[float, int, str]] = [(i * length / decisions, 0, "decision") for i in range(decisions)]
    timeline += [((j + 0.5) * length / max(sales, 1), 1, "sale") for j in range(sales)]
    timeline += [(k * FLUSH_INTERVAL_S, 2, "flush") for k in range(1, int(length / FLUSH_INTERVAL_S) + 2)]
    timeline += [(h * 3600.0, 3, "hour") for h in range(1, int(-(-length // 3600)) + 1)]
    timeline.sort()
    made_decisions = made_sales = 0
    hour_marks: list[dict[str, Any]] = []
    flush_ms: list[float] = []
    sale_ms: list[float] = []
    written_at_start = write_bytes()
    wall_start = time.time()
    hour_start_bytes, hour_start_fsyncs, hour_start_wall = written_at_start, fsync_counter[0], wall_start
    for at, _order, kind in timeline:
        clock[0] = day_start + at
        if kind == "decision":
            i = made_decisions
            log.record({
                "time": round(clock[0], 3), "visit_id": i // 2, "segment": SEGMENTS[i % len(SEGMENTS)],
                "confidence": 0.81, "reason": "personalised", "variant": "personalised",
                "items": [skus[(i + k) % len(skus)] for k in range(3)], "slots": ["A1", "A2", "B1"],
                "timings_ms": {"detect": 11.2, "classify": 6.1, "recommend": 0.4, "total": 19.8},
            })
            made_decisions += 1
        elif kind == "sale":
            j = made_sales
            event = event_from_dict({
                "id": f"{j:06d}-R", "type": "sale", "amount": 2500, "currency": "EUR",
                "lines": [{"sku": skus[(7 * j) % len(skus)], "qty": 1}, {"sku": skus[(7 * j + 3) % len(skus)], "qty": 2}],
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock[0])),
            })
            t0 = time.perf_counter()
            result = ledger.submit(Submission(event, terminal, "generic"))
            sale_ms.append((time.perf_counter() - t0) * 1000.0)
            if result.status != "applied":
                raise RuntimeError(f"sale {event.id} was {result.status}: {result.message}")
            made_sales += 1
        elif kind == "flush":
            t0 = time.perf_counter()
            if log.flush():
                flush_ms.append((time.perf_counter() - t0) * 1000.0)
            if stock_due(clock[0]):  # the admin's timer, on the simulated clock
                ledger.flush_stock()
        else:
            now_bytes, now_wall = write_bytes(), time.time()
            hour_marks.append({
                "hour": len(hour_marks) + 1,
                "bytes_written": now_bytes - hour_start_bytes,
                "fsyncs_python": fsync_counter[0] - hour_start_fsyncs,
                "wall": [hour_start_wall, now_wall],
            })
            hour_start_bytes, hour_start_fsyncs, hour_start_wall = now_bytes, fsync_counter[0], now_wall
    log.close()
    if hasattr(ledger, "close"):
        ledger.close()  # the end of the day: what the admin kept in memory goes to store.json
    total = write_bytes() - written_at_start
    return {
        "decisions": made_decisions,
        "sales": made_sales,
        "simulated_hours": hours,
        "products": products,
        "bytes_written": total,
        "fsyncs_python": fsync_counter[0],
        "flush_ms": _percentiles(flush_ms),
        "sale_ms": _percentiles(sale_ms),
        "per_hour": hour_marks,
        "wall_s": round(time.time() - wall_start, 2),
        "files": {p.name: p.stat().st_size for p in sorted(data_dir.iterdir()) if p.is_file()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--decisions", type=int, default=14_400)
    parser.add_argument("--sales", type=int, default=2_000)
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--products", type=int, default=150, help="products in store.json (rewritten per sale)")
    parser.add_argument("--dir", type=Path, default=None, help="parent folder for the data dir (disk-backed)")
    args = parser.parse_args(argv)
    fsyncs = [0]
    real_fsync = os.fsync

    def counting_fsync(fd: Any) -> None:
        fsyncs[0] += 1
        real_fsync(fd)

    os.fsync = counting_fsync  # the bench only: counts the Python-level fsyncs (not SQLite's own)
    parent = args.dir or Path.cwd()
    parent.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="smartshelf-storage-day-", dir=parent))
    try:
        result = simulate(data_dir, decisions=args.decisions, sales=args.sales, hours=args.hours,
                          products=args.products, fsync_counter=fsyncs)
        result["filesystem"] = fs_type(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


def _strace_counts(trace: Path, hours: list[dict[str, Any]]) -> tuple[int, list[int]]:
    """Total fsync/fdatasync calls in an ``strace -f -ttt`` log, and how many fell in each hour's wall span."""
    times: list[float] = []
    for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        # "<pid> <epoch.us> fsync(5) = 0" or "<pid> <epoch.us> <... fsync resumed>) = 0"
        if len(parts) < 3 or "resumed>" in line:
            continue
        if parts[2].startswith(("fsync(", "fdatasync(")):
            try:
                times.append(float(parts[1]))
            except ValueError:
                continue
    per_hour = [sum(1 for t in times if h["wall"][0] <= t < h["wall"][1]) for h in hours]
    return len(times), per_hour


def run_storage_day(*, decisions: int = 14_400, sales: int = 2_000, hours: float = 12.0, products: int = 150,
                    parent: Path | None = None, use_strace: bool = True) -> dict[str, Any]:
    """Run the simulation in a child process (under strace when installed) and return its figures."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    strace = shutil.which("strace") if use_strace else None
    with tempfile.TemporaryDirectory(prefix="smartshelf-bench-") as tmp:
        out = Path(tmp) / "storage.json"
        trace = Path(tmp) / "fsync.trace"
        cmd = [sys.executable, "-m", "tools.bench.storage_day", str(out), "--decisions", str(decisions),
               "--sales", str(sales), "--hours", str(hours), "--products", str(products),
               "--dir", str(parent or Path(tmp))]
        if strace:
            cmd = [strace, "-f", "-ttt", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace), *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False, env=env)
        if proc.returncode != 0 or not out.exists():
            if strace and "ptrace" in proc.stderr:  # not allowed here: count without strace
                return run_storage_day(decisions=decisions, sales=sales, hours=hours, products=products,
                                       parent=parent, use_strace=False)
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"the storage benchmark process failed (exit {proc.returncode}):\n{tail}")
        result = json.loads(out.read_text(encoding="utf-8"))
        if strace and trace.exists():
            total, per_hour = _strace_counts(trace, result["per_hour"])
            result["fsyncs"] = total
            result["fsyncs_method"] = "strace -f -e trace=fsync,fdatasync (every call, SQLite's included)"
            for row, n in zip(result["per_hour"], per_hour, strict=True):
                row["fsyncs"] = n
        else:
            result["fsyncs"] = None
            result["fsyncs_method"] = ("strace not available: only fsyncs_python (os.fsync calls; SQLite's "
                                       "own fsyncs are not counted)")
    for row in result["per_hour"]:
        row.pop("wall", None)
    result["targets"] = {
        "bytes_written_under_100MB": result["bytes_written"] < 100e6,
        "fsyncs_under_5000": None if result["fsyncs"] is None else result["fsyncs"] < 5000,
        "flush_p95_under_20ms": result["flush_ms"]["p95"] < 20.0,
    }
    return result


if __name__ == "__main__":
    sys.exit(main())
