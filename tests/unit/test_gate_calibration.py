"""The gate calibration table: shares and accuracies per threshold from known measurements."""

from __future__ import annotations

import numpy as np

from models.gate_calibration import table


def test_table_counts_only_faces_at_or_above_each_threshold() -> None:
    m = {
        "conf": np.array([0.1, 0.3, 0.5, 0.9]),
        "gender": np.array([False, True, True, True]),
        "within1": np.array([False, False, True, True]),
        "exact": np.array([False, False, False, True]),
    }
    text = table(m)
    row = next(line for line in text.splitlines() if line.startswith("| 0.5 |"))
    assert row == "| 0.5 | 50.0% | 1.000 | 0.500 | 1.000 | 0.500 |"
    row = next(line for line in text.splitlines() if line.startswith("| 0.2 |"))
    assert row.startswith("| 0.2 | 75.0% | 1.000 | 0.333 | 0.667 | 0.000 |")
