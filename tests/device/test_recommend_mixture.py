"""Segment weights from an uncertain estimate, and ranking by their expected vector."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from device.recommend.factors import FactorModel
from device.recommend.mixture import bracket_probabilities, segment_mixture
from device.recommend.ranker import Ranker
from smartshelf.core.types import AGE_BRACKETS, Demographic
from tools.recommender.evaluate import simulate_estimates


def test_a_certain_estimate_is_its_own_segment() -> None:
    estimate = Demographic(p_female=1.0, age=31.0, confidence=0.9)
    assert segment_mixture(estimate.p_female, estimate.age, 0.0) == {str(estimate.segment): 1.0}
    assert segment_mixture(0.0, 70.0, 0.0) == {"male/65+": 1.0}


def test_an_age_on_a_bracket_edge_splits_between_the_two_brackets() -> None:
    probs = bracket_probabilities(25.0, 4.0)
    cdf = NormalDist(25.0, 4.0).cdf
    assert probs["18-24"] == pytest.approx(cdf(25) - cdf(18))
    assert probs["25-34"] == pytest.approx(cdf(35) - cdf(25))
    assert probs["0-12"] == pytest.approx(cdf(13))  # the youngest bracket takes everything below it
    assert probs["65+"] == pytest.approx(1 - cdf(65))
    assert sum(probs.values()) == pytest.approx(1.0)
    assert list(probs) == list(AGE_BRACKETS)


def test_weights_multiply_gender_and_bracket_and_drop_the_negligible() -> None:
    mixture = segment_mixture(0.7, 25.0, 4.0)
    assert sum(mixture.values()) == pytest.approx(1.0)
    assert list(mixture.values()) == sorted(mixture.values(), reverse=True)
    assert mixture["female/18-24"] / mixture["male/18-24"] == pytest.approx(0.7 / 0.3)
    brackets = bracket_probabilities(25.0, 4.0)
    assert mixture["female/25-34"] / mixture["female/18-24"] == pytest.approx(
        brackets["25-34"] / brackets["18-24"]
    )
    assert "female/65+" not in mixture and "male/0-12" not in mixture  # far below 2%
    assert min(mixture.values()) >= 0.02


def test_an_adult_is_never_weighted_toward_a_minors_segment() -> None:
    mixture = segment_mixture(1.0, 19.0, 5.0, min_age=18)
    assert set(mixture) <= {f"female/{b}" for b in ("18-24", "25-34", "35-44")}
    # The mass below 18 goes to the youngest bracket left, not spread over the older ones.
    assert mixture["female/18-24"] > 0.8
    assert segment_mixture(1.0, 15.0, 0.0, min_age=18) == {"female/18-24": 1.0}


@pytest.mark.parametrize(
    ("p_female", "age", "std"), [(1.2, 30, 5), (float("nan"), 30, 5), (0.5, float("nan"), 5)]
)
def test_bad_estimates_are_refused_with_the_value(p_female: float, age: float, std: float) -> None:
    with pytest.raises(ValueError, match="p_female|age"):
        segment_mixture(p_female, age, std)


def _model() -> FactorModel:
    # f1 suits female/25-34, m1 male/25-34, both1 is second best for both.
    return FactorModel(
        item_ids=("f1", "m1", "both1"),
        item_factors=np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]),
        segment_ids=("female/25-34", "male/25-34"),
        segment_vectors=np.array([[1.0, 0.0], [0.0, 1.0]]),
        global_vector=np.array([0.5, 0.5]),
        popularity=np.zeros(3),
    )


def test_the_mixture_vector_is_the_weighted_mean_of_segment_vectors() -> None:
    model = _model()
    np.testing.assert_allclose(model.mixture_vector({"female/25-34": 3, "male/25-34": 1}), [0.75, 0.25])
    # A segment missing from the file counts with the global vector, as in segment_vector.
    np.testing.assert_allclose(model.mixture_vector({"female/25-34": 1, "female/65+": 1}), [0.75, 0.25])
    with pytest.raises(ValueError, match="not all zero"):
        model.mixture_vector({})
    with pytest.raises(ValueError, match="-1"):
        model.mixture_vector({"female/25-34": 2, "male/25-34": -1})


def test_ranking_by_a_mixture_hedges_between_segments() -> None:
    ranker = Ranker(_model())
    hard = ranker.rank("female/25-34", n=1, diversity=0.0)  # type: ignore[arg-type]
    assert [r.item_id for r in hard] == ["f1"]
    one = ranker.rank(None, n=3, diversity=0.0, mixture={"female/25-34": 1.0})
    assert [r.item_id for r in one] == [r.item_id for r in ranker.rank("female/25-34", n=3, diversity=0.0)]  # type: ignore[arg-type]
    even = ranker.rank(None, n=1, diversity=0.0, mixture={"female/25-34": 0.5, "male/25-34": 0.5})
    assert [r.item_id for r in even] == ["both1"]  # 0.7 expected score against 0.5 for f1 or m1


def test_simulated_camera_estimates_have_the_stated_error_and_are_calibrated() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    ages = np.full(n, 40.0)
    female = rng.random(n) < 0.5
    est_age, p_female = simulate_estimates(ages, female, 6.2, 0.9, rng)
    assert np.std(est_age - ages) == pytest.approx(6.2, rel=0.02)
    assert np.mean((p_female >= 0.5) == female) == pytest.approx(0.9, abs=0.005)
    # Calibrated: of the estimates that say "70-80% female", 70-80% are women.
    band = (p_female >= 0.7) & (p_female < 0.8)
    assert 0.7 <= female[band].mean() <= 0.8
