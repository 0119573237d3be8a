"""The gate calibration table: shares and accuracies per threshold from known measurements."""

from __future__ import annotations

import numpy as np

from models.training.gate_calibration import table


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


def test_a_model_fitted_on_the_validation_split_is_recognised(tmp_path) -> None:
    import json

    from models.training.gate_calibration import fitted_on_validation

    def manifest(fit_on: str | None) -> None:
        training = {"epochs": 40} if fit_on is None else {"epochs": 40, "fit_on": fit_on}
        entries = [{"name": "age_gender_int8", "file": "x.tflite", "training": training}]
        (tmp_path / "manifest.json").write_text(json.dumps({"models": entries}))

    manifest("train+val")
    assert fitted_on_validation(tmp_path)
    manifest("train")
    assert not fitted_on_validation(tmp_path)
    manifest(None)  # older manifests: train-only
    assert not fitted_on_validation(tmp_path)
