"""Pure helpers of the training pipeline: split, label parsing, targets, background replacement."""

from __future__ import annotations

import numpy as np
import pytest

from models.training import data as D
from models.training import train as T


def test_split_is_fixed_and_roughly_70_15_15():
    names = [f"{i}_0_0_2017.jpg.chip.jpg" for i in range(3000)]
    splits = [D.split_of(n) for n in names]
    assert splits == [D.split_of(n) for n in names]  # deterministic
    share = {s: splits.count(s) / len(splits) for s in D.SPLITS}
    assert abs(share["train"] - 0.70) < 0.04 and abs(share["test"] - 0.15) < 0.03


def test_list_samples_parses_names_and_skips_others(tmp_path):
    (tmp_path / "25_1_2_20170116174525125.jpg.chip.jpg").write_bytes(b"x")
    (tmp_path / "3_0_0_20170110.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "face.jpg").write_bytes(b"x")
    samples = D.list_samples(tmp_path)
    assert [(s.age, s.female, s.race) for s in samples] == [(25, 1, 2), (3, 0, 0)]
    with pytest.raises(FileNotFoundError, match="nope"):
        D.list_samples(tmp_path / "nope")


def test_age_targets_are_distributions_centred_on_the_age():
    t = T.age_targets(np.array([0, 30, 120]))
    assert np.allclose(t.sum(axis=1), 1.0)
    assert t[1].argmax() == 30 and abs(t[1] @ T.AGES - 30) < 0.01
    assert t[2].argmax() == 100  # clipped to the last bin
    assert t[1].max() < t[0].max()  # older ages get a wider distribution


def test_teacher_bins_map_onto_our_bins():
    p = np.zeros((1, 81), np.float32)
    p[0, 40] = 1.0  # 40 years in the teacher's (0.25, 1..80) classes
    assert T.teacher_to_bins(p)[0].argmax() == 40


def test_replace_background_only_touches_the_masked_area():
    rng = np.random.default_rng(0)
    crops = np.full((6, 16, 16, 3), 77, np.uint8)
    masks = np.zeros((6, 16, 16), np.uint8)
    masks[:, :, :4] = 255
    out = T.replace_background(crops, masks, rng, p=1.0)
    assert (out[:, :, 4:] == 77).all()
    assert (out[:, :, :4] != 77).any()
    assert (T.replace_background(crops, masks, rng, p=0.0) == crops).all()


def test_decode_outputs_matches_the_device():
    from device.inference.age_gender import demographic_from_logits

    rng = np.random.default_rng(1)
    g, a = rng.normal(size=(3, 2)), rng.normal(size=(3, T.AGE_BINS)) * 3
    pf, age, std = T.decode_outputs(g, a)
    for i in range(3):
        d = demographic_from_logits(g[i], a[i])
        assert d.p_female == pytest.approx(pf[i]) and d.age == pytest.approx(age[i])
        assert d.age_std == pytest.approx(std[i])
