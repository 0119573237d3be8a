"""The runtime dependencies resolve to wheels on Raspberry Pi OS (aarch64), with the system numpy.

What setup.sh installs with pip on a Pi: the pyproject dependencies minus numpy and OpenCV (those
come from apt, built together with picamera2), under a constraint pinning numpy to the
distribution's version. `pip download --only-binary=:all:` for the Pi's platform and Python then
proves every one of them (and everything they pull in) has a wheel: nothing would have to compile
on the shelf. Needs the package index (marked `network`; CI has it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from smartshelf.installer.update import SYSTEM_PACKAGES, requirement_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ("manylinux_2_36_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64")
NETWORK_ERRORS = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
)

#: (Raspberry Pi OS release, its python3 version, its python3-numpy version)
DISTRIBUTIONS = [
    ("bookworm", "3.11", "1.24.2"),
    ("trixie", "3.13", "2.2.4"),
]


def pi_requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    return [d for d in deps if requirement_name(d) not in SYSTEM_PACKAGES]


def test_pi_requirements_leave_numpy_and_opencv_to_apt() -> None:
    reqs = pi_requirements()
    names = {requirement_name(r) for r in reqs}
    assert "numpy" not in names and not any(n.startswith("opencv") for n in names)
    assert {"ai-edge-litert", "flask", "tinydb", "gpiozero"} <= names


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize(("release", "python", "numpy"), DISTRIBUTIONS)
def test_runtime_dependencies_have_aarch64_wheels(
    tmp_path: Path, release: str, python: str, numpy: str
) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"numpy=={numpy}\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        *[arg for p in PLATFORMS for arg in ("--platform", p)],
        "-c",
        str(constraints),
        "-d",
        str(tmp_path / "wheels"),
        *pi_requirements(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(e in output for e in NETWORK_ERRORS):
        pytest.skip(f"package index unreachable: {output[-300:]}")
    assert result.returncode == 0, (
        f"{release}: some dependency has no aarch64 wheel for Python {python}:\n{output[-3000:]}"
    )
    wheels = sorted(p.name for p in (tmp_path / "wheels").iterdir())
    assert wheels and all(w.endswith(".whl") for w in wheels), wheels
    tag = "cp" + python.replace(".", "")
    for wheel in wheels:
        # every compiled wheel is for this Python and aarch64 (pure ones are py3-none-any)
        if not wheel.endswith("-none-any.whl"):
            assert tag in wheel or "abi3" in wheel, wheel
            assert re.search(r"aarch64\.whl$", wheel), wheel
    names = {re.split(r"-\d", w, maxsplit=1)[0].lower().replace("_", "-") for w in wheels}
    assert "ai-edge-litert" in names
    # numpy is pulled in (by ai-edge-litert) at exactly the system's version: pip will keep apt's
    assert f"numpy-{numpy}-" in " ".join(wheels)
