"""Offline evaluation on MovieLens: demographic (cold-start) ranking and rating prediction.

Ranking: the USERS are split into train/test with a fixed seed. Every method is fitted on the train users
only (parameters chosen on validation folds of the train users); each test user gets the list of their
segment (gender x age bracket) alone; relevant = the items they rated >= 4. Reported: precision@10 and
NDCG@10 (mean over test users with >= 1 relevant item) and training time.

Rating prediction: 10% of the train users' ratings are held out; RMSE of the global mean, of user+item
biases, of a biased matrix factorisation (funk-SVD model ``mu + b_u + b_i + p_u.q_i`` fitted by
alternating least squares) and, when installed, of scikit-surprise's ``SVD``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from device.recommend.blas import single_threaded_blas
from device.recommend.data import SEGMENT_LABELS, Interactions
from device.recommend.metrics import hit_rate, precision_ndcg, top_n
from device.recommend.mixture import segment_mixture
from device.recommend.train import PLAIN_SPACE, SearchSpace, relevance_matrix, split_users, train
from smartshelf.core.types import Segment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodResult:
    name: str
    precision: float
    ndcg: float
    hit_rate: float
    train_seconds: float
    detail: str = ""


@dataclass(frozen=True)
class RmseResult:
    name: str
    rmse: float | None
    train_seconds: float
    detail: str = ""


# ----------------------------------------------------------------------------- baselines
def global_popularity(data: Interactions) -> npt.NDArray[np.float64]:
    """(16 x items) identical rows: number of train users who liked each item."""
    pop = relevance_matrix(data).sum(axis=0).astype(np.float64)
    return np.tile(pop, (len(SEGMENT_LABELS), 1))


def segment_popularity(data: Interactions) -> npt.NDArray[np.float64]:
    """(16 x items): likes among the segment's train users; ties (and empty segments) by global likes."""
    rel = relevance_matrix(data).astype(np.float64)
    glob = rel.sum(axis=0)
    scores = np.zeros((len(SEGMENT_LABELS), data.n_items))
    np.add.at(scores, data.user_segment[data.user_segment >= 0], rel[data.user_segment >= 0])
    return scores + glob / (glob.max() + 1.0)


def segment_most_rated(data: Interactions) -> npt.NDArray[np.float64]:
    """(16 x items): ratings of any value among the segment's train users ("most rated"); ties by global
    ratings. A weaker baseline than :func:`segment_popularity` (it also counts dislikes), reported beside
    it because "popularity" often means interaction counts; comparisons are made against the likes."""
    return segment_popularity(replace(data, like_threshold=None))  # every interaction counts as a like


def _ranking_metrics(scores: np.ndarray, test: Interactions) -> tuple[float, float, float]:
    rel = relevance_matrix(test)
    known = test.user_segment >= 0
    lists = top_n(scores, 10)[test.user_segment[known]]
    precision, ndcg, _ = precision_ndcg(lists, rel[known], 10)
    return precision, ndcg, hit_rate(lists, rel[known], 10)


def evaluate_ranking(data: Interactions, *, seed: int = 0, test_fraction: float = 0.2) -> list[MethodResult]:
    train_rows, test_rows = split_users(data.n_users, test_fraction, seed)
    train_data, test_data = data.subset_users(train_rows), data.subset_users(test_rows)
    results: list[MethodResult] = []

    def timed(name: str, fit: Callable[[], tuple[np.ndarray, str]]) -> None:
        started = time.perf_counter()
        scores, detail = fit()
        seconds = time.perf_counter() - started
        p, n, h = _ranking_metrics(scores, test_data)
        results.append(MethodResult(name, p, n, h, seconds, detail))

    def svd(space: SearchSpace) -> Callable[[], tuple[np.ndarray, str]]:
        return lambda: _best_method_scores(train_data, seed, space)

    timed("global popularity", lambda: (global_popularity(train_data), ""))
    timed("segment popularity", lambda: (segment_popularity(train_data), ""))
    timed("segment popularity, most rated", lambda: (segment_most_rated(train_data), ""))
    timed("plain SVD segment vectors", svd(PLAIN_SPACE))
    timed("SVD + age/gender kernel (best)", svd(SearchSpace()))
    return results


# ----------------------------------------------------------------------------- camera error
#: The committed age/gender model's error on its test split (``python -m models.training.evaluate``): age MAE
#: 4.95 years is a normal error with sd 4.95 * sqrt(pi / 2) = 6.2 years; gender accuracy 94.5%.
CAMERA_AGE_SD = 6.2
CAMERA_GENDER_ACCURACY = 0.945
#: Estimates drawn per test user.
CAMERA_DRAWS = 5


