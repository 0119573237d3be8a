"""Trainer: recovers a known structure, empty segments, shrinkage, SVD paths, metrics, data loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.recommend import train as train_mod
from device.recommend.data import SEGMENT_LABELS, DataError, load_csv
from device.recommend.metrics import hit_rate, precision_ndcg, top_n
from device.recommend.train import SearchSpace, TrainParams, build_model, fit_svd, search, train
from tools.recommender.synthetic import two_group_interactions, write_admin_export

SMALL_SPACE = SearchSpace(
    ranks=(1, 2, 4),
    shrinks=(0.0, 5.0),
    bandwidths=(0.0, 0.75),
    other_genders=(0.0, 0.25),
    seen_weights=(0.0, 0.5),
)
WOMEN_ITEMS = {f"item{i}" for i in range(10)}
MEN_ITEMS = {f"item{i}" for i in range(10, 20)}


def top_items(model, label: str, n: int = 10) -> set[str]:
    scores = model.scores(label)
    return {model.item_ids[i] for i in np.argsort(-scores)[:n]}


def test_segment_vectors_rank_their_groups_items_first() -> None:
    data = two_group_interactions(seed=1)
    model = train(data, space=SMALL_SPACE, seed=0)
    for label in SEGMENT_LABELS:
        expected = WOMEN_ITEMS if label.startswith("female/") else MEN_ITEMS
        assert len(top_items(model, label) & expected) >= 9, label
    # Generic picks (global vector + popularity) mix both groups.
    generic = {model.item_ids[i] for i in np.argsort(-model.scores(None))[:10]}
    assert generic & WOMEN_ITEMS and generic & MEN_ITEMS
    assert model.metadata["metrics"]["validation_ndcg@10"] > 0.5
    assert model.metadata["n_users"] == data.n_users


def test_plain_svd_with_a_fixed_rank_recovers_the_structure() -> None:
    model = build_model(two_group_interactions(seed=2), TrainParams(rank=2, shrink=5.0))
    assert top_items(model, "female/35-44") == WOMEN_ITEMS
    assert top_items(model, "male/18-24") == MEN_ITEMS
    assert model.rank == 2
    assert model.metadata["method"] == "svd-segment"


def test_empty_segment_gets_the_global_vector() -> None:
    data = two_group_interactions(seed=3, empty_segments=("female/65+", "male/0-12"))
    model = build_model(data, TrainParams(rank=3, shrink=5.0))
    for label in ("female/65+", "male/0-12"):
        np.testing.assert_array_equal(model.segment_vector(label), model.global_vector)
    assert not np.allclose(model.segment_vector("female/25-34"), model.global_vector)
    assert model.metadata["segment_users"]["female/65+"] == 0


def test_shrinkage_pulls_segment_vectors_toward_the_global_vector() -> None:
    data = two_group_interactions(seed=4)
    distances = []
    for shrink in (0.0, 10.0, 1000.0):
        model = build_model(data, TrainParams(rank=3, shrink=shrink))
        distances.append(float(np.linalg.norm(model.segment_vector("male/25-34") - model.global_vector)))
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.05 * distances[0]


def test_search_picks_from_the_space_and_reports_a_table() -> None:
    params, ndcg, table = search(two_group_interactions(seed=5), SMALL_SPACE, n_folds=3, seed=0)
    assert params.rank in SMALL_SPACE.ranks and params.shrink in SMALL_SPACE.shrinks
    assert ndcg == max(row["ndcg"] for row in table)
    assert len(table) == 3 * 2 * 2 * 2 * 2


def test_search_needs_enough_users() -> None:
    data = two_group_interactions(n_users=4)
    with pytest.raises(DataError, match="at least"):
        search(data, SMALL_SPACE, n_folds=3)


def test_randomised_sparse_svd_matches_the_dense_one(monkeypatch: pytest.MonkeyPatch) -> None:
    data = two_group_interactions(n_users=80, seed=6)
    dense = fit_svd(data, 0.5, 4)
    monkeypatch.setattr(train_mod, "DENSE_LIMIT", 0)
    sparse = fit_svd(data, 0.5, 4)
    np.testing.assert_allclose(sparse.popularity, dense.popularity, atol=1e-6)
    m = train_mod.preference_matrix(data, 0.5) - dense.popularity
    error_dense = np.linalg.norm(m - dense.user_factors @ dense.item_factors.T)
    error_sparse = np.linalg.norm(m - sparse.user_factors @ sparse.item_factors.T)
    # Same optimal rank-4 approximation error (Eckart-Young) up to the randomised method's tolerance.
    assert error_sparse <= error_dense * 1.01
    np.testing.assert_allclose(
        np.linalg.norm(sparse.item_factors, axis=0), np.linalg.norm(dense.item_factors, axis=0), rtol=0.02
    )


def test_metrics_on_a_hand_computed_example() -> None:
    relevant = np.array(
        [[True, False, True, False], [False, False, False, False], [False, True, False, False]]
    )
    lists = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [0, 2, 3, 1]])
    precision, ndcg, counted = precision_ndcg(lists, relevant, k=2)
    assert counted == 2  # the user without relevant items is left out
    assert precision == pytest.approx((0.5 + 0.0) / 2)
    assert ndcg == pytest.approx((1.0 / (1 + 1 / np.log2(3)) + 0.0) / 2)
    assert hit_rate(lists, relevant, k=2) == pytest.approx(0.5)
    assert hit_rate(lists, relevant, k=4) == pytest.approx(1.0)
    np.testing.assert_array_equal(top_n(np.array([[0.1, 0.9, 0.5, 0.9]]), 3), [[1, 3, 2]])


def test_load_csv_with_users_and_segments(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text(
        "user,item,value,time\nv1,A,1,2024-01-01T10:00:00\nv1,B,2,2024-01-02\nv2,A,1,1700000000\nv3,C,-1,5\n"
    )
    (tmp_path / "u.csv").write_text("user,gender,age\nv1,F,31\nv2,male,70\n")
    (tmp_path / "items.csv").write_text("item,name\nA,Alpha\nB,Beta\nC,Gamma\nD,Delta\n")
    data = load_csv(tmp_path / "i.csv", tmp_path / "u.csv", tmp_path / "items.csv")
    assert data.item_ids == ("A", "B", "C", "D")
    assert [SEGMENT_LABELS[s] if s >= 0 else None for s in data.user_segment] == [
        "female/25-34",
        "male/65+",
        None,
    ]
    assert data.users.size == 3  # the refund row (value <= 0) is dropped
    assert data.liked.all()
    (tmp_path / "s.csv").write_text("segment,item\nfemale/18-24,A\nmale/45-54,B\n")
    by_segment = load_csv(tmp_path / "s.csv")
    assert by_segment.n_users == 2
    assert [SEGMENT_LABELS[s] for s in by_segment.user_segment] == ["female/18-24", "male/45-54"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,item\nv1,\n", "line 2: empty item"),
        ("user,item,value\nv1,A,lots\n", "line 2: value 'lots'"),
        ("user,item,time\nv1,A,yesterday\n", "line 2: time 'yesterday'"),
        ("who,what\n1,2\n", "needs columns item"),
        ("segment,item\nfemale/99,A\n", "bad segment|unknown age bracket"),
    ],
)
def test_bad_interaction_csv_names_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_csv(path)
    assert "bad.csv" in str(info.value)


def test_bad_users_csv_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text("user,item\nv1,A\n")
    (tmp_path / "u.csv").write_text("user,gender,age\nv1,X,30\n")
    with pytest.raises(DataError, match=r"u.csv line 2: gender 'x'"):
        load_csv(tmp_path / "i.csv", tmp_path / "u.csv")


def test_segment_level_export_is_detected_and_learnt(tmp_path: Path) -> None:
    data = load_csv(*write_admin_export(tmp_path))
    assert train_mod.is_segment_level(data)
    assert not train_mod.is_segment_level(two_group_interactions())
    model = train(data, seed=0)
    assert model.metadata["method"] == "segment-share-svd"
    assert model.rank <= 15
    for label in ("female/25-34", "male/45-54"):
        expected = WOMEN_ITEMS if label.startswith("female/") else MEN_ITEMS
        assert len(top_items(model, label) & expected) >= 9, label
    generic = {model.item_ids[i] for i in np.argsort(-model.scores(None))[:10]}
    assert generic & WOMEN_ITEMS and generic & MEN_ITEMS


def test_segment_level_empty_segment_is_global(tmp_path: Path) -> None:
    interactions, users = write_admin_export(tmp_path)
    text = interactions.read_text().splitlines()
    kept = [line for line in text if not line.startswith("male/65+,")]
    interactions.write_text("\n".join(kept) + "\n")
    model = build_model(load_csv(interactions, users), TrainParams(rank=4, shrink=5.0), level="segment")
    np.testing.assert_array_equal(model.segment_vector("male/65+"), model.global_vector)
    np.testing.assert_allclose(model.scores("male/65+"), model.popularity)


def test_sparse_relevance_gives_the_same_metrics_as_dense() -> None:
    from device.recommend.metrics import SparseRelevance

    rng = np.random.default_rng(7)
    dense = rng.random((40, 25)) < 0.15
    dense[3] = False  # a user without relevant items is left out either way
    users, items = np.nonzero(dense)
    sparse = SparseRelevance(users, items, 40, 25)
    lists = np.argsort(rng.random((40, 25)), axis=1)[:, :10]
    assert precision_ndcg(lists, sparse) == pytest.approx(precision_ndcg(lists, dense))
    assert hit_rate(lists, sparse) == pytest.approx(hit_rate(lists, dense))
    rows = np.array([5, 1, 30, 3])
    assert precision_ndcg(lists[rows], sparse[rows]) == pytest.approx(
        precision_ndcg(lists[rows], dense[rows])
    )
    mask = np.arange(40) % 3 == 0
    assert hit_rate(lists[mask], sparse[mask]) == pytest.approx(hit_rate(lists[mask], dense[mask]))


def test_single_threaded_blas_restores_the_thread_count() -> None:
    from device.recommend.blas import _openblas_controls, single_threaded_blas

    controls = _openblas_controls()
    if controls is None:
        with single_threaded_blas():  # a no-op where OpenBLAS cannot be controlled
            pass
        pytest.skip("OpenBLAS thread control not available here")
    get, _ = controls
    before = get()
    with single_threaded_blas():
        assert get() == 1
    assert get() == before


def test_single_threaded_blas_as_a_decorator_covers_every_call() -> None:
    from device.recommend.blas import _openblas_controls, single_threaded_blas

    controls = _openblas_controls()
    if controls is None:
        pytest.skip("OpenBLAS thread control not available here")
    get, _ = controls
    before = get()

    @single_threaded_blas()
    def threads_inside() -> int:
        return get()

    assert [threads_inside(), threads_inside()] == [1, 1]  # the context is re-entered on each call
    assert get() == before
