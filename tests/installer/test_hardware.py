"""`smartshelf doctor --hardware`: the installer's checklist, run against temp folders, fake
commands and gpiozero's MockFactory (what this machine lacks is reported, not crashed on)."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest

from smartshelf.installer import doctor, hardware
from smartshelf.installer.doctor import CheckResult, make_context
from smartshelf.installer.hardware import HardwareContext, run_hardware_checks

ROOT = Path(__file__).resolve().parents[2]
FRAMES = ROOT / "device" / "demo" / "frames"


def hw_for(tmp_path: Path, body: str = "", *, pin_factory=None, **kw) -> HardwareContext:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(f'[shelf]\ndata_dir = "{data}"\n[camera]\ntype = "replay"\nsource = "{FRAMES}"\n' + body)
    base = make_context(
        path,
        explicit=True,
        timesync_flag=tmp_path / "synchronized",
        timedatectl=None,
        pin_factory=pin_factory,
    )
    sleeps: list[float] = []
    defaults = {
        "blink_s": 0.5,
        "write_mib": 1,
        "drm_dir": tmp_path / "drm",
        "runtime_dirs": tmp_path / "run-user",
        "x11_dir": tmp_path / "x11",
        "thermal_zone": tmp_path / "thermal",
        "vcgencmd": None,
        "sleep": sleeps.append,
    }
    defaults.update(kw)
    hw = HardwareContext(base, **defaults)
    hw.said = sleeps  # type: ignore[assignment]  # the test reads the blink times back
    return hw


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_names_match_the_cli() -> None:
    assert tuple(hardware.HARDWARE_CHECKS) == doctor.HARDWARE_NAMES


def test_camera_grab_drops_the_frame(tmp_path: Path) -> None:
    results = by_name(run_hardware_checks(hw_for(tmp_path), skip={"leds", "sd_card"}))
    assert results["camera_grab"].status == "ok", results["camera_grab"]
    assert "frame discarded" in results["camera_grab"].detail
    assert not any(p.suffix in (".jpg", ".png", ".npy") for p in (tmp_path / "data").rglob("*"))


def test_leds_light_each_slot_in_turn_with_mock_factory(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    hw = hw_for(tmp_path, "[slots]\nA1 = 17\nA2 = 27\n", pin_factory=factory)
    results = hardware.check_leds(hw)
    lines = by_name(results)
    assert set(lines) == {"leds.A1", "leds.A2"}
    for slot, pin in (("A1", 17), ("A2", 27)):
        line = lines[f"leds.{slot}"]
        # the pin went on; on a mock nothing real lit, and the line says so (a warning, not ok)
        assert line.status == "warn" and f"GPIO{pin} went on" in line.detail and "MockFactory" in line.detail
        assert factory.pin(pin).state == 0  # back off afterwards
    assert hw.said == [0.5, 0.5]  # one blink per slot, in turn


def test_led_that_cannot_open_fails_its_own_line(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory

    # a plain MockPin cannot do PWM: the PWM LED of that slot fails, the others still run
    hw = hw_for(tmp_path, "[slots]\nA1 = 17\n", pin_factory=MockFactory())
    results = by_name(hardware.check_leds(hw))
    assert results["leds.A1"].status == "fail" and "GPIO17" in results["leds.A1"].detail


def test_leds_skipped_without_gpio(tmp_path: Path) -> None:
    results = by_name(run_hardware_checks(hw_for(tmp_path, '[leds]\ntype = "none"\n'), skip={"sd_card"}))
    assert results["leds"].status == "skip"


def test_screen(tmp_path: Path) -> None:
    hw = hw_for(tmp_path)
    assert by_name(run_hardware_checks(hw, skip={"leds"}))["screen"].status == "warn"  # no drm at all
    for name, status in (("card1-HDMI-A-1", "disconnected"), ("card1-HDMI-A-2", "disconnected")):
        (hw.drm_dir / name).mkdir(parents=True)
        (hw.drm_dir / name / "status").write_text(status + "\n")
    with pytest.raises(doctor.Warn, match="no screen connected"):
        hardware.check_screen(hw)
    (hw.drm_dir / "card1-HDMI-A-1" / "status").write_text("connected\n")
    with pytest.raises(doctor.Warn, match="no desktop session"):
        hardware.check_screen(hw)
    (hw.runtime_dirs / "1000").mkdir(parents=True)
    (hw.runtime_dirs / "1000" / "wayland-0").touch()
    assert "HDMI-A-1 connected" in hardware.check_screen(hw)


def test_sd_card_space_and_write_rate(tmp_path: Path) -> None:
    ticks = iter([0.0, 2.0])  # 1 MiB in 2 s: 0.5 MB/s, a worn card
    hw = hw_for(tmp_path, clock=lambda: next(ticks))
    with pytest.raises(doctor.Warn, match=r"writes 0\.5 MB/s.*slow"):
        hardware.check_sd_card(hw)
    assert list((tmp_path / "data").iterdir()) == []  # the probe file is gone
    fast = iter([0.0, 0.01])
    assert "MB/s" in hardware.check_sd_card(hw_for(tmp_path, clock=lambda: next(fast)))


def fake_vcgencmd(tmp_path: Path, temp: str, throttled: str) -> str:
    exe = tmp_path / "vcgencmd"
    exe.write_text(
        f'#!/bin/sh\ncase "$1" in measure_temp) echo "temp={temp}\'C";; get_throttled) echo "throttled={throttled}";; esac\n'
    )
    exe.chmod(0o755)
    return str(exe)


def test_cpu_temperature_and_throttling(tmp_path: Path) -> None:
    ok = hardware.check_cpu(hw_for(tmp_path, vcgencmd=fake_vcgencmd(tmp_path, "47.2", "0x0")))
    assert "47.2 C" in ok and "no under-voltage" in ok
    with pytest.raises(doctor.Warn) as under:
        hardware.check_cpu(hw_for(tmp_path, vcgencmd=fake_vcgencmd(tmp_path, "51.0", "0x50005")))
    assert "under-voltage now" in under.value.detail and "throttling has occurred" in under.value.detail
    assert "power supply" in under.value.fix
    with pytest.raises(doctor.Fail, match="82.0 C"):
        hardware.check_cpu(hw_for(tmp_path, vcgencmd=fake_vcgencmd(tmp_path, "82.0", "0x0")))


def test_cpu_without_vcgencmd(tmp_path: Path) -> None:
    hw = hw_for(tmp_path)
    with pytest.raises(doctor.Skipped, match="no vcgencmd"):
        hardware.check_cpu(hw)
    hw.thermal_zone.write_text("55000\n")
    assert "55.0 C" in hardware.check_cpu(hw) and "throttling flags unknown" in hardware.check_cpu(hw)


def test_cli_hardware_reports_what_is_absent_and_what_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real CLI on this machine, through gpiozero's MockFactory (GPIOZERO_PIN_FACTORY=mock)."""
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[shelf]\ndata_dir = "{data}"\n[camera]\ntype = "opencv"\nsource = "{tmp_path / "none.mp4"}"\n'
        "[slots]\nA1 = 17\n"
    )
    parser = argparse.ArgumentParser()
    doctor.register(parser.add_subparsers())
    args = parser.parse_args(
        ["doctor", "--hardware", "--blink", "0", "--config", str(config), "--skip", "admin_port"]
    )
    out = io.StringIO()
    code = doctor.run(args, out=out)
    text = out.getvalue()
    assert code == 1  # no camera here
    for name in doctor.HARDWARE_NAMES:
        assert f" {name}" in text, name
    assert "FAIL camera_grab" in text and "MockFactory: no real LED lit" in text
    assert "\nto fix:\n" in text
    # the checklist replaces the self-check's camera/gpio/time_sync/data_dir lines
    assert "FAIL camera " not in text and " gpio " not in text and " time_sync " not in text
    assert not [p for p in data.iterdir() if p.name.startswith(".doctor")]

    args = parser.parse_args(["doctor", "--hardware", "--json", "--blink", "0", "--config", str(config)])
    out = io.StringIO()
    doctor.run(args, out=out)
    names = [c["name"] for c in json.loads(out.getvalue())["checks"]]
    assert "sd_card" in names and "cpu" in names


def test_gpio_without_any_backend_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """gpiozero's "Unable to load any default pin factory!" alone does not help an installer."""
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-backend")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(doctor.Fail) as failed:
        doctor.default_pin_factory()
    assert "no-such-backend" in failed.value.detail or "Unable" in failed.value.detail
    assert os.getcwd() == str(tmp_path)


def test_gpio_check_survives_a_working_directory_it_cannot_reenter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`sudo -u smartshelf smartshelf doctor` run from the installer's home, which is 0700 on Trixie:
    the service user cannot chdir back into it (found by the arm64 stage)."""
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    real_chdir = os.chdir

    def chdir(path: str | os.PathLike[str]) -> None:
        if Path(path) == home:
            raise PermissionError(13, "Permission denied", str(path))
        real_chdir(path)

    monkeypatch.setattr(os, "chdir", chdir)
    factory = doctor.default_pin_factory()
    assert type(factory).__name__ == "MockFactory"
    assert os.getcwd() == "/"
