"""`smartshelf replay SOURCE`: recorded footage through the real loop, one line per decision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.demo.store import FRAMES_DIR
from smartshelf.cli import main

pytestmark = pytest.mark.integration


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    rc = main(["replay", *args])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rc, rows, err


def test_folder_gives_decisions_in_the_demo_format_with_the_frame(capsys: pytest.CaptureFixture[str]) -> None:
    rc, rows, _ = replay(capsys, str(FRAMES_DIR), "--json", "--fast")
    assert rc == 0
    assert rows, "the demo shopper gets at least one decision"
    keys = {"frame", "time", "visit", "segment", "confidence", "reason", "items", "slots", "timings_ms"}
    assert all(set(r) == keys for r in rows)
    frames = [r["frame"] for r in rows]
    assert frames == sorted(frames) and all(0 <= f < 36 for f in frames)
    # time is frame time at the camera's 10 fps, so a decision's time names its frame too
    assert all(r["time"] == pytest.approx(r["frame"] / 10.0) for r in rows)
    assert any(r["reason"] == "personalised" for r in rows)


def test_frame_is_the_index_in_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ten empty frames in front of the clip move every decision by exactly ten frames."""
    _, plain, _ = replay(capsys, str(FRAMES_DIR), "--json", "--fast")
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    blank = np.full((480, 640, 3), 90, np.uint8)
    for i in range(10):
        cv2.imwrite(str(shifted / f"a{i:03d}.png"), blank)
    for path in sorted(FRAMES_DIR.glob("*.jpg")):
        shutil.copyfile(path, shifted / f"b{path.name}")
    rc, rows, _ = replay(capsys, str(shifted), "--json", "--fast")
    assert rc == 0
    assert [r["frame"] for r in rows] == [r["frame"] + 10 for r in plain]
    assert [r["segment"] for r in rows] == [r["segment"] for r in plain]


def test_video_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (640, 480))
    assert writer.isOpened()
    for path in sorted(FRAMES_DIR.glob("*.jpg")):
        writer.write(cv2.imread(str(path)))
    writer.release()
    rc, rows, _ = replay(capsys, str(video), "--json", "--fast")
    assert rc == 0 and rows
    # the video's own 5 fps sets frame time: a decision at frame n is at n / 5 s
    assert all(r["time"] == pytest.approx(r["frame"] / 5.0) for r in rows)
    assert all(0 <= r["frame"] < 36 for r in rows)


def test_two_streams_replay_full_resolution_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Full-resolution frames: detection on a 640x480 copy, the face cropped from the 1280x960 frame."""
    big = tmp_path / "big"
    big.mkdir()
    for path in sorted(FRAMES_DIR.glob("*.jpg")):
        image = cv2.imread(str(path))
        cv2.imwrite(str(big / f"{path.stem}.png"), cv2.resize(image, (1280, 960), interpolation=cv2.INTER_CUBIC))
    config = tmp_path / "two.toml"
    data = tmp_path / "data"
    from device.demo.store import prepare_demo

    prepare_demo(data)
    config.write_text(f'[shelf]\ndata_dir = "{data}"\n[camera]\nfull_width = 1280\nfull_height = 960\n'
                      '[presence]\ntype = "always"\n')
    rc, rows, _ = replay(capsys, str(big), "--json", "--fast", "--config", str(config))
    assert rc == 0
    assert any(r["reason"] == "personalised" for r in rows)
    assert not (data / "events").exists() or not any((data / "events").iterdir()), "replay records no events"


def test_bad_sources_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = replay(capsys, str(tmp_path / "missing"), "--fast")
    assert rc == 1 and "missing: replay source does not exist" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = replay(capsys, str(empty), "--fast")
    assert rc == 1 and "has no images" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in sorted(FRAMES_DIR.glob("*.jpg"))[:4]:
        shutil.copyfile(path, broken / path.name)
    (broken / "frame_002.jpg").write_bytes(b"not a jpeg")
    rc, _, err = replay(capsys, str(broken), "--fast")
    assert rc == 1 and "frame 2" in err and "frame_002.jpg" in err
    nodata = tmp_path / "nodata.toml"
    nodata.write_text(f'[shelf]\ndata_dir = "{tmp_path / "nowhere"}"\n')
    rc, _, err = replay(capsys, str(FRAMES_DIR), "--fast", "--config", str(nodata))
    assert rc == 1 and "shelf.data_dir" in err and not (tmp_path / "nowhere").exists()
