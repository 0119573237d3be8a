from __future__ import annotations

from pathlib import Path

import pytest

from models.training import data as D

FACES = D.DEFAULT_DATA


@pytest.fixture(scope="session")
def face_samples():
    """A few labelled faces from ../shared (test split, aged 18-70), skipped when absent."""
    if not FACES.is_dir():
        pytest.skip(f"shared face data {FACES} not present")
    samples = [s for s in D.list_samples(FACES) if s.split == "test" and 18 <= s.age <= 70]
    return samples[::12][:40]


@pytest.fixture(scope="session")
def face_images(face_samples):
    return [D.read_rgb(s.path) for s in face_samples]


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return D.MODELS_DIR
