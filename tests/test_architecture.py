"""The layering written down in pyproject.toml's import-linter contracts holds (docs/development.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports not installed: ./setup.sh --dev installs import-linter")
    result = subprocess.run([lint], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_shipped_module_reaches_outside_its_package_through_file_paths() -> None:
    offenders = []
    for package in ("smartshelf", "device", "admin_web"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            if "parents[" in text and "__file__" in text:
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"paths computed from __file__ outside the package: {offenders}"


def test_no_test_imports_a_conftest_by_name() -> None:
    """``from conftest import x`` gets whichever conftest.py is first on sys.path, so it breaks when
    pytest is given several folders (the arm64 stage's run); shared helpers live in tests/helpers.py."""
    import re

    pattern = re.compile(r"^\s*(from (tests\.)?conftest import|import (tests\.)?conftest\b)", re.MULTILINE)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders, f"import from tests/helpers.py instead: {offenders}"
