"""Cameras and presence sensors through their real code paths: replay folders, gpiozero MockFactory."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from device.sensors import ReconnectingCamera, create_camera, create_presence
from device.sensors.presence import CameraMotion
from device.sensors.replay import ReplayCamera
from smartshelf.core.config import CameraConfig, PresenceConfig
from smartshelf.core.errors import CameraError, HardwareUnavailable


def write_frames(folder: Path, n: int, size: tuple[int, int] = (64, 48)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 10 % 255, np.uint8)
        img[..., 0] = 200  # blue channel in BGR: the camera must hand out RGB
        cv2.imwrite(str(folder / f"f{i:03d}.png"), img)


def test_replay_folder_reads_rgb_in_order_and_loops(tmp_path: Path) -> None:
    write_frames(tmp_path / "f", 3)
    cam = create_camera(CameraConfig(type="replay", source=str(tmp_path / "f"), width=64, height=48, loop=True))
    cam.open()
    frames = [cam.read() for _ in range(4)]
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert frames[0][0, 0, 2] == 200, "BGR file must come out as RGB"
    assert [f[0, 0, 0] for f in frames] == [0, 10, 20, 0]
    cam.close()


def test_replay_without_loop_ends_with_camera_error(tmp_path: Path) -> None:
    write_frames(tmp_path / "f", 2)
    cam = ReplayCamera(tmp_path / "f", loop=False)
    cam.open()
    cam.read(), cam.read()
    with pytest.raises(CameraError, match="end of replay"):
        cam.read()


def test_replay_video_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    cam = ReplayCamera(path, loop=True)
    cam.open()
    assert len([cam.read() for _ in range(7)]) == 7
    cam.close()


def test_missing_source_and_opencv_failure_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera(tmp_path / "nothing").open()
    cam = create_camera(CameraConfig(type="opencv", source=str(tmp_path / "no.mp4")))
    with pytest.raises(HardwareUnavailable, match="camera.source"):
        cam.open()


def test_picamera2_backend_explains_the_fix_off_a_pi() -> None:
    pytest.importorskip("gpiozero")
    try:
        import picamera2  # noqa: F401
    except ImportError:
        cam = create_camera(CameraConfig(type="picamera2"))
        with pytest.raises(HardwareUnavailable, match="python3-picamera2"):
            cam.open()
    else:  # pragma: no cover - on a Pi
        pytest.skip("picamera2 is installed: this is a Pi")


def test_lost_camera_is_reopened_with_backoff(tmp_path: Path) -> None:
    """A replay source that fails mid-way: frames stop, the loop gets None, then the camera comes back."""
    folder = tmp_path / "f"
    write_frames(folder, 3)
    now = [0.0]
    cam = ReconnectingCamera(ReplayCamera(folder, loop=True), backoff_s=1.0, backoff_max_s=4.0, clock=lambda: now[0])
    assert cam.read() is not None and cam.state == "ok"
    shutil.rmtree(folder)  # the camera goes away mid-stream
    results = [cam.read() for _ in range(3)]
    assert cam.read() is None and cam.state == "lost"
    assert None in results
    failures_before = cam.failures
    for _ in range(5):  # no retry storm while the backoff runs
        cam.read()
    assert cam.failures == failures_before
    now[0] += 1.1  # retry: still gone, backoff doubles
    assert cam.read() is None and cam.failures == failures_before + 1
    write_frames(folder, 3)  # plugged back in
    now[0] += 1.0
    assert cam.read() is None, "still inside the doubled backoff"
    now[0] += 1.5
    assert cam.read() is not None and cam.state == "ok" and cam.failures == 0


def test_pir_presence_with_mock_factory() -> None:
    factory = MockFactory()
    sensor = create_presence(PresenceConfig(type="pir", pin=4, hold_s=1.0), pin_factory=factory)
    pin = factory.pin(4)
    assert not sensor.present(None, 0.0)
    pin.drive_high()
    assert sensor.sensor.wait_for_motion(timeout=2), "gpiozero samples the pin in its own thread"
    assert sensor.present(None, 1.0)
    pin.drive_low()
    assert sensor.sensor.wait_for_no_motion(timeout=2)
    assert sensor.present(None, 1.9), "held for hold_s"
    assert not sensor.present(None, 2.5)
    sensor.close()


@pytest.mark.filterwarnings("ignore::gpiozero.PWMSoftwareFallback")
@pytest.mark.parametrize(("echo_time", "expected"), [(0.002, True), (0.012, False)])
def test_ultrasonic_presence_with_mock_factory(echo_time: float, expected: bool) -> None:
    """MockTriggerPin echoes like an HC-SR04: 2 ms is ~0.34 m (present), 12 ms is ~2 m (not).

    A loaded machine only lengthens an echo (a later wake-up), so the first partial readings of the near
    case can read far: it waits for the median of gpiozero's readings to come close; the far case
    cannot read near however loaded the machine is.
    """
    from gpiozero.pins.mock import MockTriggerPin

    factory = MockFactory()
    echo = factory.pin(24)
    factory.pin(23, pin_class=MockTriggerPin, echo_pin=echo, echo_time=echo_time)
    cfg = PresenceConfig(type="ultrasonic", trigger_pin=23, echo_pin=24, max_distance_m=1.0, hold_s=0.0)
    sensor = create_presence(cfg, pin_factory=factory)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sensor.sensor.distance <= 0.01:
            time.sleep(0.05)  # the first echo
        while expected and time.monotonic() < deadline and not sensor.present(None, 1.0):
            time.sleep(0.05)  # the median of the readings so far comes under max_distance_m
        assert sensor.present(None, 1.0) is expected
    finally:
        sensor.close()


def test_ultrasonic_without_echo_is_not_presence() -> None:
    factory = MockFactory()
    cfg = PresenceConfig(type="ultrasonic", trigger_pin=23, echo_pin=24, max_distance_m=1.0, hold_s=0.0)
    with pytest.warns(Warning):
        sensor = create_presence(cfg, pin_factory=factory)
    try:
        assert not sensor.present(None, 0.0)
    finally:
        sensor.close()


def test_camera_motion_sees_change_and_holds() -> None:
    motion = CameraMotion(threshold=0.02, hold_s=1.0)
    still = np.full((120, 160, 3), 100, np.uint8)
    moved = still.copy()
    moved[20:100, 40:120] = 250
    assert not motion.present(still, 0.0)
    assert not motion.present(still, 0.1)
    assert motion.present(moved, 0.2)
    assert motion.present(moved, 0.9), "held"
    assert not motion.present(moved, 1.5)


def test_picamera2_eperm_points_at_the_system_call_filter(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import sys
    import types

    fake = types.ModuleType("picamera2")

    class Picamera2:
        def __init__(self) -> None:
            raise RuntimeError("Failed to start camera: Operation not permitted")

    fake.Picamera2 = Picamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    cam = create_camera(CameraConfig(type="picamera2"))
    with caplog.at_level(logging.ERROR), pytest.raises(HardwareUnavailable, match="SystemCallFilter"):
        cam.open()
    assert any("journalctl -k" in r.getMessage() for r in caplog.records)


def test_is_eperm_follows_the_cause_chain() -> None:
    from smartshelf.core.errors import is_eperm

    try:
        try:
            raise PermissionError(1, "nope")
        except PermissionError as inner:
            raise HardwareUnavailable("LED could not be opened") from inner
    except HardwareUnavailable as outer:
        assert is_eperm(outer)
    assert not is_eperm(PermissionError(13, "Permission denied"))  # EACCES: the groups, not the filter
    assert not is_eperm(None)


@pytest.mark.parametrize("stride", [64, 128])
def test_picamera_lores_yuv420_to_rgb_with_padded_rows(stride: int) -> None:
    """picamera2's lores buffer is I420 with rows padded to a stride; the colours must survive."""
    from device.sensors.picamera import lores_to_rgb

    h, w = 16, 64
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (200, 40, 40)
    rgb[:, w // 2 :] = (30, 60, 220)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # (h * 3/2, w): Y, then U and V packed two rows per row
    y, u, v = i420[:h], i420[h : h + h // 4].reshape(h // 2, w // 2), i420[h + h // 4 :].reshape(h // 2, w // 2)
    buf = np.zeros((h * 3 // 2, stride), np.uint8)
    buf[:h, :w] = y
    pad_u = np.zeros((h // 2, stride // 2), np.uint8)
    pad_u[:, : w // 2] = u
    pad_v = np.zeros((h // 2, stride // 2), np.uint8)
    pad_v[:, : w // 2] = v
    buf[h : h + h // 4] = pad_u.reshape(h // 4, stride)
    buf[h + h // 4 :] = pad_v.reshape(h // 4, stride)
    out = lores_to_rgb(buf, w, h)
    assert out.shape == (h, w, 3)
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 6


def test_replay_two_streams_gives_a_capture(tmp_path: Path) -> None:
    from smartshelf.core.types import Capture

    image = np.zeros((960, 1280, 3), np.uint8)
    image[100:300, 200:400] = 255
    cv2.imwrite(str(tmp_path / "f.png"), image)
    camera = ReplayCamera(tmp_path, loop=False, size=(640, 480), full_size=(1280, 960))
    camera.open()
    capture = camera.read()
    assert isinstance(capture, Capture)
    assert capture.view.shape == (480, 640, 3) and capture.full is not None and capture.full.shape == (960, 1280, 3)
    assert capture.scale == 2.0 and capture.crop_frame is capture.full
    with pytest.raises(CameraError, match="end of replay"):
        camera.read()
    assert camera.ended


def test_replay_two_streams_of_a_small_source_is_one_stream(tmp_path: Path) -> None:
    """Frames no larger than the detection view have nothing more to give: plain frames, no upscaling."""
    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((480, 640, 3), np.uint8))
    camera = ReplayCamera(tmp_path, loop=False, size=(640, 480), full_size=(1280, 960))
    camera.open()
    frame = camera.read()
    assert isinstance(frame, np.ndarray) and frame.shape == (480, 640, 3)
