"""Power-cut test: a writer SIGKILLed at random moments never leaves a broken or stale store.

A forked child inserts products in a loop through open_db/AtomicJSONStorage and reports each sku
on a pipe only after the insert returned. The parent kills it at a random moment, then opens the
store: it must parse, and it must hold every acknowledged write. 200 kills.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from smartshelf.core.storage import open_db

pytestmark = pytest.mark.integration

ROUNDS = 200


def _writer(path: str, prefix: str, conn) -> None:  # runs in the child
    db = open_db(path)
    products = db.table("products")
    conn.send("ready")
    i = 0
    while True:
        sku = f"{prefix}-{i}"
        products.insert({"sku": sku, "name": "x" * 40, "stock": i})
        conn.send(sku)  # acknowledged only after insert returned (fsync'd + renamed)
        i += 1


@pytest.mark.slow
def test_sigkill_during_writes_never_loses_acknowledged_data(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "store.json"
    rng = random.Random(1234)
    acknowledged: set[str] = set()
    killed_mid_run = 0
    for round_no in range(ROUNDS):
        if round_no % 50 == 0 and path.exists():  # keep the file small so rounds stay fast
            for p in tmp_path.iterdir():
                p.unlink()
            acknowledged.clear()
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_writer, args=(str(path), f"r{round_no}", child_end), daemon=True)
        proc.start()
        child_end.close()
        assert parent_end.poll(10), "writer did not start"
        assert parent_end.recv() == "ready"
        time.sleep(rng.uniform(0.0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        while parent_end.poll():
            try:
                acknowledged.add(parent_end.recv())
            except EOFError:
                break
        killed_mid_run += 1
        parent_end.close()

        if not path.exists():  # killed before the very first write finished
            assert not acknowledged
            continue
        json.loads(path.read_text())  # whole, valid JSON (never half a file)
        stored = {d["sku"] for d in open_db(path, read_only=True).table("products").all()}
        missing = acknowledged - stored
        assert not missing, f"round {round_no}: acknowledged writes lost: {sorted(missing)[:5]}"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".store.json.") and p.suffix == ".tmp"]
        for name in leftovers:  # a temp file from the killed write may remain; it is never read
            (tmp_path / name).unlink()
    assert killed_mid_run == ROUNDS
    assert acknowledged  # the writer really was writing
