"""``smartshelf bench --pi``: refused off a Pi; the Pi's facts read from vcgencmd and sysfs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from smartshelf.core.errors import SmartShelfError
from tools.bench import pi as bench_pi


def fake_vcgencmd(tmp_path: Path, throttled: str = "0x0") -> str:
    exe = tmp_path / "vcgencmd"
    exe.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  measure_temp) echo "temp=61.3\'C";;\n'
        '  measure_clock) echo "frequency(0)=2400000000";;\n'
        f'  get_throttled) echo "throttled={throttled}";;\n'
        "esac\n"
    )
    exe.chmod(0o755)
    return str(exe)


def test_refused_off_a_pi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Generic x86 PC\0")
    monkeypatch.setenv("SMARTSHELF_MODEL_FILE", str(model))
    with pytest.raises(SmartShelfError, match="measures a Raspberry Pi"):
        bench_pi.require_pi()
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    assert bench_pi.require_pi() == "Raspberry Pi 5 Model B Rev 1.0"


def test_cli_refuses_before_measuring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.bench import register

    monkeypatch.setenv("SMARTSHELF_MODEL_FILE", str(tmp_path / "none"))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--pi", "--quick", "--out", str(tmp_path / "out")])
    with pytest.raises(SmartShelfError, match="Raspberry Pi"):
        args.func(args)
    assert not (tmp_path / "out").exists()


def test_pi_facts_and_notes(tmp_path: Path) -> None:
    governor = tmp_path / "governor"
    governor.write_text("ondemand\n")
    facts = bench_pi.pi_facts(fake_vcgencmd(tmp_path), governor)
    assert facts == {
        "vcgencmd": True,
        "temp_c": 61.3,
        "arm_mhz": 2400,
        "throttled": "0x0",
        "throttle_flags": [],
        "governor": "ondemand",
    }
    hot = bench_pi.pi_facts(fake_vcgencmd(tmp_path, "0x20006"), governor)
    assert hot["throttle_flags"] == [
        "ARM frequency capped now",
        "throttled now",
        "ARM frequency capping has occurred",
    ]
    result = {"model_cost": {"measured_per_frame_ms": 31.0, "per_frame_pi4_estimate_ms": 24.5}}
    notes = bench_pi.pi_notes({"model": "Raspberry Pi 4 Model B", "before": facts, "after": hot}, result)
    text = "\n".join(notes)
    assert "Raspberry Pi 4 Model B" in text and "61.3 C" in text and "2400 MHz" in text
    assert "WARNING: ARM frequency capped now, throttled now" in text
    assert "measured 31.0 ms here vs 24.5 ms" in text


def test_pi_facts_without_vcgencmd(tmp_path: Path) -> None:
    assert bench_pi.pi_facts(None, tmp_path / "none") == {"vcgencmd": False}
