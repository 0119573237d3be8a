"""`smartshelf doctor --hardware`: the checklist an installer runs on the Pi itself.

Beyond the self-check, each of these touches the hardware and prints what to fix:

* ``camera_grab``: opens the camera and grabs one frame, which is dropped at once (never kept,
  never written);
* ``leds``: lights each slot's LED in turn (``blink_s`` each), through gpiozero, so the installer
  can watch the shelf; with gpiozero's ``MockFactory`` (``GPIOZERO_PIN_FACTORY=mock``) it checks
  the pins went high and says no real LED was lit;
* ``screen``: a display connected (``/sys/class/drm/*/status``) and a desktop session to show the
  kiosk on (a Wayland socket or X11 display);
* ``clock``: the clock is synchronised (as doctor's ``time_sync``);
* ``sd_card``: free space in the data dir and its sustained write rate (``write_mib`` written with
  fsync, then removed);
* ``cpu``: temperature and the firmware's throttling flags (``vcgencmd measure_temp`` /
  ``get_throttled``; the kernel's thermal zone where vcgencmd is absent).

Every path and command is in :class:`HardwareContext`, so the tests run the real checks against
temp folders, fake commands and gpiozero's MockFactory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartshelf.installer import doctor
from smartshelf.installer.doctor import CheckResult, Context, Fail, Skipped, Warn

#: Below this sustained write rate the SD card is worn or slow (an A1 card writes > 10 MB/s).
MIN_WRITE_MB_S = 2.0
WARN_TEMP_C = 70.0
FAIL_TEMP_C = 80.0
#: vcgencmd get_throttled bits (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "ARM frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


@dataclass
class HardwareContext:
    """What the hardware checks touch; all of it replaceable in tests."""

    base: Context
    blink_s: float = 1.0
    write_mib: int = 8
    drm_dir: Path = Path("/sys/class/drm")
    runtime_dirs: Path = Path("/run/user")
    x11_dir: Path = Path("/tmp/.X11-unix")
    thermal_zone: Path = Path("/sys/class/thermal/thermal_zone0/temp")
    vcgencmd: str | None = "vcgencmd"
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    said: list[str] = field(default_factory=list)


def check_camera_grab(hw: HardwareContext) -> str:
    # doctor's camera check opens the camera, reads one frame into a local and lets it go.
    return doctor.check_camera(hw.base) + " (frame discarded)"


def check_leds(hw: HardwareContext) -> list[CheckResult]:
    leds = hw.base.config.leds
    if leds.type != "gpio":
        raise Skipped(f"leds.type = {leds.type!r}: no LEDs to blink")
    if doctor._device_status(hw.base.config) is not None:
        raise Skipped(
            "the device service holds the LED pins: sudo systemctl stop smartshelf-device, then again"
        )
    factory = hw.base.pin_factory or doctor.default_pin_factory()
    mock = type(factory).__name__.startswith("Mock")
    pins = doctor._slot_pins(hw.base.config)
    if not pins:
        raise Warn("no slot pins configured: nothing to blink", "map slots to pins on the admin page (Slots)")
    from device.display import create_indicator

    results = []
    for slot, pin in sorted(pins.items()):
        name = f"leds.{slot}"
        try:
            indicator = create_indicator(leds, {slot: pin}, pin_factory=factory)
            try:
                indicator.show([slot])
                lit = _pin_is_on(factory, pin, leds.active_high) if mock else None
                hw.sleep(hw.blink_s)
                indicator.idle()
            finally:
                indicator.close()
        except Exception as exc:  # noqa: BLE001 - one failed line per slot
            results.append(
                CheckResult(
                    name,
                    "fail",
                    f"slot {slot}: GPIO{pin}: {type(exc).__name__}: {exc}",
                    "is the pin used twice or by another program? the user must be in group gpio",
                )
            )
            continue
        if mock:
            status = "warn" if lit else "fail"
            detail = f"slot {slot}: GPIO{pin} {'went on' if lit else 'did NOT go on'} ({type(factory).__name__}: no real LED lit)"
            results.append(
                CheckResult(name, status, detail, "run on the Pi with its real GPIO to see the LEDs")
            )
        else:
            results.append(
                CheckResult(
                    name,
                    "ok",
                    f"slot {slot}: GPIO{pin} lit for {hw.blink_s:g} s -- did that slot's LED light?",
                    "",
                )
            )
    if not mock and results:
        results.append(
            CheckResult(
                "leds",
                "ok",
                f"{len(pins)} slot LED(s) lit in turn; one that stayed dark: check its wiring, resistor and "
                "polarity (leds.active_high), and that the slot's pin is right on the admin page",
            )
        )
    return results


def _pin_is_on(factory: Any, pin: int, active_high: bool) -> bool:
    state = factory.pin(pin).state
    return bool(state) if active_high else not state


def check_screen(hw: HardwareContext) -> str:
    if not hw.drm_dir.is_dir():
        raise Warn(f"no display hardware found ({hw.drm_dir} missing)", "connect the screen and reboot")
    connectors = sorted(p for p in hw.drm_dir.iterdir() if (p / "status").is_file())
    connected = [
        p.name.split("-", 1)[-1] for p in connectors if (p / "status").read_text().strip() == "connected"
    ]
    if not connected:
        names = ", ".join(p.name.split("-", 1)[-1] for p in connectors) or "none"
        raise Warn(
            f"no screen connected (connectors: {names})",
            "check the screen's cable and power (Pi 5: the HDMI port next to the USB-C power), then reboot",
        )
    sessions = sorted(str(p) for p in hw.runtime_dirs.glob("*/wayland-[0-9]"))
    if hw.x11_dir.is_dir():
        sessions += sorted(str(p) for p in hw.x11_dir.glob("X[0-9]"))
    if not sessions:
        raise Warn(
            f"screen {', '.join(connected)} connected, but no desktop session runs to show the kiosk on",
            "raspi-config > System > Boot / Auto login: desktop auto-login; then sudo ./setup.sh again",
        )
    return f"screen {', '.join(connected)} connected; desktop session {sessions[0]}"


def check_clock(hw: HardwareContext) -> str:
    return doctor.check_time_sync(hw.base)


def check_sd_card(hw: HardwareContext) -> str:
    text = doctor.check_data_dir(hw.base)  # exists, writable, free space
    data_dir = hw.base.config.data_dir
    probe = data_dir / f".doctor-write-{os.getpid()}"
    chunk = os.urandom(1 << 20)
    start = hw.clock()
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(hw.write_mib):
                os.write(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        elapsed = max(hw.clock() - start, 1e-6)
    except OSError as exc:
        raise Fail(f"writing {hw.write_mib} MiB to {data_dir} failed: {exc}", "replace the SD card") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    rate = hw.write_mib * (1 << 20) / elapsed / 1e6
    text += f"; writes {rate:.1f} MB/s ({hw.write_mib} MiB with fsync)"
    if rate < MIN_WRITE_MB_S:
        raise Warn(text + " (slow)", "a slow or worn SD card: use an A1/A2-rated card or an SSD")
    return text


def check_cpu(hw: HardwareContext) -> str:
    exe = shutil.which(hw.vcgencmd) if hw.vcgencmd else None
    if exe is None:
        try:
            temp = int(hw.thermal_zone.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            raise Skipped(
                "no vcgencmd and no thermal zone: not Raspberry Pi OS (temperature and throttling unknown)"
            ) from None
        _judge_temp(temp, "no vcgencmd: throttling flags unknown")
        return f"CPU {temp:.1f} C (thermal zone; no vcgencmd: throttling flags unknown)"
    temp_out = _run(exe, "measure_temp")  # temp=47.2'C
    throttled_out = _run(exe, "get_throttled")  # throttled=0x0
    try:
        temp = float(temp_out.split("=", 1)[1].split("'", 1)[0])
        flags = int(throttled_out.split("=", 1)[1], 16)
    except (IndexError, ValueError):
        raise Warn(
            f"vcgencmd said {temp_out!r} / {throttled_out!r}", "sudo usermod -aG video smartshelf"
        ) from None
    text = f"CPU {temp:.1f} C, throttled=0x{flags:x}"
    problems = [why for bit, why in sorted(THROTTLE_BITS.items()) if flags & (1 << bit)]
    if problems:
        fix = []
        if flags & 0x10001:
            fix.append("use the official power supply (Pi 5: 27 W USB-C; Pi 4: 15 W) and a short cable")
        if flags & 0xE000E:
            fix.append("cool the Pi: a heatsink or the active cooler, and air around the case")
        raise Warn(f"{text}: {', '.join(problems)}", "; ".join(fix))
    _judge_temp(temp, text)
    return text + " (no under-voltage, no throttling)"


def _judge_temp(temp: float, text: str) -> None:
    if temp >= FAIL_TEMP_C:
        raise Fail(
            f"CPU at {temp:.1f} C: {text}", "cool the Pi: heatsink or active cooler; is the case closed?"
        )
    if temp >= WARN_TEMP_C:
        raise Warn(f"CPU at {temp:.1f} C (warm): {text}", "add a heatsink or the active cooler")


def _run(exe: str, arg: str) -> str:
    try:
        out = subprocess.run([exe, arg], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return (out.stdout or out.stderr).strip()


HardwareCheck = Callable[[HardwareContext], "str | list[CheckResult]"]
HARDWARE_CHECKS: dict[str, HardwareCheck] = {
    "camera_grab": check_camera_grab,
    "leds": check_leds,
    "screen": check_screen,
    "clock": check_clock,
    "sd_card": check_sd_card,
    "cpu": check_cpu,
}


def run_hardware_checks(
    hw: HardwareContext, skip: set[str] | frozenset[str] = frozenset()
) -> list[CheckResult]:
    results: list[CheckResult] = []
    for name, fn in HARDWARE_CHECKS.items():
        if name in skip:
            results.append(CheckResult(name, "skip", "skipped (--skip)"))
            continue
        results.extend(doctor.run_one(name, lambda _ctx, fn=fn: fn(hw), hw.base))
    return results


def to_fix(results: list[CheckResult]) -> list[str]:
    """The installer's to-do list: one line per warning or failure that has a fix."""
    return [f"{r.name}: {r.fix}" for r in results if r.status in ("warn", "fail") and r.fix]
