"""``python -m models.training.evaluate`` runs on a few test images and prints every table."""

from __future__ import annotations

import pytest

from models.training import data as D


@pytest.mark.slow
def test_evaluate_quick_run(capsys, tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    if not D.DEFAULT_DATA.is_dir():
        pytest.skip(f"shared face data {D.DEFAULT_DATA} not present")
    from models.training import evaluate

    assert evaluate.main(["--limit", "12", "--repeats", "2", "--no-peer"]) == 0
    out = capsys.readouterr().out
    assert "BlazeFace short range" in out and "Haar cascade" in out
    assert "| int8 |" in out and "per true gender and per true age bracket" in out
    assert "px in a frame" in out  # the farther-shopper rows
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{evaluate.BEGIN}\nold\n{evaluate.END}\nafter\n")
    evaluate.write_readme("NEW TABLE", readme)
    assert readme.read_text() == f"before\n{evaluate.BEGIN}\nNEW TABLE\n{evaluate.END}\nafter\n"


def test_mcnemar_exact_p_values():
    from models.training.evaluate import mcnemar_p

    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0
    # 0 of 6 discordant faces go one way: 2 * (1/2)^6
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)
    # symmetric, and a lopsided split is significant
    assert mcnemar_p(20, 5) == mcnemar_p(5, 20) < 0.01


def test_paired_comparison_reports_difference_and_interval():
    import numpy as np

    from models.training.evaluate import paired_comparison

    y_age = np.array([30.0] * 10 + [8.0])
    y_fem = np.array([1, 0] * 5 + [1])
    truth_pf = y_fem.astype(float)
    ours = {"p_female": truth_pf.copy(), "age": y_age + 2}
    peer = {"p_female": truth_pf.copy(), "age": y_age + 5}
    peer["p_female"][:2] = 1 - peer["p_female"][:2]  # the peer gets two adults' gender wrong
    rows = paired_comparison(ours, peer, y_age, y_fem)
    text = "\n".join(rows)
    assert "| gender accuracy (13+), points | +20.0 |" in text
    assert "only ours right on 2 faces, only the peer on 0" in text
    assert "| age MAE, years (negative = ours better) | -3.00 | [-3.00, -3.00] |" in text
