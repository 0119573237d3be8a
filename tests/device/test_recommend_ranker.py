"""Ranker: candidate filter, ordering, MMR diversity, generic picks, pairs_with."""

from __future__ import annotations

import numpy as np
import pytest

from device.recommend.factors import FactorModel
from device.recommend.ranker import Ranker
from smartshelf.core.types import Segment
from tools.recommender.synthetic import make_model


def random_model(n: int = 60, k: int = 8, seed: int = 0) -> FactorModel:
    rng = np.random.default_rng(seed)
    return make_model(
        rng.normal(size=(n, k)),
        segment_vectors={"female/25-34": rng.normal(size=k), "male/35-44": rng.normal(size=k)},
        global_vector=rng.normal(size=k) * 0.1,
        popularity=rng.random(n),
    )


FEMALE = Segment.parse("female/25-34")


def test_only_candidates_come_back_and_unknown_ids_are_ignored() -> None:
    model = random_model()
    ranker = Ranker(model)
    candidates = ["item3", "item7", "item11", "item40", "nope", "item7"]
    recs = ranker.rank(FEMALE, n=10, candidates=candidates)
    assert {r.item_id for r in recs} == {"item3", "item7", "item11", "item40"}
    for n in (1, 2, 3):
        assert {r.item_id for r in ranker.rank(FEMALE, n=n, candidates=candidates)} <= set(candidates)


def test_empty_or_unknown_candidates_give_nothing() -> None:
    ranker = Ranker(random_model())
    assert ranker.rank(FEMALE, n=3, candidates=[]) == []
    assert ranker.rank(FEMALE, n=3, candidates=["x", "y"]) == []
    assert ranker.rank(FEMALE, n=0) == []


def test_without_diversity_the_order_is_the_score_order() -> None:
    model = random_model()
    scores = model.item_factors @ model.segment_vector(FEMALE) + model.popularity
    expected = [model.item_ids[i] for i in np.argsort(-scores)[:8]]
    recs = Ranker(model).rank(FEMALE, n=8, diversity=0.0)
    assert [r.item_id for r in recs] == expected
    assert [r.score for r in recs] == pytest.approx(sorted(scores, reverse=True)[:8], rel=1e-5)


def test_generic_picks_use_the_global_vector_and_popularity() -> None:
    model = random_model()
    scores = model.item_factors @ model.global_vector + model.popularity
    recs = Ranker(model).rank(None, n=5, diversity=0.0)
    assert [r.item_id for r in recs] == [model.item_ids[i] for i in np.argsort(-scores)[:5]]


def test_segment_missing_from_the_file_uses_the_global_vector() -> None:
    model = random_model()
    # male/65+ was never given a vector: make_model fills it with the global vector.
    generic = [r.item_id for r in Ranker(model).rank(None, n=5, diversity=0.0)]
    missing = [r.item_id for r in Ranker(model).rank(Segment.parse("male/65+"), n=5, diversity=0.0)]
    assert missing == generic
    partial = FactorModel(
        item_ids=model.item_ids,
        item_factors=model.item_factors,
        segment_ids=("female/25-34",),
        segment_vectors=model.segment_vectors[:1],
        global_vector=model.global_vector,
        popularity=model.popularity,
    )
    assert [r.item_id for r in Ranker(partial).rank(Segment.parse("male/65+"), n=5, diversity=0.0)] == generic


def near_duplicate_model() -> FactorModel:
    """item0-4: almost the same vector and the best scores; item5-9: different, slightly lower scores."""
    rng = np.random.default_rng(1)
    k = 6
    base = np.array([1.0, 0, 0, 0, 0, 0])
    dupes = base + rng.normal(scale=0.01, size=(5, k))
    others = np.eye(k)[1:6] * 0.9 + base * 0.3
    return make_model(np.vstack([dupes, others]), segment_vectors={"female/25-34": base + 0.3 * np.ones(k)})


@pytest.mark.parametrize("diversity", [0.0, 0.3, 0.7])
def test_near_duplicates_do_not_take_all_top_slots(diversity: float) -> None:
    model = near_duplicate_model()
    by_score = Ranker(model).rank(FEMALE, n=5, diversity=0.0)
    recs = Ranker(model).rank(FEMALE, n=5, diversity=diversity)
    dupes = [r for r in recs if r.item_id in {f"item{i}" for i in range(5)}]
    assert len(dupes) <= 2
    assert recs[0].item_id == by_score[0].item_id  # the best item always comes first
    assert len(recs) == 5


def test_near_duplicates_fill_in_when_nothing_else_is_left() -> None:
    model = near_duplicate_model()
    recs = Ranker(model).rank(FEMALE, n=4, candidates=[f"item{i}" for i in range(5)])
    assert len(recs) == 4


def test_higher_diversity_spreads_picks() -> None:
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.eye(4), 5, axis=0) + rng.normal(scale=0.2, size=(20, 4))
    model = make_model(clusters, segment_vectors={"female/25-34": [1.0, 0.3, 0.2, 0.1]})

    def clusters_hit(diversity: float) -> int:
        recs = Ranker(model).rank(FEMALE, n=4, diversity=diversity)
        return len({int(r.item_id[4:]) // 5 for r in recs})

    assert clusters_hit(0.8) > clusters_hit(0.0)


def test_bad_diversity_is_rejected() -> None:
    with pytest.raises(ValueError, match="diversity"):
        Ranker(random_model()).rank(FEMALE, n=3, diversity=1.5)


def test_pairs_with_is_cosine_order_without_the_item_itself() -> None:
    model = random_model()
    unit = model.item_factors / np.linalg.norm(model.item_factors, axis=1, keepdims=True)
    sims = unit @ unit[5]
    sims[5] = -np.inf
    expected = [model.item_ids[i] for i in np.argsort(-sims)[:4]]
    recs = Ranker(model).pairs_with("item5", n=4)
    assert [r.item_id for r in recs] == expected
    assert recs[0].score == pytest.approx(float(sims.max()), rel=1e-5)


def test_pairs_with_respects_candidates_and_unknown_items() -> None:
    ranker = Ranker(random_model())
    recs = ranker.pairs_with("item5", n=10, candidates=["item1", "item5", "item9", "zzz"])
    assert {r.item_id for r in recs} == {"item1", "item9"}
    assert ranker.pairs_with("unknown", n=3) == []


def test_zero_vector_items_do_not_break_cosine() -> None:
    model = make_model([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], segment_vectors={"female/25-34": [1.0, 0.5]})
    assert np.all(np.isfinite(model.item_unit))
    recs = Ranker(model).rank(FEMALE, n=3)
    assert recs[0].item_id == "item1"
    assert len(Ranker(model).pairs_with("item0", n=2)) == 2
