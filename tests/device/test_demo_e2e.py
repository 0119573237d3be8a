"""End to end on the bundled demo with the real committed models, and the privacy guarantees."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.app import decision_json
from device.demo.store import IMAGES_DIR, prepare_demo
from device.display import RecordingIndicator
from device.events import EVENT_KEYS
from device.shelf import build_shelf

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"\x93NUMPY", b"PK\x03\x04")


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartshelf.cli", "demo", "--json", "--fast", "--port", "0", *args],
        check=False, capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, **(env or {})},
    )


def test_demo_json_finds_a_face_and_lights_slots(tmp_path: Path) -> None:
    result = run_demo("--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"no decision: {result.stderr[-2000:]}"
    for line in lines:
        assert {"segment", "confidence", "items", "slots", "timings_ms"} <= set(line)
        assert line["items"] and line["slots"], "a face was found and slots were lit"
        assert line["segment"] == "generic" or line["segment"].split("/")[0] in ("female", "male")
        assert {"capture", "detect", "classify", "recommend", "display"} <= set(line["timings_ms"])
    # Sold-out demo products (every fifth shelf item) are never shown.
    sold_out = {"A1": None}  # placeholder to keep the mapping explicit below
    del sold_out
    store = json.loads((tmp_path / "data" / "store.json").read_text())
    empty = {p["sku"] for p in store["products"].values() if p["stock"] <= 0}
    assert empty and not empty & {sku for line in lines for sku in line["items"]}


@pytest.mark.slow
def test_demo_frames_argument_loops_the_clip() -> None:
    result = run_demo("--frames", "80")
    assert result.returncode == 0, result.stderr
    visits = {json.loads(line)["visit"] for line in result.stdout.splitlines() if line.strip()}
    assert len(visits) >= 2, "the clip replays: the shopper comes back as a new visit"


@pytest.mark.slow
def test_the_loop_writes_no_image_anywhere(tmp_path: Path) -> None:
    """Run the demo with its data dir and TMPDIR watched: no image, array or archive file appears."""
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    result = run_demo("--data-dir", str(data), env={"TMPDIR": str(tmp)})
    assert result.returncode == 0, result.stderr
    written = [p for p in list(data.rglob("*")) + list(tmp.rglob("*")) if p.is_file()]
    assert written, "the demo did write its store, factors and events"
    for path in written:
        if path.suffix == ".npz" and path.name == "factors.npz":
            continue  # the factor file copied from the repo (item vectors, no person data)
        shipped = IMAGES_DIR / path.name
        if path.parent == data / "images" and shipped.is_file() and shipped.read_bytes() == path.read_bytes():
            continue  # a drawn product picture copied from the repo, byte for byte
        head = path.read_bytes()[:8]
        assert not head.startswith(IMAGE_MAGIC), f"{path} looks like an image or array"
    with sqlite3.connect(data / "events.sqlite3") as conn:
        docs = [json.loads(raw) for (raw,) in conn.execute("SELECT doc FROM events")]
    assert docs, "the demo logged its decisions"
    for event in docs:
        assert set(event) <= EVENT_KEYS, f"unexpected keys in an event: {set(event) - EVENT_KEYS}"
        assert len(json.dumps(event)) < 1000


def test_no_frame_is_encoded_or_saved_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cv2.imwrite / imencode and numpy's savers are never called by the running loop."""
    calls: list[str] = []
    for module, name in ((cv2, "imwrite"), (cv2, "imencode"), (np, "save"), (np, "savez"), (np, "savez_compressed")):
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: calls.append(_n))
    frame_time = [0.0]
    config = prepare_demo(tmp_path, kiosk_port=0)
    shelf = build_shelf(config, indicator=RecordingIndicator(), serve_kiosk=False, clock=lambda: frame_time[0])
    decisions = []
    try:
        for _ in range(36):
            decision = shelf.controller.step()
            frame_time[0] += 0.1
            if decision:
                decisions.append(decision_json(decision))
    finally:
        shelf.close()
    assert decisions and not calls, calls
