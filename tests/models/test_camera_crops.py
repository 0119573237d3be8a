"""Training crops made the way the shelf makes them (models.training.camera): real detectors and
alignment on a handful of validation photos pasted into shop frames; never from the test split."""

from __future__ import annotations

import numpy as np
import pytest

from models.training import data as D
from models.training.camera import FACE_PX, camera_crops


@pytest.fixture(scope="module")
def val_samples() -> list[D.Sample]:
    if not D.DEFAULT_DATA.is_dir():
        pytest.skip(f"shared face data {D.DEFAULT_DATA} not present")
    return [s for s in D.list_samples(D.DEFAULT_DATA) if s.split in ("val", "test") and 18 <= s.age <= 60][:24]


def test_camera_crops_are_device_crops_of_validation_faces_only(val_samples: list[D.Sample]) -> None:
    made = camera_crops(val_samples, 64, splits=("val",), cache=False, progress=False, seed=5)
    val = [i for i, s in enumerate(val_samples) if s.split == "val"]
    assert 0 < len(made.index) <= len(val)
    assert set(made.index.tolist()) <= set(val), "a test photo must never become training material"
    assert len(made.index) >= 0.7 * len(val), "the device's cascade finds most faces of 40-120 px"
    assert made.crops.shape == (len(made.index), 64, 64, 3) and made.crops.dtype == np.uint8
    assert ((made.face_px >= FACE_PX[0]) & (made.face_px <= FACE_PX[1])).all()
    clean, _ = D.crop_dataset([val_samples[i] for i in made.index], 64, cache=False, progress=False)
    # the same face, seen differently: close to its clean crop (aligned alike), never identical
    diff = np.abs(made.crops.astype(np.float32) - clean.astype(np.float32)).mean(axis=(1, 2, 3))
    assert (diff > 1.0).all() and np.median(diff) < 60.0
    again = camera_crops(val_samples, 64, splits=("val",), cache=False, progress=False, seed=5)
    assert np.array_equal(again.crops, made.crops), "deterministic for a seed"


def test_the_test_split_is_refused(val_samples: list[D.Sample]) -> None:
    with pytest.raises(ValueError, match="test split"):
        camera_crops(val_samples, 64, splits=("val", "test"), cache=False, progress=False)
