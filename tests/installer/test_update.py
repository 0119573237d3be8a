"""`smartshelf update` with a temp prefix: install, doctor gate, atomic switch, restart rollback.

Releases are made from a copy of this project's own tree (smartshelf/, device/, admin_web/, models/,
pyproject.toml). The release venvs use --no-deps plus this venv's site-packages, so no package
index is needed and each install takes a couple of seconds.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from smartshelf.core.errors import SmartShelfError
from smartshelf.installer.update import (
    RELEASE_FILE,
    Options,
    UpdateError,
    Updater,
    dependencies,
    is_raspberry_pi,
    read_source,
    requirement_name,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # each release install builds with pip

ROOT = Path(__file__).resolve().parents[2]
PURELIB = Path(sysconfig.get_paths()["purelib"])


def make_tree(dest: Path, marker: str = "1") -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "work", ".cache")
    for name in ("smartshelf", "device", "admin_web", "models"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    (dest / "RELEASE-MARKER").write_text(marker)
    return dest


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "config.toml"
    path.write_text(f'[shelf]\nname = "test shelf"\ndata_dir = "{data}"\n[leds]\ntype = "none"\n')
    return path


def options(tmp_path: Path, **kw) -> Options:
    base = {
        "prefix": tmp_path / "opt",
        "restart": False,
        "doctor": False,
        "install_deps": False,
        "site_packages": (PURELIB,),
        "python": sys.executable,
    }
    base.update(kw)
    return Options(**base)


def updater(tmp_path: Path, **kw) -> tuple[Updater, io.StringIO]:
    out = io.StringIO()
    return Updater(options(tmp_path, **kw), out=out), out


def current(prefix: Path) -> str:
    return os.readlink(prefix / "current")


def _device_import(release: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Where the release's own python imports ``device`` from (stdout: the module file)."""
    return subprocess.run(
        [str(release / "venv" / "bin" / "python"), "-c", "import device; print(device.__file__)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_install_switches_current_and_second_run_does_nothing(tmp_path: Path) -> None:
    src = read_source(make_tree(tmp_path / "src"))
    up, _out = updater(tmp_path)
    assert up.update(src) == 0
    prefix = tmp_path / "opt"
    assert current(prefix) == f"releases/{src.release_name}"
    release = prefix / "releases" / src.release_name
    record = json.loads((release / RELEASE_FILE).read_text())
    assert record["digest"] == src.digest and record["kind"] == "tree"
    # the release's own launcher runs the release's own code
    launcher = prefix / "current" / "venv" / "bin" / "smartshelf"
    result = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "smartshelf" in result.stdout, result.stderr
    where = _device_import(release, tmp_path)
    assert where.stdout.strip().startswith(str(release)), where.stdout + where.stderr
    # compiled at install time (pip compiles what it installs): the services cannot write __pycache__
    imported = Path(where.stdout.strip())
    assert list((imported.parent / "__pycache__").glob("__init__.*.pyc")), imported
    # idempotent
    up2, out2 = updater(tmp_path)
    assert up2.update(read_source(tmp_path / "src")) == 0
    assert "nothing to do" in out2.getvalue()
    assert len(list((prefix / "releases").iterdir())) == 1


@pytest.mark.slow
def test_doctor_regression_refuses_and_keeps_current(tmp_path: Path, config: Path) -> None:
    first = read_source(make_tree(tmp_path / "src1"))
    updater(tmp_path)[0].update(first)
    broken = make_tree(tmp_path / "src2", marker="2")
    manifest = broken / "models" / "manifest.json"
    data = json.loads(manifest.read_text())
    for entry in data["models"]:
        entry["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    second = read_source(broken)
    up, out = updater(tmp_path, doctor=True, config=config)
    with pytest.raises(UpdateError, match="failed its checks.*models"):
        up.update(second)
    prefix = tmp_path / "opt"
    assert current(prefix) == f"releases/{first.release_name}"
    assert not (prefix / "releases" / second.release_name).exists()
    assert "models.detector" in out.getvalue()


@pytest.mark.slow
def test_doctor_with_the_same_failures_as_before_goes_on(tmp_path: Path, config: Path) -> None:
    """A check failing for reasons outside the release (a bad factor file in the data dir) does not block updates."""
    (tmp_path / "data" / "factors.npz").write_bytes(b"not a factor file")
    first = read_source(make_tree(tmp_path / "src1"))
    updater(tmp_path)[0].update(first)
    second = read_source(make_tree(tmp_path / "src2", marker="2"))
    up, out = updater(tmp_path, doctor=True, config=config)
    assert up.update(second) == 0
    prefix = tmp_path / "opt"
    assert current(prefix) == f"releases/{second.release_name}"
    assert os.readlink(prefix / "previous") == f"releases/{first.release_name}"
    assert "factors" in out.getvalue()  # the factor file is bad for both releases


def test_first_install_with_failing_doctor_is_refused(tmp_path: Path, config: Path) -> None:
    (tmp_path / "data" / "factors.npz").write_bytes(b"not a factor file")
    src = read_source(make_tree(tmp_path / "src"))
    up, _ = updater(tmp_path, doctor=True, config=config)
    with pytest.raises(UpdateError, match="staying on no release"):
        up.update(src)  # the factor file is bad: with nothing to compare to, that fails
    assert not (tmp_path / "opt" / "current").exists()


def fake_systemctl(tmp_path: Path, bad_release: str) -> Path:
    script = tmp_path / "systemctl"
    log = tmp_path / "systemctl.log"
    script.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {log}\n'
        'if [[ "$1" == is-active ]]; then\n'
        f'  [[ "$(readlink {tmp_path / "opt" / "current"})" == *{bad_release}* ]] && exit 3\n'
        "fi\nexit 0\n"
    )
    script.chmod(0o755)
    return script


def test_restart_failure_rolls_back(tmp_path: Path) -> None:
    first = read_source(make_tree(tmp_path / "src1"))
    updater(tmp_path)[0].update(first)
    second = read_source(make_tree(tmp_path / "src2", marker="2"))
    systemctl = fake_systemctl(tmp_path, second.release_name)
    up, _out = updater(tmp_path, restart=True, systemctl=str(systemctl))
    with pytest.raises(UpdateError, match="rolled back"):
        up.update(second)
    prefix = tmp_path / "opt"
    assert current(prefix) == f"releases/{first.release_name}"
    calls = (tmp_path / "systemctl.log").read_text().splitlines()
    assert calls[0] == "restart smartshelf-device.service smartshelf-admin.service"
    assert calls.count("restart smartshelf-device.service smartshelf-admin.service") == 2


def test_restart_success_and_manual_rollback(tmp_path: Path) -> None:
    first = read_source(make_tree(tmp_path / "src1"))
    second = read_source(make_tree(tmp_path / "src2", marker="2"))
    systemctl = fake_systemctl(tmp_path, "never-bad")
    updater(tmp_path)[0].update(first)
    up, _ = updater(tmp_path, restart=True, systemctl=str(systemctl))
    assert up.update(second) == 0
    prefix = tmp_path / "opt"
    assert current(prefix) == f"releases/{second.release_name}"
    assert up.rollback() == 0
    assert current(prefix) == f"releases/{first.release_name}"
    assert os.readlink(prefix / "previous") == f"releases/{second.release_name}"


def test_prune_keeps_current_previous_and_newest(tmp_path: Path) -> None:
    names = []
    for i in range(4):
        src = read_source(make_tree(tmp_path / f"src{i}", marker=str(i)))
        names.append(src.release_name)
        updater(tmp_path, keep=2)[0].update(src)
    left = sorted(p.name for p in (tmp_path / "opt" / "releases").iterdir())
    assert left == sorted(names[-2:])


def test_cli_dry_run_changes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    prefix = tmp_path / "opt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "smartshelf.installer.update",
            "--from",
            str(tmp_path / "src"),
            "--prefix",
            str(prefix),
            "--dry-run",
            "--system-packages",
            "--no-restart",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "would install release" in result.stdout and "would switch" in result.stdout
    assert "numpy pinned" in result.stdout
    assert not prefix.exists()


def test_install_from_git_ref(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = make_tree(tmp_path / "repo")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "r1"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env, capture_output=True)
    (repo / "RELEASE-MARKER").write_text("uncommitted")
    work = tmp_path / "work"
    work.mkdir()
    src = read_source(repo, "HEAD", work)
    up, _ = updater(tmp_path)
    up.update(src)
    release = tmp_path / "opt" / "releases" / src.release_name
    assert (release / "RELEASE-MARKER").read_text() == "1"
    with pytest.raises(UpdateError, match="git archive"):
        read_source(repo, "no-such-ref", tmp_path / "work2")


def test_sources_are_validated(tmp_path: Path) -> None:
    with pytest.raises(UpdateError, match="no such file"):
        read_source(tmp_path / "missing")
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "1"\n')
    with pytest.raises(UpdateError, match="not 'smartshelf'"):
        read_source(other)
    bad = tmp_path / "x.tar"
    bad.write_text("x")
    with pytest.raises(UpdateError, match="expected a source tree"):
        read_source(bad)
    assert issubclass(UpdateError, SmartShelfError)


def test_wheel_dependencies_and_name(tmp_path: Path) -> None:
    whl = tmp_path / "smartshelf-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(
            "smartshelf-0.2.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: smartshelf\nVersion: 0.2.0\nRequires-Dist: numpy>=1.24\n"
            'Requires-Dist: flask>=3.0\nRequires-Dist: pytest>=8; extra == "test"\n',
        )
    src = read_source(whl)
    assert src.kind == "wheel" and src.version == "0.2.0" and src.release_name.startswith("0.2.0-")
    assert dependencies(src) == ["numpy>=1.24", "flask>=3.0"]
    assert requirement_name("opencv_python.headless<5") == "opencv-python-headless"
    up, _ = updater(tmp_path, system_packages=True)
    assert up._deps_plan(src) == ["flask>=3.0"]


def test_release_files_are_readable_by_the_service_user(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    secret = tree / "models" / "manifest.json"
    secret.chmod(0o600)
    script = tree / "tool.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    src = read_source(tree)
    updater(tmp_path)[0].update(src)
    release = tmp_path / "opt" / "releases" / src.release_name
    assert (release / "models" / "manifest.json").stat().st_mode & 0o777 == 0o644
    assert (release / "tool.sh").stat().st_mode & 0o777 == 0o755


def build_wheel(tree: Path, dest: Path, version: str = "0.9.0") -> Path:
    """A wheel of the project's packages made with zipfile (no build backend, no index)."""
    import base64
    import hashlib

    dist = f"smartshelf-{version}.dist-info"
    files: dict[str, bytes] = {}
    for package in ("smartshelf", "device", "admin_web"):
        for path in sorted((tree / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path.relative_to(tree))] = path.read_bytes()
    files[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: smartshelf\nVersion: {version}\nRequires-Dist: numpy>=1.24\n"
    ).encode()
    files[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist}/entry_points.txt"] = b"[console_scripts]\nsmartshelf = smartshelf.cli:main\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    whl = dest / f"smartshelf-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return whl


@pytest.mark.slow
def test_install_from_a_wheel(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    whl = build_wheel(tree, tmp_path)
    src = read_source(whl)
    up, out = updater(tmp_path)
    assert up.update(src) == 0, out.getvalue()
    prefix = tmp_path / "opt"
    assert current(prefix) == f"releases/{src.release_name}"
    release = prefix / "releases" / src.release_name
    launcher = release / "venv" / "bin" / "smartshelf"
    result = subprocess.run(
        [str(launcher), "--version"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    where = _device_import(release, tmp_path)
    assert "/site-packages/device/" in where.stdout and where.stdout.startswith(str(release)), where.stdout


def test_the_tree_is_a_real_pip_install_not_a_hand_written_editable_one(tmp_path: Path) -> None:
    src = read_source(make_tree(tmp_path / "src"))
    up, out = updater(tmp_path)
    assert up.update(src) == 0, out.getvalue()
    venv = tmp_path / "opt" / "releases" / src.release_name / "venv"
    purelib = next(venv.glob("lib/python3*/site-packages"))
    [dist] = list(purelib.glob("smartshelf-*.dist-info"))
    assert (dist / "INSTALLER").read_text().strip() == "pip"
    record = (dist / "RECORD").read_text()
    assert "device/events.py" in record and "models/manifest.json" in record  # the models ship as package data
    assert not list(purelib.glob("*.pth")) or all(
        str(tmp_path / "opt" / "releases") not in p.read_text() for p in purelib.glob("*.pth")
    ), "no .pth pointing into the release tree"
    assert (purelib / "device" / "events.py").is_file()


def test_raspberry_pi_detection_and_the_release_record_decide_system_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert is_raspberry_pi(model)
    monkeypatch.setenv("SMARTSHELF_MODEL_FILE", str(model))
    assert Updater(options(tmp_path, system_packages=None)).o.system_packages is True
    model.write_bytes(b"QEMU Virtual Machine\0")
    assert Updater(options(tmp_path, system_packages=None)).o.system_packages is False
    monkeypatch.setenv("SMARTSHELF_MODEL_FILE", str(tmp_path / "absent"))
    assert not is_raspberry_pi()
    # an installed current release's record wins over the detection
    release = tmp_path / "opt" / "releases" / "r1"
    release.mkdir(parents=True)
    (release / RELEASE_FILE).write_text(json.dumps({"system_packages": True}))
    os.symlink("releases/r1", tmp_path / "opt" / "current")
    assert Updater(options(tmp_path, system_packages=None)).o.system_packages is True
    assert Updater(options(tmp_path, system_packages=False)).o.system_packages is False  # the flag wins


def test_a_release_that_cannot_import_the_camera_and_gpio_stack_is_refused(tmp_path: Path) -> None:
    """With system packages the pre-switch self-check imports picamera2, lgpio and gpiozero (no
    hardware opened). Here the first release gets stand-ins for apt's picamera2/lgpio; the second not."""
    stand_ins = tmp_path / "apt-site"
    stand_ins.mkdir()
    (stand_ins / "picamera2.py").write_text("OPENED = False\n")
    (stand_ins / "lgpio.py").write_text("")
    first = read_source(make_tree(tmp_path / "src1", marker="1"))
    up, out = updater(tmp_path, system_packages=True, site_packages=(PURELIB, stand_ins))
    assert up.update(first) == 0, out.getvalue()
    assert "imports: picamera2, lgpio, gpiozero ok" in out.getvalue()
    second = read_source(make_tree(tmp_path / "src2", marker="2"))
    up, out = updater(tmp_path, system_packages=True)  # no stand-ins: picamera2 and lgpio missing
    with pytest.raises(UpdateError, match="cannot import the camera/GPIO stack.*picamera2"):
        up.update(second)
    assert current(tmp_path / "opt") == f"releases/{first.release_name}"
    assert not (tmp_path / "opt" / "releases" / second.release_name).exists()
