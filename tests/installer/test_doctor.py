"""`smartshelf doctor`: every check on good and bad inputs, robust to checks that raise."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from smartshelf.core.config import load_config
from smartshelf.installer import doctor
from smartshelf.installer.doctor import CheckResult, Context, make_context, run_checks, run_one
from tools.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
FRAMES = ROOT / "device" / "demo" / "frames"


def write_config(tmp_path: Path, body: str = "") -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(f'[shelf]\nname = "Aisle 3"\ndata_dir = "{data}"\n' + body)
    return path


def ctx_for(tmp_path: Path, body: str = "", **kw) -> Context:
    path = write_config(tmp_path, body)
    base = {"timesync_flag": tmp_path / "synchronized", "timedatectl": None, "camera_timeout_s": 10.0}
    base.update(kw)
    return make_context(path, explicit=True, **base)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def one(name: str, ctx: Context) -> list[CheckResult]:
    return run_one(name, doctor.CHECKS[name], ctx)


# --- config -------------------------------------------------------------------------------------


def test_config_ok_and_bad(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    [r] = one("config", ctx)
    assert r.status == "ok" and "Aisle 3" in r.detail
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nfps = 0\n")
    ctx = make_context(bad, explicit=True)
    [r] = one("config", ctx)
    assert r.status == "fail" and "camera.fps" in r.detail and r.fix


def test_missing_explicit_config_fails(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "nope.toml", explicit=True)
    [r] = one("config", ctx)
    assert r.status == "fail" and "not found" in r.detail


# --- camera -------------------------------------------------------------------------------------


def test_camera_replay_delivers_a_frame(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, f'[camera]\ntype = "replay"\nsource = "{FRAMES}"\n')
    [r] = one("camera", ctx)
    assert r.status == "ok", r
    assert "replay camera delivered a" in r.detail


def test_camera_two_streams_reports_both_sizes(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    big = tmp_path / "big"
    big.mkdir()
    cv2.imwrite(str(big / "f.png"), np.zeros((960, 1280, 3), np.uint8))
    ctx = ctx_for(tmp_path, f'[camera]\ntype = "replay"\nsource = "{big}"\nfull_width = 1280\nfull_height = 960\n')
    [r] = one("camera", ctx)
    assert r.status == "ok", r
    assert "640x480 frame (faces cropped from 1280x960)" in r.detail


# --- range --------------------------------------------------------------------------------------


def test_range_states_distances_and_warns_when_the_shelf_is_deeper(tmp_path: Path) -> None:
    [r] = one("range", ctx_for(tmp_path))  # the defaults: cascade with the search, two streams, 1.5 m
    assert r.status == "ok", r
    assert "faces found up to" in r.detail and "personalised up to" in r.detail
    [r] = one("range", ctx_for(tmp_path, "working_distance_m = 2.0\n"))
    assert r.status == "ok" and "cascade+search detector" in r.detail, r
    [r] = one("range", ctx_for(tmp_path, "working_distance_m = 2.0\n[models]\nsearch = false\n"))
    assert r.status == "warn" and "shoppers at 2 m are not found" in r.detail, r
    assert "models.search = true" in r.fix
    [r] = one("range", ctx_for(tmp_path, "working_distance_m = 2.5\n"))
    assert r.status == "warn" and "models.search = true" not in r.fix, "the search is on already"
    one_stream = '[camera]\nfull_width = 0\nfull_height = 0\n[models]\ndetector = "short_range"\n'
    [r] = one("range", ctx_for(tmp_path, "working_distance_m = 1.5\n" + one_stream))
    assert r.status == "warn" and "shoppers at 1.5 m are" in r.detail
    assert "cascade" in r.fix and "camera.full_width" in r.fix
    [near] = one("range", ctx_for(tmp_path, "working_distance_m = 0.8\n" + one_stream))
    assert near.status == "warn" and "nothing drops the false faces" in near.detail, near
    assert "models.search = false" in near.fix
    [near] = one("range", ctx_for(tmp_path, "working_distance_m = 0.8\n" + one_stream + "search = false\n"))
    assert near.status == "ok", near


def test_camera_failure_is_a_failed_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    ctx = ctx_for(tmp_path, f'[camera]\ntype = "replay"\nsource = "{empty}"\n')
    [r] = one("camera", ctx)
    assert r.status == "fail" and r.detail.startswith("replay camera:") and r.fix


def test_camera_read_from_running_device_status(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    status = {
        "updated_at": time.time(),
        "pid": os.getpid(),
        "camera": {"type": "picamera2", "state": "ok", "fps": 9.5},
    }
    (ctx.config.runtime_dir / "status.json").write_text(json.dumps(status))
    [r] = one("camera", ctx)
    assert r.status == "ok" and "running device" in r.detail
    status["camera"] = {"type": "picamera2", "state": "lost", "error": "no frames"}
    (ctx.config.runtime_dir / "status.json").write_text(json.dumps(status))
    [r] = one("camera", ctx)
    assert r.status == "fail" and "no frames" in r.detail
    # a stale status file is ignored (then the real camera is tried: picamera2 is absent here)
    status["updated_at"] = time.time() - 3600
    (ctx.config.runtime_dir / "status.json").write_text(json.dumps(status))
    [r] = one("camera", ctx)
    assert "running device" not in r.detail


# --- gpio ---------------------------------------------------------------------------------------


def test_gpio_checks_each_slot_pin_with_mock_factory(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    ctx = ctx_for(tmp_path, "[slots]\nA1 = 17\nA2 = 27\n", pin_factory=factory)
    results = by_name(one("gpio", ctx))
    assert results["gpio"].status == "ok" and "MockFactory" in results["gpio"].detail
    assert results["gpio.A1"].status == "ok" and "GPIO17" in results["gpio.A1"].detail
    assert results["gpio.A2"].status == "ok" and "GPIO27" in results["gpio.A2"].detail


def test_gpio_uses_the_admin_slot_table(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    ctx = ctx_for(tmp_path, "[slots]\nA1 = 17\n", pin_factory=MockFactory(pin_class=MockPWMPin))
    store = {"slots": {"1": {"slot": "B7", "pin": 22, "label": None}, "2": {"slot": "B8", "pin": None}}}
    (ctx.config.data_dir / "store.json").write_text(json.dumps(store))
    names = set(by_name(one("gpio", ctx)))
    assert names == {"gpio", "gpio.B7"}


def test_gpio_bad_pin_fails_its_own_line(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    class Broken(MockFactory):
        def pin(self, spec, **kwargs):  # type: ignore[override]
            if str(spec).endswith("27"):
                raise OSError("GPIO busy")
            return super().pin(spec, **kwargs)

    ctx = ctx_for(tmp_path, "[slots]\nA1 = 17\nA2 = 27\n", pin_factory=Broken(pin_class=MockPWMPin))
    results = by_name(one("gpio", ctx))
    assert results["gpio.A1"].status == "ok"
    assert results["gpio.A2"].status == "fail" and "GPIO busy" in results["gpio.A2"].detail


def test_gpio_skipped_without_gpio_leds(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, '[leds]\ntype = "terminal"\n')
    [r] = one("gpio", ctx)
    assert r.status == "skip"


def test_gpio_without_slots_warns(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory

    ctx = ctx_for(tmp_path, pin_factory=MockFactory())
    [r] = one("gpio", ctx)
    assert r.status == "warn" and "no slot pins" in r.detail


# --- models and factors -------------------------------------------------------------------------


def test_models_verified_against_manifest(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("manifest.json", "face_detection_short_range.tflite", "age_gender_int8.tflite"):
        shutil.copy2(ROOT / "models" / name, models / name)
    ctx = ctx_for(tmp_path, f'[models]\ndir = "{models}"\n')
    results = by_name(one("models", ctx))
    assert results["models.detector"].status == "ok"
    assert results["models.age_gender"].status == "ok"
    with open(models / "age_gender_int8.tflite", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    results = by_name(one("models", ctx))
    assert results["models.age_gender"].status == "fail"
    assert "does not match" in results["models.age_gender"].detail


def test_factor_file(tmp_path: Path) -> None:
    from tools.recommender.synthetic import make_model

    ctx = ctx_for(tmp_path)
    [r] = one("factors", ctx)
    assert r.status == "warn" and "not found" in r.detail and r.fix, "a fresh shelf runs on its catalogue prior"
    make_model([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]).save(ctx.config.factors_path)
    [r] = one("factors", ctx)
    assert r.status == "ok" and "3 items" in r.detail
    ctx.config.factors_path.write_bytes(b"not a zip file")
    [r] = one("factors", ctx)
    assert r.status == "fail"


def test_shelf_says_in_shop_words_what_cannot_be_suggested(tmp_path: Path) -> None:
    from smartshelf.core.storage import atomic_write_json

    ctx = ctx_for(tmp_path)
    [r] = one("shelf", ctx)
    assert r.status == "warn" and "no products" in r.detail
    store = ctx.config.data_dir / "store.json"
    atomic_write_json(store, {"products": {
        "1": {"sku": "DRESS-1", "name": "Summer Dress", "stock": 0, "slot": "A1"},
        "2": {"sku": "CAP-1", "name": "Cap", "stock": 3, "slot": "Z9"},
    }, "slots": {"1": {"slot": "A1", "pin": 5}, "2": {"slot": "A2", "pin": 6}}})
    [r] = one("shelf", ctx)
    assert r.status == "warn" and r.fix
    assert "cannot suggest anything" in r.detail
    assert "Slot A1: “Summer Dress” (DRESS-1) is out of stock" in r.detail
    assert "slot Z9, which this shelf does not have" in r.detail
    atomic_write_json(store, {"products": {
        "1": {"sku": "DRESS-1", "name": "Summer Dress", "stock": 2, "slot": "A1"},
    }, "slots": {"1": {"slot": "A1", "pin": 5}}})
    [r] = one("shelf", ctx)
    assert r.status == "ok" and r.detail.startswith("1 product(s) on slots can be suggested")
    assert "from their details" in r.detail


# --- data dir, clock, port ----------------------------------------------------------------------


def test_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = ctx_for(tmp_path)
    [r] = one("data_dir", ctx)
    assert r.status == "ok" and "MiB free" in r.detail
    assert not list(ctx.config.data_dir.iterdir())  # the probe file is gone
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage._replace(free=10 * 2**20))
    [r] = one("data_dir", ctx)
    assert r.status == "fail" and "10 MiB free" in r.detail
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage._replace(free=200 * 2**20))
    [r] = one("data_dir", ctx)
    assert r.status == "warn"
    shutil.rmtree(ctx.config.data_dir)
    [r] = one("data_dir", ctx)
    assert r.status == "fail" and "does not exist" in r.detail


def test_time_sync(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    [r] = one("time_sync", ctx)
    assert r.status == "warn"  # no flag, no timedatectl
    ctx.timesync_flag.write_text("")
    [r] = one("time_sync", ctx)
    assert r.status == "ok"
    ctx.timesync_flag.unlink()
    fake = tmp_path / "timedatectl"
    fake.write_text("#!/bin/sh\necho no\n")
    fake.chmod(0o755)
    ctx.timedatectl = str(fake)
    [r] = one("time_sync", ctx)
    assert r.status == "warn" and "the shelf's clock is not set" in r.detail and "time server" in r.fix
    fake.write_text("#!/bin/sh\necho yes\n")
    [r] = one("time_sync", ctx)
    assert r.status == "ok"


def test_admin_port(tmp_path: Path) -> None:
    port = free_port()
    ctx = ctx_for(tmp_path, f'[admin]\nhost = "127.0.0.1"\nport = {port}\n')
    [r] = one("admin_port", ctx)
    assert r.status == "warn" and "not running" in r.detail
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        [r] = one("admin_port", ctx)
        assert r.status == "ok"
    with socket.socket() as squatter:  # bound, not listening: taken but silent
        squatter.bind(("127.0.0.1", port))
        [r] = one("admin_port", ctx)
        assert r.status == "fail" and "taken" in r.detail


# --- the whole report ---------------------------------------------------------------------------


def test_a_check_that_raises_becomes_a_failed_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Context) -> str:
        raise KeyError("surprise")

    monkeypatch.setitem(doctor.CHECKS, "runtime", boom)
    results = by_name(run_checks(ctx_for(tmp_path), skip=("camera", "gpio")))
    assert results["runtime"].status == "fail" and "KeyError" in results["runtime"].detail
    assert results["camera"].status == "skip"
    assert results["config"].status == "ok"  # the others still ran


def run_cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    doctor.register(parser.add_subparsers())
    args = parser.parse_args(["doctor", *argv])
    out = io.StringIO()
    return doctor.run(args, out=out), out.getvalue()


def test_cli_text_and_json(tmp_path: Path) -> None:
    from tools.recommender.synthetic import make_model

    port = free_port()
    path = write_config(
        tmp_path,
        f'[camera]\ntype = "replay"\nsource = "{FRAMES}"\n[leds]\ntype = "none"\n[admin]\nhost = "127.0.0.1"\nport = {port}\n',
    )
    config = load_config(path)
    config.factors_path.parent.mkdir(parents=True, exist_ok=True)
    config.factors_path.write_bytes(b"not a factor file")
    code, text = run_cli("--config", str(path), "--skip", "time_sync,admin_port")
    assert code == 1  # a corrupt factor file
    assert "FAIL factors" in text and "-- fix:" in text
    assert text.strip().splitlines()[-1].endswith("1 failed, 3 skipped")
    make_model([[1.0, 0.0], [0.0, 1.0]]).save(config.factors_path)
    code, out = run_cli("--config", str(path), "--json", "--skip", "time_sync", "--skip", "admin_port")
    report = json.loads(out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 0 and report["ok"] is True, out
    assert statuses["camera"] == "ok" and statuses["factors"] == "ok" and statuses["gpio"] == "skip"
    assert statuses["models.detector"] == "ok"


def test_cli_rejects_unknown_skip() -> None:
    from smartshelf.core.errors import ConfigError

    with pytest.raises(ConfigError, match="not a check"):
        run_cli("--skip", "camra")
