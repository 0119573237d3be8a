"""setup.sh: shellcheck, the Raspberry Pi dry run, and the development-venv path (run twice).

Nothing here may touch the system: the Pi install is only ever run with --dry-run and every
system path pointed into a temp dir; the dev path builds its venv in a temp dir.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "setup.sh"
SCRIPTS = [
    SETUP,
    ROOT / ".ci" / "run",
    ROOT / "tests" / "install-tools.sh",
    ROOT / "systemd" / "smartshelf-kiosk",
    ROOT / "tests" / "arm64" / "run.sh",
]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTSHELF_", "VIRTUAL_ENV"))}
    env.update(
        SMARTSHELF_PREFIX=str(tmp_path / "opt"),
        SMARTSHELF_ETC=str(tmp_path / "etc"),
        SMARTSHELF_DATA=str(tmp_path / "data"),
        SMARTSHELF_UNIT_DIR=str(tmp_path / "units"),
        SMARTSHELF_USER_UNIT_DIR=str(tmp_path / "user-units"),
        SMARTSHELF_BOOT_FILE=str(tmp_path / "boot" / "smartshelf.toml"),
        SMARTSHELF_BIN_LINK=str(tmp_path / "bin" / "smartshelf"),
        SMARTSHELF_VENV=str(tmp_path / "venv"),
        SMARTSHELF_KIOSK_USER="",
        SMARTSHELF_SYSTEMD="running",
    )
    env.update(extra)
    return env


def run_setup(tmp_path: Path, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SETUP), *args],
        env=env_for(tmp_path, **extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        cwd=tmp_path,
    )


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)"
)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    result = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)"
)
@pytest.mark.parametrize("script", [SETUP, ROOT / "tests" / "arm64" / "run.sh"], ids=lambda p: p.name)
def test_no_function_runs_with_set_e_suppressed(script: Path) -> None:
    """SC2310: a function called inside if/&&/||/! runs without set -e, so a failed step inside it
    (a unit file that cannot be installed) would be swallowed."""
    result = subprocess.run(
        ["shellcheck", "-x", "-o", "check-set-e-suppressed", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_strict_bash() -> None:
    for script in SCRIPTS:
        text = script.read_text()
        assert text.startswith("#!/") and "bash" in text.splitlines()[0], script
        assert "set -euo pipefail" in text, script
        assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.slow
def test_dry_run_prints_every_pi_step_and_changes_nothing(tmp_path: Path) -> None:
    first = run_setup(tmp_path, "--dry-run")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for expected in (
        "would run: groupadd --system gpio",
        "useradd --system",
        "--groups video\\,gpio smartshelf",
        f"install -d -o smartshelf -g smartshelf -m 0750 {tmp_path / 'data'}",
        "smartshelf update --from",
        "--system-packages --dry-run",
        "would create venv",
        "(--system-site-packages)",
        "would switch",
        f"config.example.toml {tmp_path / 'etc' / 'config.toml'}",
        "smartshelf-device.service",
        "smartshelf-admin.service",
        "smartshelf-firstboot.service",
        "smartshelf-kiosk.service",
        "would run: systemctl daemon-reload",
        "-m compileall -q",
        "would run: systemctl enable smartshelf-device.service",
        "would run: systemctl enable systemd-time-wait-sync.service",
        "systemd-time-wait-sync.service.d/smartshelf.conf",
        "would run: systemctl restart smartshelf-device.service smartshelf-admin.service",
        "admin page: http://",
        "smartshelf admin set-password",
    ):
        assert expected in out, f"{expected!r} missing from the dry run:\n{out}"
    # pip must never be asked for numpy or OpenCV on the Pi: they come from apt.
    pip_line = next(line for line in out.splitlines() if line.startswith("would pip install"))
    assert "numpy pinned to the system's version" in pip_line
    requirements = pip_line.split(":", 1)[1]
    assert "numpy" not in requirements and "opencv" not in requirements
    assert "ai-edge-litert" in requirements and "flask" in requirements
    # the apt step asks for the distribution's numpy/OpenCV/picamera2/lgpio when they are missing
    apt_lines = [
        line for line in out.splitlines() if "apt-get install" in line or "apt packages present" in line
    ]
    assert apt_lines
    # nothing was created
    for name in ("opt", "etc", "data", "units", "user-units", "bin", "venv"):
        assert not (tmp_path / name).exists(), name
    # and it is repeatable
    second = run_setup(tmp_path, "--dry-run")
    assert second.returncode == 0
    # (the release name carries a digest of the tree; in a shared work tree files may change between runs)
    release = re.compile(r"\d+\.\d+\.\d+\S*-[0-9a-f]{10}")
    assert release.sub("R", second.stdout) == release.sub("R", first.stdout)


def test_unknown_option_is_an_error(tmp_path: Path) -> None:
    result = run_setup(tmp_path, "--bogus")
    assert result.returncode == 2
    assert "unknown option --bogus" in result.stderr


def test_help(tmp_path: Path) -> None:
    result = run_setup(tmp_path, "--help")
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and "--dev" in result.stdout


@pytest.mark.slow
def test_non_pi_makes_only_the_dev_venv_and_second_run_does_nothing(tmp_path: Path) -> None:
    """The non-Pi path (even as root) creates the venv and pip-installs the project, nothing else.

    Dependencies are skipped (--no-deps) to keep it fast; pip still builds the editable install
    (its build backend comes from the package index, like any pip install).
    """
    model = tmp_path / "model"
    model.write_bytes(b"Generic x86 PC\0")
    extra = {"SMARTSHELF_MODEL_FILE": str(model), "SMARTSHELF_PIP_FLAGS": "--no-deps"}
    first = run_setup(tmp_path, **extra)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "not a Raspberry Pi" in first.stdout
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    assert python.exists()
    check = subprocess.run(
        [str(python), "-c", "import device, sys; print(device.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and check.stdout.strip().startswith(str(ROOT)), check.stdout + check.stderr
    assert (venv / "bin" / "smartshelf").exists()
    for name in ("opt", "etc", "data", "units", "user-units", "bin"):
        assert not (tmp_path / name).exists(), f"the dev path touched {name}"
    stamp = venv / ".smartshelf-setup"
    before = (stamp.stat().st_mtime_ns, python.resolve(), sorted(p.name for p in (venv / "bin").iterdir()))

    second = run_setup(tmp_path, **extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to do" in second.stdout
    assert "pip install" not in second.stdout
    after = (stamp.stat().st_mtime_ns, python.resolve(), sorted(p.name for p in (venv / "bin").iterdir()))
    assert after == before


@pytest.mark.slow
def test_dry_run_enables_the_kiosk_for_the_desktop_user(tmp_path: Path) -> None:
    import pwd

    me = pwd.getpwuid(os.getuid())
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_KIOSK_USER=me.pw_name, SMARTSHELF_DESKTOP="yes")
    assert result.returncode == 0, result.stderr
    wants = f"{me.pw_dir}/.config/systemd/user/default.target.wants/smartshelf-kiosk.service"
    link = next(
        line for line in result.stdout.splitlines() if "ln -sfn" in line and "default.target.wants" in line
    )
    assert link.endswith(wants) and str(tmp_path / "user-units" / "smartshelf-kiosk.service") in link
    assert not Path(wants).is_symlink() or os.readlink(wants) != str(
        tmp_path / "user-units" / "smartshelf-kiosk.service"
    )


def fake_tools(tmp_path: Path, tools: dict[str, str]) -> str:
    """A PATH with these fake commands (name -> bash body) first."""
    fakes = tmp_path / "fakebin"
    fakes.mkdir(exist_ok=True)
    for name, body in tools.items():
        (fakes / name).write_text("#!/bin/bash\n" + body)
        (fakes / name).chmod(0o755)
    return f"{fakes}:{os.environ['PATH']}"


def apt_install_line(out: str) -> str:
    return next((line for line in out.splitlines() if "apt-get install" in line), "")


def test_lite_gets_no_browser_and_no_kiosk(tmp_path: Path) -> None:
    """Raspberry Pi OS Lite (no desktop): nothing to show a kiosk on, so no browser is installed."""
    path = fake_tools(tmp_path, {"dpkg-query": 'echo "not-installed"\n', "apt-cache": 'echo "  Candidate: 1.0"\n'})
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_DESKTOP="no", SMARTSHELF_KIOSK_USER="root", PATH=path)
    assert result.returncode == 0, result.stdout + result.stderr
    line = apt_install_line(result.stdout)
    assert "python3-picamera2" in line and "chromium" not in line, line
    assert "no desktop (Raspberry Pi OS Lite): no browser" in result.stdout
    assert "the kiosk is not enabled" in result.stdout
    assert "default.target.wants" not in result.stdout


@pytest.mark.parametrize("present", ["chromium-browser", "chromium"])
def test_an_installed_chromium_browser_is_not_joined_by_another(tmp_path: Path, present: str) -> None:
    path = fake_tools(
        tmp_path,
        {
            "dpkg-query": f'if [ "${{@: -1}}" = {present} ]; then echo "install ok installed"; else echo x; fi\n',
            "apt-cache": 'echo "  Candidate: 1.0"\n',
        },
    )
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_DESKTOP="yes", PATH=path)
    assert result.returncode == 0, result.stdout + result.stderr
    line = apt_install_line(result.stdout)
    assert "python3-opencv" in line and "chromium" not in line, line


def test_a_desktop_without_a_browser_gets_the_archives_one(tmp_path: Path) -> None:
    path = fake_tools(
        tmp_path,
        {
            "dpkg-query": 'echo x\n',
            "apt-cache": 'if [ "$2" = chromium ]; then echo "  Candidate: (none)"; else echo "  Candidate: 1.0"; fi\n',
        },
    )
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_DESKTOP="yes", PATH=path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert apt_install_line(result.stdout).endswith(" chromium-browser")


@pytest.mark.parametrize(
    ("files", "user"),
    [
        ({"etc/lightdm/lightdm.conf": "[Seat:*]\nautologin-user=kiosk\n"}, "kiosk"),
        (
            {"etc/greetd/config.toml": '[terminal]\nvt = 7\n[initial_session]\ncommand = "labwc"\nuser = "kiosk"\n'},
            "kiosk",
        ),
        (
            {
                "etc/systemd/system/getty@tty1.service.d/autologin.conf": (
                    "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin kiosk --noclear %I $TERM\n"
                )
            },
            "kiosk",
        ),
        ({}, "first"),  # nothing configured: the first user (uid 1000), as Raspberry Pi OS creates it
    ],
    ids=["lightdm", "greetd", "raspi-config-console", "uid-1000"],
)
def test_kiosk_user_is_found_beyond_lightdm(tmp_path: Path, files: dict[str, str], user: str) -> None:
    rootfs = tmp_path / "rootfs"
    passwd = "root:x:0:0::/root:/bin/bash\nfirst:x:1000:1000::/home/first:/bin/bash\nkiosk:x:1001:1001::/home/kiosk:/bin/bash\n"
    for rel, text in {"etc/passwd": passwd, **files}.items():
        (rootfs / rel).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / rel).write_text(text)
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "usr/bin/labwc").write_text("#!/bin/sh\n")
    (rootfs / "usr/bin/labwc").chmod(0o755)
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_ROOTFS=str(rootfs))
    assert result.returncode == 0, result.stdout + result.stderr
    wants = f"/home/{user}/.config/systemd/user/default.target.wants/smartshelf-kiosk.service"
    assert any(line.endswith(wants) and "ln -sfn" in line for line in result.stdout.splitlines()), result.stdout


def test_without_a_running_systemd_units_are_enabled_but_nothing_is_started(tmp_path: Path) -> None:
    """In a chroot or an image being built, systemctl can enable units but not reload or start them."""
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_SYSTEMD="offline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would run: systemctl enable smartshelf-device.service" in result.stdout
    assert "daemon-reload" not in result.stdout and "systemctl restart" not in result.stdout
    assert "systemctl start" not in result.stdout
    assert "the services start at boot" in result.stdout


def test_screen_blanking_is_switched_off_with_raspi_config(tmp_path: Path) -> None:
    path = fake_tools(tmp_path, {"raspi-config": 'if [ "$2" = get_blanking ]; then echo 0; fi\n'})
    result = run_setup(tmp_path, "--dry-run", PATH=path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would run: raspi-config nonint do_blanking 1" in result.stdout
    without = run_setup(tmp_path, "--dry-run", PATH="/usr/bin:/bin")
    assert "no raspi-config: switch screen blanking off" in without.stdout


FAKES = {
    # every package is installed; chromium has a candidate
    "dpkg-query": 'echo "install ok installed"\n',
    "apt-cache": 'echo "  Candidate: 1.0"\n',
    "apt-get": 'echo "apt-get $*" >> "$FAKE_LOG"\n',
    "groupadd": 'echo "groupadd $*" >> "$FAKE_LOG"\n',
    "useradd": 'echo "useradd $*" >> "$FAKE_LOG"\n',
    "usermod": 'echo "usermod $*" >> "$FAKE_LOG"\n',
    "getent": 'if [ "$1" = group ]; then exit 0; fi\nexec /usr/bin/getent "$@"\n',
    # the service user "exists" with its groups once useradd ran
    "id": (
        'case "$*" in\n'
        '  *smartshelf*) grep -q useradd "$FAKE_LOG" 2>/dev/null || exit 1\n'
        '    case "$1" in -u) echo 999;; -nG) echo "smartshelf video gpio";; *) echo smartshelf;; esac; exit 0;;\n'
        'esac\nexec /usr/bin/id "$@"\n'
    ),
    # install(1) without -o/-g (the fake service user owns nothing)
    "install": (
        "args=()\nwhile [ $# -gt 0 ]; do\n"
        '  case "$1" in -o|-g) shift 2;; *) args+=("$1"); shift;; esac\ndone\n'
        'exec /usr/bin/install "${args[@]}"\n'
    ),
    "systemctl": (
        'echo "systemctl $*" >> "$FAKE_LOG"\n'
        'case "$1" in\n'
        '  is-enabled) [ -e "$FAKE_STATE/enabled-${@: -1}" ];;\n'
        '  enable) touch "$FAKE_STATE/enabled-$2";;\n'
        "  is-active) exit 0;;\n"
        '  show) if [ -e "$FAKE_STATE/stale" ]; then echo yes; else echo no; fi;;\n'
        '  daemon-reload) rm -f "$FAKE_STATE/stale";;\n'
        "esac\n"
    ),
    # remembers do_blanking like the real one (/etc/X11/xorg.conf.d/10-blanking.conf)
    "raspi-config": (
        'case "$2" in\n'
        '  do_blanking) echo "raspi-config $*" >> "$FAKE_LOG"; echo "$3" > "$FAKE_STATE/blanking";;\n'
        '  get_blanking) cat "$FAKE_STATE/blanking" 2>/dev/null || echo 0;;\n'
        "esac\n"
    ),
}


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the Raspberry Pi path insists on root")
def test_pi_install_with_fake_system_tools_then_nothing_to_do(tmp_path: Path) -> None:
    """The real (not --dry-run) Pi path, with apt/useradd/systemctl faked and every path in tmp_path.

    The release is installed for real (a venv under tmp_path/opt, --no-deps plus this venv's
    site-packages instead of a package index); the first-boot file is adopted; the second run
    must change nothing.
    """
    import sys
    import sysconfig

    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "work", ".cache")
    for name in ("smartshelf", "device", "admin_web", "models", "systemd"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    for name in ("setup.sh", "pyproject.toml", "config.example.toml"):
        shutil.copy2(ROOT / name, repo / name)
    path = fake_tools(tmp_path, FAKES)
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "fake.log"
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    # apt's camera and GPIO stacks, which the update's self-check imports on a Pi (stand-ins here)
    apt_site = tmp_path / "apt-site"
    apt_site.mkdir()
    (apt_site / "picamera2.py").write_text("")
    (apt_site / "lgpio.py").write_text("")
    boot = tmp_path / "boot" / "smartshelf.toml"
    boot.parent.mkdir()
    boot.write_text(f'[shelf]\nname = "Aisle 9"\ndata_dir = "{tmp_path / "data"}"\n')
    env = env_for(
        tmp_path,
        PATH=path,
        FAKE_LOG=str(log),
        FAKE_STATE=str(state),
        SMARTSHELF_MODEL_FILE=str(model),
        SMARTSHELF_SYSTEM_PYTHON=sys.executable,
        SMARTSHELF_UPDATE_FLAGS=(
            f"--no-deps --site-packages {sysconfig.get_paths()['purelib']} --site-packages {apt_site}"
        ),
    )

    def setup() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(repo / "setup.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
            cwd=tmp_path,
        )

    first = setup()
    assert first.returncode == 0, first.stdout + first.stderr
    calls = log.read_text()
    assert "apt-get" not in calls  # everything "installed"
    present = next(line for line in first.stdout.splitlines() if "apt packages present:" in line)
    assert "python3-setuptools" in present.split(), "pip install --no-build-isolation needs it on the Pi"
    assert "useradd --system --user-group" in calls and "--groups video,gpio smartshelf" in calls
    assert "systemctl daemon-reload" in calls and "systemctl enable smartshelf-device.service" in calls
    assert "systemctl enable systemd-time-wait-sync.service" in calls
    dropin = tmp_path / "units" / "systemd-time-wait-sync.service.d" / "smartshelf.conf"
    assert "TimeoutStartSec=" in dropin.read_text()
    assert "systemctl restart smartshelf-device.service smartshelf-admin.service" in calls
    prefix = tmp_path / "opt"
    launcher = prefix / "current" / "venv" / "bin" / "smartshelf"
    assert launcher.exists() and os.readlink(tmp_path / "bin" / "smartshelf") == str(launcher)
    # the first-boot file was adopted instead of the example config, and removed
    assert 'name = "Aisle 9"' in (tmp_path / "etc" / "config.toml").read_text()
    assert not boot.exists()
    unit = (tmp_path / "units" / "smartshelf-device.service").read_text()
    assert f"ExecStart={launcher} run --config {tmp_path / 'etc' / 'config.toml'}" in unit
    assert f"ReadWritePaths={tmp_path / 'data'}" in unit
    assert (tmp_path / "user-units" / "smartshelf-kiosk.service").exists()
    assert "raspi-config nonint do_blanking 1" in calls
    # the release is compiled at install time (the services cannot write its __pycache__)
    release = (prefix / "current").resolve()
    assert list((release / "device" / "__pycache__").glob("__init__.*.pyc"))
    assert "systemctl enable smartshelf-retrain.timer" in calls, "the nightly retrain is scheduled"
    retrain = (tmp_path / "units" / "smartshelf-retrain.service").read_text()
    assert f"--out {tmp_path / 'data'}/retrain" in retrain and (tmp_path / "units" / "smartshelf-retrain.timer").exists()

    log.write_text("useradd (done)\n")  # keep the fake user
    before = sorted(p.name for p in (prefix / "releases").iterdir()), os.readlink(prefix / "current")
    second = setup()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to do" in second.stdout, second.stdout
    assert "+ " not in second.stdout.replace("+ smartshelf update", ""), second.stdout
    assert "release compiled" in second.stdout and "screen blanking is off" in second.stdout
    queries = ("systemctl is-", "systemctl show")
    changes = [line for line in log.read_text().splitlines() if not line.startswith(queries)]
    assert changes == ["useradd (done)"]  # no apt, no useradd, no systemctl changes (only queries)
    assert (
        sorted(p.name for p in (prefix / "releases").iterdir()),
        os.readlink(prefix / "current"),
    ) == before

    # A first run interrupted after the unit files but before daemon-reload: the next run, which
    # finds the files in place, still reloads (systemd says NeedDaemonReload=yes).
    (state / "stale").touch()
    third = setup()
    assert third.returncode == 0, third.stdout + third.stderr
    assert "older copies of the units" in third.stdout
    assert "systemctl daemon-reload" in log.read_text()


def test_time_wait_sync_is_enabled_only_where_it_exists(tmp_path: Path) -> None:
    """Trixie ships systemd-time-wait-sync.service with systemd-timesyncd, which a system running
    chrony (or a minimal image) lacks: `systemctl enable` of a missing unit would stop setup.sh
    (found by the arm64 stage on its Trixie root)."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_ROOTFS=str(rootfs), SMARTSHELF_DESKTOP="no")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "systemctl enable systemd-time-wait-sync.service" not in result.stdout
    assert "no systemd-time-wait-sync.service here" in result.stdout
    (rootfs / "usr/lib/systemd/system").mkdir(parents=True)
    (rootfs / "usr/lib/systemd/system/systemd-time-wait-sync.service").write_text("[Unit]\n")
    result = run_setup(tmp_path, "--dry-run", SMARTSHELF_ROOTFS=str(rootfs), SMARTSHELF_DESKTOP="no")
    assert "would run: systemctl enable systemd-time-wait-sync.service" in result.stdout


def test_dry_run_hub_adds_the_broker_steps(tmp_path: Path) -> None:
    result = run_setup(tmp_path, "--dry-run", "--hub")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "smartshelf store hub-config --data-dir" in out and "/etc/mosquitto/conf.d/smartshelf.conf" in out
    assert "systemctl enable --now mosquitto" in out
    plain = run_setup(tmp_path, "--dry-run")
    assert "mosquitto" not in plain.stdout
