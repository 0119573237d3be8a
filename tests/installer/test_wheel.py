"""The wheel that ships to a shelf holds exactly what runs there, and runs from an empty venv.

Built from this checkout with the installed setuptools (no build isolation, so no index is needed),
installed with ``--no-deps`` into a new venv whose only other path is this venv's third-party
packages (as ``smartshelf update --site-packages`` does on a Pi), then run from an empty folder:
the demo on the bundled models and store, and the doctor.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    # build from a copy of the checkout's tracked files, so nothing is written into the checkout
    src = build / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "artifacts", "site", "bench-report", "work",
    ))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(out), str(src)],
        capture_output=True, text=True, check=False, cwd=build,
        env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(build)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (whl,) = out.glob("smartshelf-*.whl")
    return whl


def test_the_wheel_holds_what_ships_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("smartshelf-")}
    assert tops == {"smartshelf", "device", "admin_web", "models"}
    assert not [n for n in names if n.startswith(("tools/", "models/training/", "tests/"))]
    for needed in ("models/manifest.json", "models/age_gender_int8.tflite",
                   "models/face_detection_short_range.tflite", "models/face_detection_full_range.tflite",
                   "device/demo/factors.npz", "device/demo/catalog.csv",
                   "admin_web/templates/base.html", "smartshelf/installer/doctor.py"):
        assert needed in names, needed
    assert any(n.startswith("admin_web/terminals/templates/") for n in names)
    assert any(n.startswith("device/demo/frames/") for n in names)


def test_the_installed_wheel_runs_the_demo_and_the_doctor(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip())
    with zipfile.ZipFile(wheel) as whl:  # a wheel is a zip to unpack; pip would only add RECORD
        whl.extractall(purelib)
    # third-party packages only: this venv's site-packages as a plain path (its .pth files, which
    # map the development checkout, are not processed from there)
    (purelib / "third-party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    launcher = venv / "bin" / "smartshelf"
    launcher.write_text(f"#!{python}\nimport sys\nfrom smartshelf.cli import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    where = subprocess.run(
        [str(python), "-c", ("import device, models, importlib.util as u; "
                             "print(device.__file__, models.__file__, u.find_spec('tools'))")],
        capture_output=True, text=True, check=True, cwd=empty, env=env,
    ).stdout.split()
    assert where[0].startswith(str(purelib)) and where[1].startswith(str(purelib)), where
    assert where[2] == "None", "tools/ must not be importable from an installed wheel"

    demo = subprocess.run(
        [str(launcher), "demo", "--frames", "30", "--json", "--fast"],
        capture_output=True, text=True, check=False, cwd=empty, env=env, timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    decisions = [json.loads(line) for line in demo.stdout.splitlines() if line.startswith("{")]
    assert decisions, demo.stdout + demo.stderr[-2000:]

    doctor = subprocess.run(
        [str(launcher), "doctor", "--skip", "camera,gpio", "--json"],
        capture_output=True, text=True, check=False, cwd=empty, env=env, timeout=300,
    )
    report = json.loads(doctor.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["models.detector"]["status"] == "ok", checks["models.detector"]
    assert checks["models.age_gender"]["status"] == "ok", checks["models.age_gender"]
    assert checks["runtime"]["status"] == "ok", checks["runtime"]
    help_text = subprocess.run(
        [str(launcher), "--help"], capture_output=True, text=True, cwd=empty, env=env, check=True
    ).stdout
    assert "bench" not in help_text.split("positional arguments")[1].split("options")[0].split()
