"""``smartshelf bench --pi``: the same bench, on a real Raspberry Pi, with the facts that decide
whether its timings mean anything there.

Under emulation (the CI's arm64 stage) nothing about speed can be measured, so the report keeps a
model-cost *estimate* for a Pi 4. On the Pi itself ``--pi`` records the board, the CPU governor,
temperature, clock and the firmware's throttling flags before and after the run (a Pi that
throttled during the bench measured its cooling, not the shelf), and puts the measured model time
next to that estimate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from smartshelf.core.errors import SmartShelfError

MODEL_FILE = Path("/proc/device-tree/model")
GOVERNOR_FILE = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def board_model(path: Path | None = None) -> str | None:
    """The board's name from the device tree (``SMARTSHELF_MODEL_FILE`` overrides), or None."""
    path = path or Path(os.environ.get("SMARTSHELF_MODEL_FILE", MODEL_FILE))
    try:
        return path.read_bytes().rstrip(b"\0").decode(errors="replace").strip() or None
    except OSError:
        return None


def require_pi(path: Path | None = None) -> str:
    model = board_model(path)
    if model is None or "Raspberry Pi" not in model:
        raise SmartShelfError(
            f"smartshelf bench --pi measures a Raspberry Pi, and this is {model or 'not one (no device-tree model)'}; "
            "run it on the Pi (./setup.sh --dev in a checkout there), or drop --pi"
        )
    return model


def _vcgencmd(exe: str | None, *args: str) -> str | None:
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return text.split("=", 1)[1] if out.returncode == 0 and "=" in text else None


def pi_facts(vcgencmd: str | None = "vcgencmd", governor_file: Path = GOVERNOR_FILE) -> dict[str, Any]:
    """Temperature, ARM clock, throttling flags (vcgencmd) and the CPU governor, where available."""
    from smartshelf.installer.hardware import THROTTLE_BITS

    exe = shutil.which(vcgencmd) if vcgencmd else None
    facts: dict[str, Any] = {"vcgencmd": exe is not None}
    temp = _vcgencmd(exe, "measure_temp")  # 47.2'C
    if temp is not None:
        try:
            facts["temp_c"] = float(temp.split("'", 1)[0])
        except ValueError:
            pass
    clock = _vcgencmd(exe, "measure_clock", "arm")  # 2400000000
    if clock is not None and clock.isdigit():
        facts["arm_mhz"] = round(int(clock) / 1e6)
    throttled = _vcgencmd(exe, "get_throttled")  # 0x0
    if throttled is not None:
        try:
            flags = int(throttled, 16)
        except ValueError:
            flags = None
        if flags is not None:
            facts["throttled"] = f"0x{flags:x}"
            facts["throttle_flags"] = [
                why for bit, why in sorted(THROTTLE_BITS.items()) if flags & (1 << bit)
            ]
    try:
        facts["governor"] = governor_file.read_text().strip()
    except OSError:
        pass
    return facts


def pi_notes(pi: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Console lines: the board and what may make its timings unrepresentative."""
    before, after = pi.get("before", {}), pi.get("after", {})
    lines = [f"Raspberry Pi: {pi.get('model')}"]
    bits = []
    for label, facts in (("before", before), ("after", after)):
        part = [f"{facts['temp_c']:.1f} C" if "temp_c" in facts else "temp ?"]
        if "arm_mhz" in facts:
            part.append(f"{facts['arm_mhz']} MHz")
        part.append(f"throttled={facts.get('throttled', '?')}")
        bits.append(f"{label}: {', '.join(part)}")
    lines.append("  " + " | ".join(bits) + f" | governor {before.get('governor', '?')}")
    now = [f for f in after.get("throttle_flags", []) if f.endswith("now")]
    if now:
        lines.append(
            f"  WARNING: {', '.join(now)}: these timings measure the power supply or cooling, not the shelf"
        )
    if before.get("governor") not in (None, "performance", "ondemand", "schedutil"):
        lines.append(f"  note: CPU governor {before['governor']!r} may hold the clock down")
    mc = result.get("model_cost", {})
    measured = mc.get("measured_per_frame_ms")
    if measured is not None:
        lines.append(
            f"  model time per frame: measured {measured:.1f} ms here vs {mc['per_frame_pi4_estimate_ms']:.1f} ms "
            "estimated for a Pi 4 from MAC counts"
        )
    return lines
