"""The systemd units: content checks everywhere, `systemd-analyze verify` and `security` where present.

`systemd-analyze verify` checks that every Exec*= binary exists, and /opt/smartshelf/current does
not exist on a build machine, so the tests verify a temp copy of each unit in which the install
paths are replaced by an existing executable (/bin/true); everything else is verified unchanged.
`security --offline=yes` rates the unit file alone (no running systemd needed).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
SYSTEM_UNITS = ("smartshelf-device.service", "smartshelf-admin.service")
USER_UNITS = ("smartshelf-kiosk.service",)
#: Root oneshot units: verified and parsed by the CLI, not held to the service-user hardening.
ONESHOT_UNITS = ("smartshelf-firstboot.service",)
#: The nightly retrain: a oneshot run as the service user, hardened like the services.
RETRAIN_UNIT = "smartshelf-retrain.service"
TIMER_UNIT = "smartshelf-retrain.timer"
INSTALL_BIN = "/opt/smartshelf/current/venv/bin/smartshelf"
KIOSK_BIN = "/opt/smartshelf/current/systemd/smartshelf-kiosk"
MAX_EXPOSURE = 4.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)


def settings(name: str) -> dict[str, list[str]]:
    """Unit file -> {key: [values in order]} (sections merged; keys are unique across ours)."""
    out: dict[str, list[str]] = {}
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def one(name: str, key: str) -> str:
    values = settings(name)[key]
    assert len(values) == 1, f"{name}: {key} set {len(values)} times"
    return values[0]


def test_device_unit_is_notify_with_watchdog_and_config_check() -> None:
    unit = "smartshelf-device.service"
    assert one(unit, "Type") == "notify"
    assert int(one(unit, "WatchdogSec")) >= 10
    assert one(unit, "Restart") == "on-failure"
    assert int(one(unit, "StartLimitBurst")) >= 1
    pre = shlex.split(one(unit, "ExecStartPre"))
    assert pre[0] == INSTALL_BIN and pre[1:3] == ["run", "--check-config"]
    assert shlex.split(one(unit, "ExecStart"))[:2] == [INSTALL_BIN, "run"]


def test_device_unit_waits_for_the_clock_and_keeps_status_in_run() -> None:
    unit = "smartshelf-device.service"
    assert "time-sync.target" in one(unit, "Wants").split(), "After= alone does not pull the target in"
    assert "time-sync.target" in one(unit, "After").split()
    assert "smartshelf" in one(unit, "RuntimeDirectory").split()  # /run/smartshelf: status.json
    from smartshelf.core.config import DEFAULT_RUNTIME_DIR

    assert DEFAULT_RUNTIME_DIR == Path("/run/smartshelf")
    dropin = UNITS / "systemd-time-wait-sync.service.d" / "smartshelf.conf"
    text = dropin.read_text()
    assert "[Service]" in text
    timeout = int(re.search(r"^TimeoutStartSec=(\d+)$", text, re.MULTILINE).group(1))
    assert 0 < timeout <= 300, "the wait is bounded: a shelf without network still starts"


def test_device_unit_keeps_camera_and_gpio_reachable() -> None:
    unit = "smartshelf-device.service"
    s = settings(unit)
    assert "PrivateDevices" not in s, "PrivateDevices hides /dev/video*, /dev/media* and /dev/gpiochip*"
    assert "ProtectClock" not in s, "ProtectClock turns on a device allow-list without the camera"
    assert set(one(unit, "SupplementaryGroups").split()) >= {"video", "gpio"}
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    for group in ("char-video4linux", "char-media", "char-dma_heap", "char-gpiochip", "char-vchiq"):
        assert group in allowed
    assert all(v.split()[1] == "rw" for v in s["DeviceAllow"])
    assert "AF_NETLINK" in one(unit, "RestrictAddressFamilies")  # libcamera's udev monitor
    # lgpio writes notification pipes into the working directory: it must be a writable one
    assert one(unit, "WorkingDirectory") == "/run/smartshelf-device"
    assert "smartshelf-device" in one(unit, "RuntimeDirectory").split()
    assert "LG_WD=/run/smartshelf-device" in settings(unit)["Environment"]


@pytest.mark.parametrize("unit", (*SYSTEM_UNITS, RETRAIN_UNIT))
def test_system_units_are_hardened(unit: str) -> None:
    s = settings(unit)
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "User": "smartshelf",
    }
    for key, value in expected.items():
        assert one(unit, key) == value, f"{unit}: {key}"
    assert one(unit, "ReadWritePaths") == "/var/lib/smartshelf"
    assert "@system-service" in s["SystemCallFilter"]
    assert one(unit, "RestrictAddressFamilies")
    assert "--config /etc/smartshelf/config.toml" in one(unit, "ExecStart")


def test_firstboot_unit_runs_only_with_the_file_before_the_services() -> None:
    unit = "smartshelf-firstboot.service"
    assert one(unit, "Type") == "oneshot"
    assert one(unit, "ConditionPathExists") == "/boot/firmware/smartshelf.toml"
    assert set(one(unit, "Before").split()) == set(SYSTEM_UNITS)
    argv = shlex.split(one(unit, "ExecStart"))
    assert argv[:2] == [INSTALL_BIN, "firstboot"] and "/boot/firmware/smartshelf.toml" in argv


def test_kiosk_unit_points_chromium_at_the_device_page() -> None:
    unit = "smartshelf-kiosk.service"
    assert one(unit, "ExecStart") == KIOSK_BIN
    assert one(unit, "Environment") == "SMARTSHELF_KIOSK_URL=http://127.0.0.1:8081/"
    assert one(unit, "WantedBy") == "default.target"
    script = (UNITS / "smartshelf-kiosk").read_text()
    assert os.access(UNITS / "smartshelf-kiosk", os.X_OK)
    assert "--kiosk" in script and "--ozone-platform=wayland" in script


#: Settings that need a mount namespace, which a user manager can only set up together with
#: PrivateUsers= (systemd.exec(5)); systemd 252 (Bookworm's) ignores them in a user unit otherwise.
NAMESPACE_SETTINGS = (
    "PrivateTmp", "PrivateDevices", "ProtectSystem", "ProtectHome", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectControlGroups", "ReadOnlyPaths", "ReadWritePaths",
    "InaccessiblePaths", "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem",
)


@pytest.mark.parametrize("unit", USER_UNITS)
def test_user_units_ask_for_no_namespace_they_would_not_get(unit: str) -> None:
    """A user unit's PrivateTmp= without PrivateUsers= is ignored on systemd 252, and the kiosk must
    not get a private /tmp anyway: it would hide /tmp/.X11-unix from the X11 fallback."""
    found = set(settings(unit)) & set(NAMESPACE_SETTINGS)
    assert not found, f"{unit}: {sorted(found)} need PrivateUsers= in a user unit"
    assert "PrivateTmp" not in settings(unit)
    assert "/tmp/.X11-unix" in (UNITS / "smartshelf-kiosk").read_text()


def test_device_unit_says_how_to_check_the_syscall_filter_on_a_pi() -> None:
    text = (UNITS / "smartshelf-device.service").read_text()
    assert one("smartshelf-device.service", "SystemCallErrorNumber") == "EPERM"
    assert "SystemCallLog=@resources" in text and "type=1326" in text


def test_retrain_runs_nightly_exports_then_retrains_without_network() -> None:
    assert one(RETRAIN_UNIT, "Type") == "oneshot"
    assert "Install" not in (UNITS / RETRAIN_UNIT).read_text(), "started by its timer only"
    pre, start = shlex.split(one(RETRAIN_UNIT, "ExecStartPre")), shlex.split(one(RETRAIN_UNIT, "ExecStart"))
    assert pre[1:3] == ["terminal", "export"] and start[1:3] == ["factors", "retrain"]
    out = pre[pre.index("--out") + 1]
    for flag, name in (("--interactions", "interactions.csv"), ("--users", "users.csv"), ("--items", "items.csv")):
        assert start[start.index(flag) + 1] == f"{out}/{name}", "retrain reads what the export wrote"
    assert set(one(RETRAIN_UNIT, "SuccessExitStatus").split()) == {"3", "4"}, "kept / waiting are not failures"
    assert one(RETRAIN_UNIT, "PrivateNetwork") == "yes"
    assert one(RETRAIN_UNIT, "IOSchedulingClass") == "idle"
    assert one(TIMER_UNIT, "OnCalendar").startswith("*-*-* ")
    assert one(TIMER_UNIT, "Persistent") == "true"
    assert one(TIMER_UNIT, "Unit") == RETRAIN_UNIT
    assert one(TIMER_UNIT, "WantedBy") == "timers.target"
    setup = (ROOT / "setup.sh").read_text()
    assert RETRAIN_UNIT in setup and TIMER_UNIT in setup


def test_unit_commands_parse_with_the_cli() -> None:
    """ExecStart/ExecStartPre arguments are accepted by the real `smartshelf` parser."""
    from smartshelf.cli import build_parser

    parser = build_parser()
    for unit in SYSTEM_UNITS + ONESHOT_UNITS + (RETRAIN_UNIT,):
        for key in ("ExecStartPre", "ExecStart"):
            for line in settings(unit).get(key, []):
                argv = shlex.split(line)
                assert argv[0] == INSTALL_BIN
                args = parser.parse_args(argv[1:])
                assert callable(getattr(args, "func", None)), f"{unit} {key}: {argv[1:]}"


def _temp_copy(tmp_path: Path, unit: str) -> Path:
    text = (UNITS / unit).read_text()
    text = text.replace(INSTALL_BIN, "/bin/true").replace(KIOSK_BIN, "/bin/true")
    dest = tmp_path / unit
    dest.write_text(text)
    return dest


def _analyze(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd, check=False
    )


@needs_analyze
@pytest.mark.parametrize("unit", SYSTEM_UNITS + ONESHOT_UNITS + (RETRAIN_UNIT, TIMER_UNIT))
def test_systemd_analyze_verify_system_units(tmp_path: Path, unit: str) -> None:
    copy = _temp_copy(tmp_path, unit)
    result = _analyze("verify", str(copy), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert unit not in result.stderr, result.stderr  # no warnings about our unit


@needs_analyze
@pytest.mark.parametrize("unit", USER_UNITS)
def test_systemd_analyze_verify_user_units(tmp_path: Path, unit: str) -> None:
    copy = _temp_copy(tmp_path, unit)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    result = _analyze("--user", "verify", str(copy), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert unit not in result.stderr, result.stderr


def exposure(tmp_path: Path, unit: str) -> float:
    copy = _temp_copy(tmp_path, unit)
    result = _analyze("security", "--offline=yes", "--no-pager", str(copy), cwd=tmp_path)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    return float(match.group(1))


@needs_analyze
@pytest.mark.parametrize("unit", (*SYSTEM_UNITS, RETRAIN_UNIT))
def test_systemd_analyze_security_rates_at_most_4(tmp_path: Path, unit: str) -> None:
    score = exposure(tmp_path, unit)
    assert score <= MAX_EXPOSURE, f"{unit}: exposure {score} > {MAX_EXPOSURE}"


@needs_analyze
def test_security_check_can_fail(tmp_path: Path) -> None:
    """The exposure parser sees a bare unit as exposed (so the 4.0 limit above means something)."""
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    result = _analyze("security", "--offline=yes", "--no-pager", str(bare), cwd=tmp_path)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    if match is None:
        pytest.skip("this systemd-analyze cannot rate unit files offline")
    assert float(match.group(1)) > MAX_EXPOSURE
