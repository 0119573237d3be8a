"""``python -m models.training.sweep``: the recipe grid, the portable data pack and the summary table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.training import sweep
from models.training import train as T


def test_grid_is_every_combination_typed_like_the_option() -> None:
    defaults = T.parse_args([])
    grid = sweep.parse_grid("width=32,36;gender_loss_weight=1,2", defaults)
    assert grid == [
        {"width": 32, "gender_loss_weight": 1.0},
        {"width": 32, "gender_loss_weight": 2.0},
        {"width": 36, "gender_loss_weight": 1.0},
        {"width": 36, "gender_loss_weight": 2.0},
    ]
    assert isinstance(grid[0]["width"], int) and isinstance(grid[0]["gender_loss_weight"], float)
    assert sweep.parse_grid("width=36|lr=0.002", defaults) == [{"width": 36}, {"lr": 0.002}]
    with pytest.raises(SystemExit, match="no_such_option"):
        sweep.parse_grid("no_such_option=1", defaults)


def test_pack_keeps_train_and_val_exactly_and_drops_test(tmp_path) -> None:
    pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    n = 6
    data = T.TrainingData(
        crops=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
        masks=rng.integers(0, 256, (n, 16, 16), dtype=np.uint8),
        age=np.arange(n, dtype=np.float32) + 20,
        female=np.array([1, 0, 1, 0, 1, 0]),
        split=np.array(["train", "val", "test", "train", "test", "val"]),
        teacher={"p_female": np.linspace(0, 1, n).astype(np.float32), "ok": np.ones(n, bool)},
        extra_val={"val_small": (rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), np.array([1, 5]))},
    )
    assert sweep.pack(data, tmp_path / "p.npz") == 4
    back = sweep.unpack(tmp_path / "p.npz")
    keep = data.split != "test"
    assert np.array_equal(back.crops, data.crops[keep])  # lossless: the same pixels as the device crops
    assert np.array_equal(back.masks, data.masks[keep])
    assert list(back.split) == ["train", "val", "train", "val"]
    assert np.array_equal(back.age, data.age[keep])
    assert back.teacher is not None and np.array_equal(
        back.teacher["p_female"], data.teacher["p_female"][keep]
    )
    crops, index = back.extra_val["val_small"]
    assert np.array_equal(crops, data.extra_val["val_small"][0])
    assert list(index) == [1, 3]  # samples 1 and 5 of the full data are 1 and 3 of the pack


def test_summary_averages_seeds_and_ranks_by_the_validation_score() -> None:
    def row(config: dict, gender: float, mae: float) -> dict:
        best = {"gender_acc_13plus": gender, "age_mae": mae, "bracket_exact": 0.6, "bracket_within1": 0.9}
        return {"config": config, "seed": 1, "best_val": best}

    rows = [row({"width": 32}, 0.94, 5.5), row({"width": 32}, 0.96, 5.3), row({"width": 36}, 0.97, 5.0)]
    lines = sweep.summarize_rows(rows).splitlines()
    assert lines[2].startswith(f"| {json.dumps({'width': 36})} | 1 | 97.00 ± 0.00 | 5.00")
    assert lines[3].startswith(f"| {json.dumps({'width': 32})} | 2 | 95.00 ± 1.00 | 5.40 ± 0.10")
