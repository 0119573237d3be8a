"""`smartshelf run`, `run --check-config` and `analyze` as real processes."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from device.demo.store import FRAMES_DIR, prepare_demo
from tests.helpers import poll_json
from tools.servers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACES = REPO.parent / "shared" / "data" / "faces" / "utkface_crop"


def smartshelf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartshelf.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


def write_config(path: Path, data_dir: Path, port: int, extra: str = "") -> Path:
    path.write_text(
        f"""
[shelf]
name = "Test shelf"
data_dir = "{data_dir}"
[camera]
type = "replay"
source = "{FRAMES_DIR}"
fps = 10.0
[presence]
type = "always"
[leds]
type = "terminal"
[kiosk]
port = {port}
[visit]
leave_after_s = 0.5
{extra}
"""
    )
    return path


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\ntype = 'webcam'\n")
    result = smartshelf("run", "--config", str(bad), "--check-config")
    assert result.returncode == 1
    assert "camera.type" in result.stderr and "bad.toml" in result.stderr
    assert result.stderr.count("\n") == 1, "one line, no traceback"


def test_check_config_refuses_a_corrupt_factor_file_but_not_a_missing_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(tmp_path / "c.toml", data, free_port())
    result = smartshelf("run", "--config", str(config), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "catalogue prior" in result.stderr, "a fresh shelf says how it ranks without a factor file"
    (data / "factors.npz").write_bytes(b"PK\x03\x04 truncated")
    result = smartshelf("run", "--config", str(config), "--check-config")
    assert result.returncode == 1 and "factors.npz" in result.stderr


@pytest.mark.slow
def test_run_refuses_missing_models_and_a_camera_that_cannot_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_demo(data)
    config = write_config(tmp_path / "c.toml", data, free_port(), extra=f'[models]\ndir = "{tmp_path}"\n')
    result = smartshelf("run", "--config", str(config))
    assert result.returncode == 1 and "face_detection_short_range.tflite" in result.stderr
    config = write_config(tmp_path / "c.toml", data, free_port())
    config.write_text(config.read_text().replace('type = "replay"', 'type = "opencv"').replace(str(FRAMES_DIR), str(tmp_path / "missing.mp4")))
    result = smartshelf("run", "--config", str(config))
    assert result.returncode == 1
    assert "camera.source" in result.stderr and "missing.mp4" in result.stderr
    assert [l for l in result.stderr.splitlines() if l.startswith("smartshelf: error")], result.stderr


@pytest.mark.slow
def test_run_serves_decides_pauses_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_demo(data)
    port = free_port()
    config = write_config(tmp_path / "c.toml", data, port)
    run_dir = tmp_path / "run"  # stands for /run/smartshelf (the unit's RuntimeDirectory)
    config.write_text(config.read_text().replace("[camera]", f'runtime_dir = "{run_dir}"\n[camera]', 1))
    assert smartshelf("run", "--config", str(config), "--check-config").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartshelf.cli", "run", "--config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        status = poll_json(base, ("/status",), lambda a: a["/status"].get("decisions"))["/status"]
        assert status.get("decisions"), f"no decision within a minute: {status}"
        assert status["camera"]["state"] == "ok"
        from smartshelf.core.control import HEADER, read_secret

        req = urllib.request.Request(base + "/control/pause", data=b'{"paused": true}', method="POST",
                                     headers={"Content-Type": "application/json", HEADER: read_secret(data)})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["paused"] is True
        with urllib.request.urlopen(base + "/status", timeout=2) as resp:
            assert json.loads(resp.read())["camera"]["state"] == "paused"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["paused"] is True and not (data / "status.json").exists(), "status.json lives in the runtime dir"
    saved = json.loads((data / "paused.json").read_text())
    assert saved["paused"] is True, "the pause survives a reboot (not only in /run)"
    with sqlite3.connect(data / "events.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0, "decisions were logged"


def test_analyze_reports_faces_largest_first() -> None:
    frame = FRAMES_DIR / "frame_020.jpg"
    result = smartshelf("analyze", str(frame), "--json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["image"] == str(frame)
    face = line["faces"][0]
    assert set(face) >= {"box", "score", "gender", "p_female", "age", "age_bracket"}
    assert face["gender"] in ("female", "male") and len(face["box"]) == 4
    areas = [f["box"][2] * f["box"][3] for f in line["faces"]]
    assert areas == sorted(areas, reverse=True)


@pytest.mark.skipif(not FACES.is_dir(), reason="../shared/data/faces is not beside the repo")
def test_analyze_finds_the_face_in_a_200px_crop() -> None:
    images = sorted(FACES.iterdir())[:5]
    result = smartshelf("analyze", *map(str, images), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(lines) == 5
    assert sum(1 for x in lines if x["faces"]) >= 4


def test_analyze_names_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("hello")
    result = smartshelf("analyze", str(bogus), str(FRAMES_DIR / "frame_000.jpg"))
    assert result.returncode == 1
    assert f"{bogus}: not a readable image" in result.stderr
    assert json.loads(result.stdout)["faces"] == [], "the good image is still analysed"


def test_analyze_prints_only_our_lines_on_stderr(tmp_path: Path) -> None:
    """No TFLite ("Created TensorFlow Lite XNNPACK delegate") or OpenCV noise: one line per bad file."""
    result = smartshelf("analyze", str(FRAMES_DIR / "frame_000.jpg"), str(tmp_path / "missing.jpg"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"smartshelf: error: {tmp_path / 'missing.jpg'}: no such file"]


def _listening() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


@pytest.mark.slow
def test_a_taken_port_is_one_line_for_run_and_demo_and_demo_never_moves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prepare_demo(data)
    sock, port = _listening()
    with sock:
        run = smartshelf("run", "--config", str(write_config(tmp_path / "c.toml", data, port)))
        demo = smartshelf("demo", "--port", str(port), "--frames", "3", "--fast")
        debug = smartshelf("--debug", "demo", "--port", str(port), "--frames", "3", "--fast")
    for result in (run, demo):
        errors = [line for line in result.stderr.splitlines() if line.startswith("smartshelf: error:")]
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert errors == [(f"smartshelf: error: the kiosk page cannot listen on 127.0.0.1:{port}: the port is already "
                           "in use (is another smartshelf or another server running?); stop that server or choose "
                           "another port with kiosk.port in the config (demo: --port)")]
    assert "kiosk page:" not in demo.stderr, "the demo did not move to another port"
    assert debug.returncode == 1 and "Traceback" in debug.stderr, "--debug shows the traceback"


STAFF_PRODUCTS = [
    {"sku": "DRESS-1", "name": "Summer Dress", "gender": "female", "price": 3990, "stock": 4, "slot": "A1"},
    {"sku": "SHIRT-1", "name": "Linen Shirt", "gender": "male", "price": 4490, "stock": 4, "slot": "A2"},
    {"sku": "BAG-1", "name": "Canvas Tote Bag", "price": 1990, "stock": 4, "slot": "A3"},
    {"sku": "CAP-1", "name": "Baseball Cap", "gender": "unisex", "price": 1290, "stock": 4, "slot": "A4"},
]


@pytest.mark.slow
def test_products_entered_through_the_api_light_the_shelf_without_a_factor_file(app, tmp_path: Path) -> None:
    """Issue 15 item 1: a store set up through /api/v1/products (no item ids, no factor file) gets picks
    from its own products on the first decisions, not "no_stock"."""
    from admin_web.accounts import AccountStore

    data = Path(app.config["DATA_DIR"])
    token = AccountStore(data).create_token("setup", ["products:read", "products:write"])
    client = app.test_client()
    for product in STAFF_PRODUCTS:
        answer = client.post("/api/v1/products", json=product, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 201, answer.json
    assert not (data / "factors.npz").exists()
    port = free_port()
    config = write_config(tmp_path / "c.toml", data, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartshelf.cli", "run", "--config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    skus = {p["sku"] for p in STAFF_PRODUCTS}
    slots = {p["slot"] for p in STAFF_PRODUCTS}
    try:
        answers = poll_json(base, ("/state", "/status"),
                            lambda a: a["/state"].get("mode") == "picks" or a["/status"].get("decisions", 0) >= 3)
        state, status = answers["/state"], answers["/status"]
        assert state.get("mode") == "picks", f"no picks on the kiosk page within a minute: {state} {status}"
        shown = {item["sku"] for item in state["items"]}
        assert shown and shown <= skus
        assert {item["slot"] for item in state["items"]} <= slots
        assert status["factors"]["in_memory_prior"] is True
        assert status["factors"]["coverage"]["prior"] == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
