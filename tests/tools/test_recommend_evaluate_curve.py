"""The learning-curve fit used to judge how much of the ranking gap is sampling noise."""

from __future__ import annotations

import numpy as np
import pytest

from tools.recommender.evaluate import fit_learning_curve


def test_fit_recovers_a_known_curve() -> None:
    n = np.array([100, 200, 400, 800, 1600])
    a, b, c = fit_learning_curve(n, 0.45 - 0.7 / n**0.5)
    assert a == pytest.approx(0.45, abs=1e-3)
    assert c == pytest.approx(0.5, abs=0.03)
    assert b == pytest.approx(0.7, rel=0.05)


def test_a_flat_curve_has_its_level_as_asymptote() -> None:
    a, _, _ = fit_learning_curve([100, 200, 400], [0.4, 0.4, 0.4])
    assert a == pytest.approx(0.4, abs=1e-9)
