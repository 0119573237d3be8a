"""The runtime dependencies resolve to wheels on Raspberry Pi OS (aarch64), with the system numpy.

What setup.sh installs with pip on a Pi: the pyproject dependencies minus numpy and OpenCV (those
come from apt, built together with picamera2), under a constraint pinning numpy to the
distribution's version. `pip download --only-binary=:all:` for the Pi's platform and Python then
proves every one of them (and everything they pull in) has a wheel: nothing would have to compile
on the shelf. Needs the package index (marked `network`; CI has it).

Which wheels fit a Pi is packaging's tag logic (PEP 600): a ``manylinux_2_N_aarch64`` wheel runs
on any glibc >= 2.N, so for Bookworm's glibc 2.36 every N from 17 (aarch64's first, alias
``manylinux2014``) to 36 is valid, and Trixie's 2.41 adds 37..41. musllinux wheels are for
musl-based systems and never fit Raspberry Pi OS (glibc).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from smartshelf.installer.update import SYSTEM_PACKAGES, requirement_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NETWORK_ERRORS = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
)

#: (Raspberry Pi OS release, its python3 version, its python3-numpy version, its glibc)
DISTRIBUTIONS = [
    ("bookworm", "3.11", "1.24.2", (2, 36)),
    ("trixie", "3.13", "2.2.4", (2, 41)),
]


def pi_platforms(glibc: tuple[int, int], arch: str = "aarch64") -> list[str]:
    """Every manylinux platform tag a wheel may carry to run on this glibc, newest first (PEP 600)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{n}_{arch}" for n in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]  # the legacy alias of manylinux_2_17


def pi_tags(python: str, glibc: tuple[int, int]) -> set[Tag]:
    """The wheel tags CPython ``python`` on a Pi with this glibc installs (packaging.tags)."""
    version = tuple(int(v) for v in python.split("."))
    platforms = pi_platforms(glibc)
    return set(cpython_tags(version, platforms=platforms)) | set(
        compatible_tags(version, f"cp{version[0]}{version[1]}", platforms=platforms)
    )


def test_every_manylinux_tag_the_pis_glibc_runs_is_accepted() -> None:
    """A wheel tagged 2.28..2.35 is as valid on Bookworm as 2.27 or 2.36 (the old list had only those)."""
    bookworm = pi_tags("3.11", (2, 36))
    for n in range(17, 37):
        assert Tag("cp311", "cp311", f"manylinux_2_{n}_aarch64") in bookworm, n
    assert Tag("cp311", "cp311", "manylinux2014_aarch64") in bookworm
    assert Tag("cp311", "abi3", "manylinux_2_28_aarch64") in bookworm
    assert Tag("py3", "none", "any") in bookworm
    # newer than the glibc, another machine, another Python, or musl: no
    for tag in (
        Tag("cp311", "cp311", "manylinux_2_38_aarch64"),
        Tag("cp311", "cp311", "manylinux_2_28_x86_64"),
        Tag("cp311", "cp311", "musllinux_1_2_aarch64"),
        Tag("cp312", "cp312", "manylinux_2_28_aarch64"),
    ):
        assert tag not in bookworm, tag
    assert Tag("cp313", "cp313", "manylinux_2_41_aarch64") in pi_tags("3.13", (2, 41))


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
@pytest.mark.parametrize(("release", "python", "numpy", "glibc"), DISTRIBUTIONS)
def test_runtime_dependencies_have_aarch64_wheels(
    tmp_path: Path, release: str, python: str, numpy: str, glibc: tuple[int, int]
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
        *[arg for p in pi_platforms(glibc) for arg in ("--platform", p)],
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
    supported = pi_tags(python, glibc)
    for wheel in wheels:
        # every wheel carries a tag this Python on this glibc installs (pure ones are py3-none-any)
        _, _, _, tags = parse_wheel_filename(wheel)
        assert tags & supported, f"{wheel} does not fit {release} (Python {python}, glibc {glibc})"
    names = {str(parse_wheel_filename(w)[0]) for w in wheels}
    assert "ai-edge-litert" in names
    # numpy is pulled in (by ai-edge-litert) at exactly the system's version: pip will keep apt's
    assert f"numpy-{numpy}-" in " ".join(wheels)