def simulate_estimates(
    ages: np.ndarray, female: np.ndarray, age_sd: float, gender_accuracy: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(estimated age, p_female) as a camera with this error would report them, calibrated.

    Age: true age + Normal(0, age_sd), reported with spread ``age_sd``. Gender: a score
    ``z ~ Normal(+d, 1)`` for women and ``Normal(-d, 1)`` for men with ``d`` such that ``z > 0`` is right
    ``gender_accuracy`` of the time; ``p_female = sigmoid(2 d z)`` is then the exact posterior.
    """
    d = NormalDist().inv_cdf(gender_accuracy)
    estimated_age = ages + rng.normal(0.0, age_sd, ages.size)
    z = rng.normal(np.where(female, d, -d), 1.0)
    return estimated_age, 1.0 / (1.0 + np.exp(-2.0 * d * z))


def evaluate_camera_error(
    data: Interactions,
    ages: npt.NDArray[np.float64],
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    age_sd: float = CAMERA_AGE_SD,
    gender_accuracy: float = CAMERA_GENDER_ACCURACY,
    draws: int = CAMERA_DRAWS,
) -> list[tuple[str, float]]:
    """NDCG@10 on the test users when their gender and age come from a camera with this error.

    For segment popularity and the best method: the true segment; the estimated one (what a shelf that
    trusts the most likely segment shows); and the expected scores over the segments the estimate may
    belong to (:func:`device.recommend.mixture.segment_mixture`, what the device ranks by with
    ``blend_segments``). Each test user's estimate is drawn ``draws`` times. Same split as
    :func:`evaluate_ranking` with the same seed.
    """
    train_rows, test_rows = split_users(data.n_users, test_fraction, seed)
    train_data, test_data = data.subset_users(train_rows), data.subset_users(test_rows)
    rows = np.flatnonzero((test_data.user_segment >= 0) & np.isfinite(ages[test_rows]))
    true_segment = test_data.user_segment[rows]
    female = np.array([SEGMENT_LABELS[s].startswith("female/") for s in true_segment])
    # Segment popularity as like rates (likes per train user of the segment), so that mixing segments of
    # different sizes weighs each by its probability, not by its head count; each row's order is unchanged.
    users_per_segment = np.bincount(
        train_data.user_segment[train_data.user_segment >= 0], minlength=len(SEGMENT_LABELS)
    )
    tables = {
        "segment popularity": segment_popularity(train_data) / np.maximum(users_per_segment, 1)[:, None],
        "SVD + age/gender kernel (best)": _best_method_scores(train_data, seed, SearchSpace())[0],
    }
    # Each draw: every test user's most likely segment and their segment weights (shared by both tables).
    rng = np.random.default_rng(seed)
    index = {label: i for i, label in enumerate(SEGMENT_LABELS)}
    estimates: list[tuple[list[int], np.ndarray]] = []
    for _ in range(draws):
        est_age, p_female = simulate_estimates(ages[test_rows][rows], female, age_sd, gender_accuracy, rng)
        segments = [
            index[str(Segment.of("female" if p >= 0.5 else "male", a))] for a, p in zip(est_age, p_female)
        ]
        weights = np.zeros((rows.size, len(SEGMENT_LABELS)))
        for u, (a, p) in enumerate(zip(est_age, p_female)):
            for label, w in segment_mixture(float(p), float(a), age_sd).items():
                weights[u, index[label]] = w
        estimates.append((segments, weights))
    relevant = relevance_matrix(test_data)[rows]

    def ndcg(user_scores: np.ndarray) -> float:
        return precision_ndcg(top_n(user_scores, 10), relevant, 10)[1]

    results: list[tuple[str, float]] = []
    for name, table in tables.items():
        results.append((f"{name}, true segment", ndcg(table[true_segment])))
        results.append((f"{name}, estimated segment", float(np.mean([ndcg(table[s]) for s, _ in estimates]))))
        results.append(
            (f"{name}, expected over the estimate", float(np.mean([ndcg(w @ table) for _, w in estimates])))
        )
    return results


@dataclass(frozen=True)
class LearningCurve:
    """NDCG@10 on the test users against the number of train users the methods are fitted on.

    ``ndcg``: segment popularity (mean over ``repeats`` random subsets per size and over the splits);
    ``method_ndcg``: the best method (SVD + age/gender kernel, parameters validated on each subset) on the
    first ``method_repeats`` of those subsets, and ``method_gain`` its NDCG relative to segment popularity
    on the same subsets (e.g. 0.05 = +5%).
    """

    n_users: tuple[int, ...]
    ndcg: tuple[float, ...]
    asymptote: float  # fitted NDCG@10 of segment popularity with unlimited train users (a in a - b / n**c)
    exponent: float  # fitted c
    method_ndcg: tuple[float, ...] = ()
    method_gain: tuple[float, ...] = ()

    @property
    def asymptote_vs_full(self) -> float:
        """The asymptote relative to segment popularity on all the train users (e.g. 0.08 = +8%)."""
        return self.asymptote / self.ndcg[-1] - 1.0


def fit_learning_curve(n_users: npt.ArrayLike, ndcg: npt.ArrayLike) -> tuple[float, float, float]:
    """Least-squares fit of ``ndcg = a - b / n**c`` (c on a grid over 0.25-1.5); returns (a, b, c)."""
    n, y = np.asarray(n_users, np.float64), np.asarray(ndcg, np.float64)
    best: tuple[float, float, float, float] | None = None
    for c in np.linspace(0.25, 1.5, 51):
        x = np.stack([np.ones_like(n), -(n**-c)], axis=1)
        (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
        sse = float(((x @ np.array([a, b]) - y) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, float(a), float(b), float(c))
    assert best is not None
    return best[1], best[2], best[3]


def _best_method_scores(train_data: Interactions, seed: int, space: SearchSpace) -> tuple[np.ndarray, str]:
    model = train(train_data, space=space, seed=seed)
    scores = np.stack([model.scores(label) for label in SEGMENT_LABELS])
    return scores, ", ".join(f"{k}={v}" for k, v in model.metadata["params"].items())


def learning_curve(
    data: Interactions,
    *,
    seeds: list[int],
    test_fraction: float = 0.2,
    fractions: tuple[float, ...] = (0.2, 0.3, 0.45, 0.65, 1.0),
    repeats: int = 8,
    method_repeats: int = 2,
) -> LearningCurve:
    """How segment popularity and the best method improve with more train users (random subsets of the
    train users of each split, the same test users).

    Segment popularity with unlimited users is the best any ranking from gender + age bracket alone can
    do (it is P(liked | segment)); the fitted asymptote says how much of the gap to that is sampling
    noise that more shoppers per segment would remove. ``method_repeats=0`` skips the best method (each
    subset costs one validated training).
    """
    segpop: dict[int, list[float]] = {}
    paired: dict[int, list[tuple[float, float]]] = {}
    for seed in seeds:
        train_rows, test_rows = split_users(data.n_users, test_fraction, seed)
        test = data.subset_users(test_rows)
        rng = np.random.default_rng(1000 + seed)
        for fraction in fractions:
            size = round(fraction * train_rows.size)
            draws = (
                [train_rows]
                if size >= train_rows.size
                else [np.sort(rng.choice(train_rows, size, replace=False)) for _ in range(repeats)]
            )
            values = []
            for i, rows in enumerate(draws):
                subset = data.subset_users(rows)
                base = _ranking_metrics(segment_popularity(subset), test)[1]
                values.append(base)
                if i < method_repeats:
                    best = _ranking_metrics(_best_method_scores(subset, seed, SearchSpace())[0], test)[1]
                    paired.setdefault(size, []).append((best, base))
            segpop.setdefault(size, []).append(float(np.mean(values)))
    sizes = sorted(segpop)
    means = [float(np.mean(segpop[n])) for n in sizes]
    a, _, c = fit_learning_curve(sizes, means)
    pairs = [np.array(paired[n]) for n in sizes] if paired else []
    method = [float(p[:, 0].mean()) for p in pairs]
    gain = [float(p[:, 0].mean() / p[:, 1].mean() - 1.0) for p in pairs]
    return LearningCurve(tuple(sizes), tuple(means), a, c, tuple(method), tuple(gain))


# ----------------------------------------------------------------------------- rating prediction
def _groups(index: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(n + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n)]


def fit_biased_mf(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    rank: int = 16,
    reg: float = 0.08,
    iterations: int = 12,
    seed: int = 0,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Biased MF ``mu + b_u + b_i + p_u.q_i`` by ALS with weighted-lambda regularisation; returns predict."""
    rng = np.random.default_rng(seed)
    mu = float(ratings.mean())
    p = rng.normal(0.0, 0.1, (n_users, rank))
    q = rng.normal(0.0, 0.1, (n_items, rank))
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    by_user = _groups(users, n_users)
    by_item = _groups(items, n_items)
    eye = np.eye(rank + 1)

    def solve(
        groups: list[np.ndarray],
        other: np.ndarray,
        other_bias: np.ndarray,
        other_idx: np.ndarray,
        own: np.ndarray,
        own_bias: np.ndarray,
    ) -> None:
        design_all = np.hstack([other, np.ones((other.shape[0], 1))])
        for row, idx in enumerate(groups):
            if idx.size == 0:
                continue
            cols = other_idx[idx]
            design = design_all[cols]
            target = ratings[idx] - mu - other_bias[cols]
            sol = np.linalg.solve(design.T @ design + reg * idx.size * eye, design.T @ target)
            own[row] = sol[:rank]
            own_bias[row] = sol[rank]

    for _ in range(iterations):
        solve(by_user, q, bi, items, p, bu)
        solve(by_item, p, bu, users, q, bi)

    def predict(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        known_u = u < n_users
        known_i = i < n_items
        out = np.full(u.shape, mu)
        both = known_u & known_i
        out[both] += bu[u[both]] + bi[i[both]] + np.einsum("ij,ij->i", p[u[both]], q[i[both]])
        return np.clip(out, 1.0, 5.0)

    return predict


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


@single_threaded_blas()
def evaluate_rmse(
    data: Interactions,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    holdout: float = 0.1,
    surprise: bool = True,
) -> list[RmseResult]:
    """RMSE on ``holdout`` of the train users' ratings (see the module docstring)."""
    train_rows, _ = split_users(data.n_users, test_fraction, seed)
    train_data = data.subset_users(train_rows)
    rng = np.random.default_rng(seed + 1)
    held = rng.random(train_data.users.size) < holdout
    u, i, r = train_data.users, train_data.items, train_data.values.astype(np.float64)
    fu, fi, fr = u[~held], i[~held], r[~held]
    hu, hi, hr = u[held], i[held], r[held]
    n_users, n_items = train_data.n_users, train_data.n_items
    results: list[RmseResult] = []

    started = time.perf_counter()
    mean_pred = np.full(hr.shape, fr.mean())
    results.append(RmseResult("global mean", _rmse(mean_pred, hr), time.perf_counter() - started))

    started = time.perf_counter()
    bias_only = fit_biased_mf(fu, fi, fr, n_users, n_items, rank=0, reg=0.05, iterations=6, seed=seed)
    results.append(
        RmseResult(
            "user + item biases", _rmse(bias_only(hu, hi), hr), time.perf_counter() - started, "ALS, reg 0.05"
        )
    )

    # Choose the regularisation on a validation slice of the fit ratings (never the held-out ones).
    started = time.perf_counter()
    val = np.random.default_rng(seed + 2).random(fu.size) < 0.1
    best_reg, best_val = 0.08, np.inf
    for reg in (0.05, 0.08, 0.12, 0.18, 0.25):
        pred = fit_biased_mf(
            fu[~val], fi[~val], fr[~val], n_users, n_items, rank=16, reg=reg, iterations=8, seed=seed
        )
        score = _rmse(pred(fu[val], fi[val]), fr[val])
        if score < best_val:
            best_reg, best_val = reg, score
    model = fit_biased_mf(fu, fi, fr, n_users, n_items, rank=16, reg=best_reg, iterations=12, seed=seed)
    results.append(
        RmseResult(
            "biased MF (funk-SVD model, ALS)",
            _rmse(model(hu, hi), hr),
            time.perf_counter() - started,
            f"rank 16, reg {best_reg} (validated)",
        )
    )

    if surprise:
        results.append(_surprise_rmse(fu, fi, fr, hu, hi, hr, seed))
    return results


def _surprise_rmse(
    fu: np.ndarray, fi: np.ndarray, fr: np.ndarray, hu: np.ndarray, hi: np.ndarray, hr: np.ndarray, seed: int
) -> RmseResult:
    try:
        surprise = importlib.import_module("surprise")
    except ImportError:
        return RmseResult("scikit-surprise SVD", None, 0.0, "not installed (pip install scikit-surprise)")
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/ratings.tsv"
        np.savetxt(path, np.column_stack([fu, fi, fr]), fmt=["%d", "%d", "%.1f"], delimiter="\t")
        reader = surprise.Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5))
        trainset = surprise.Dataset.load_from_file(path, reader=reader).build_full_trainset()
    algo = surprise.SVD(random_state=seed)
    algo.fit(trainset)
    pred = np.array([algo.predict(str(a), str(b)).est for a, b in zip(hu.tolist(), hi.tolist())])
    return RmseResult(
        "scikit-surprise SVD",
        _rmse(pred, hr),
        time.perf_counter() - started,
        "defaults (100 factors, 20 epochs SGD)",
    )
