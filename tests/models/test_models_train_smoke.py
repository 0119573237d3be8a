"""The training script runs end to end on a handful of images (only where TensorFlow is installed)."""

from __future__ import annotations

import json

import pytest

from models.training import data as D


@pytest.mark.slow
@pytest.mark.parametrize(("fit_on", "camera_p"), [("train", "0"), ("train+val", "0"), ("train", "0.5")])
def test_train_one_tiny_epoch(tmp_path, fit_on, camera_p):
    pytest.importorskip("tensorflow")
    if not D.DEFAULT_DATA.is_dir():
        pytest.skip(f"shared face data {D.DEFAULT_DATA} not present")
    from models.training import train

    rc = train.main(
        [
            "--limit",
            "48",
            "--epochs",
            "1",
            "--batch",
            "16",
            "--out",
            str(tmp_path),
            "--teacher-weight",
            "0",
            "--teacher-gender-weight",
            "0",
            "--rep-samples",
            "8",
            "--quiet",
            "--width",
            "8",
            "--fit-on",
            fit_on,
            "--camera-p",
            camera_p,
        ]
    )
    assert rc == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert {m["file"] for m in manifest} == {"age_gender_int8.tflite", "age_gender_float32.tflite"}
    training = manifest[0]["training"]
    assert training["fit_on"] == fit_on
    # train+val keeps the last epoch: no validation score to report
    assert (training["best_val"] is None) == (fit_on == "train+val")
    assert training["camera_p"] == float(camera_p)
    import numpy as np

    from device.inference.age_gender import AgeGenderModel
    from device.inference.runtime import verify_model

    for m in manifest:
        verify_model(tmp_path / m["file"])
        with AgeGenderModel(tmp_path / m["file"]) as model:
            d = model.estimate_crop(np.zeros((model.input_size, model.input_size, 3), np.uint8))
            assert 0.0 <= d.p_female <= 1.0
