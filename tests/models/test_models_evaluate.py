"""``python -m models.evaluate`` runs on a few test images and prints every table."""

from __future__ import annotations

import pytest

from models import data as D


def test_evaluate_quick_run(capsys, tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    if not D.DEFAULT_DATA.is_dir():
        pytest.skip(f"shared face data {D.DEFAULT_DATA} not present")
    from models import evaluate

    assert evaluate.main(["--limit", "12", "--repeats", "2", "--no-peer"]) == 0
    out = capsys.readouterr().out
    assert "BlazeFace short range" in out and "Haar cascade" in out
    assert "| int8 |" in out and "per true gender and per true age bracket" in out
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{evaluate.BEGIN}\nold\n{evaluate.END}\nafter\n")
    evaluate.write_readme("NEW TABLE", readme)
    assert readme.read_text() == f"before\n{evaluate.BEGIN}\nNEW TABLE\n{evaluate.END}\nafter\n"
