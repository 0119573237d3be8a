"""Training a factor file from interactions: truncated SVD + demographic segment vectors.

Method
------
1. Preference matrix ``X`` (users x items): 1 for a liked interaction (rating >= ``like_threshold``,
   or any purchase), ``seen_weight`` for a rated-but-not-liked one, 0 otherwise.
2. Item prior ``p`` = column mean of ``X`` (the share of users who liked the item): the popularity.
3. Truncated SVD of the centred matrix ``M = X - 1 p^T = U S V^T``; item factors ``V_k S_k``,
   user factors ``U_k``. So ``u . (V S) + p`` is the rank-k reconstruction of a user's preferences.
4. Segment vector = weighted mean of the user factors, shrunk toward the global vector (the mean of all
   users, 0 here) by ``n / (n + shrink)``. "plain": weight 1 for the segment's own users, 0 otherwise.
   "kernel" (the default, better): users of neighbouring age brackets count with a Gaussian weight
   ``exp(-d^2 / 2 bandwidth^2)`` (d = bracket distance) and users of the other gender with
   ``other_gender``. An empty segment gets the global vector (its score is the popularity prior).
5. Rank ``k``, ``shrink``, ``bandwidth``, ``other_gender`` and ``seen_weight`` are chosen by NDCG@10 of the
   segment rankings on validation folds *of the training users* (users split, never items).

The device computes ``segment_vector . item_factors[i] + popularity[i]``: nothing else.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from device.recommend.blas import single_threaded_blas
from device.recommend.data import SEGMENT_LABELS, DataError, Interactions
from device.recommend.factors import FactorModel
from device.recommend.metrics import SparseRelevance, precision_ndcg, top_n
from smartshelf.core.types import AGE_BRACKETS

logger = logging.getLogger(__name__)

_GENDER_OF_SEGMENT = np.array([0 if s.startswith("female/") else 1 for s in SEGMENT_LABELS])
_BRACKET_OF_SEGMENT = np.array([AGE_BRACKETS.index(s.split("/", 1)[1]) for s in SEGMENT_LABELS])

#: Dense SVD (via the Gram matrix of the smaller side) up to this many matrix cells and this size of the
#: smaller side; a randomised SVD of the sparse matrix above.
DENSE_LIMIT = 10_000_000
GRAM_LIMIT = 2_000


@dataclass(frozen=True)
class TrainParams:
    rank: int = 16
    shrink: float = 10.0
    bandwidth: float = 0.0  # 0: hard segments ("plain")
    other_gender: float = 0.0
    seen_weight: float = 0.0


@dataclass(frozen=True)
class SearchSpace:
    ranks: tuple[int, ...] = (4, 8, 16, 24, 32, 48)
    shrinks: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0, 50.0)
    bandwidths: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0)
    other_genders: tuple[float, ...] = (0.0, 0.1, 0.25)
    seen_weights: tuple[float, ...] = (0.0, 0.25, 0.5)


#: "plain SVD": hard segments, fixed shrinkage, liked items only; only the rank is validated.
PLAIN_SPACE = SearchSpace(
    ranks=(2, 4, 8, 16, 24, 32, 48),
    shrinks=(10.0,),
    bandwidths=(0.0,),
    other_genders=(0.0,),
    seen_weights=(0.0,),
)


@dataclass(frozen=True)
class SvdFit:
    popularity: npt.NDArray[np.float64]  # (items,)
    user_factors: npt.NDArray[np.float64]  # (users, k_max) = U
    item_factors: npt.NDArray[np.float64]  # (items, k_max) = V S


# ----------------------------------------------------------------------------- matrices
def preference_matrix(data: Interactions, seen_weight: float) -> npt.NDArray[np.float32]:
    """Dense users x items preference matrix (max over repeated interactions)."""
    x = np.zeros((data.n_users, data.n_items), dtype=np.float32)
    weights = np.where(data.liked, 1.0, seen_weight).astype(np.float32)
    np.maximum.at(x, (data.users, data.items), weights)
    return x


def _sparse_pref(data: Interactions, seen_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights = np.where(data.liked, 1.0, seen_weight)
    key = data.users * data.n_items + data.items
    order = np.lexsort((-weights, key))
    key, weights = key[order], weights[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, weights = key[first], weights[first]
    keep = weights > 0
    return key[keep] // data.n_items, key[keep] % data.n_items, weights[keep].astype(np.float64)


def _gram_svd(m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k SVD of a dense matrix through the eigendecomposition of the smaller Gram matrix."""
    m = m.astype(np.float64, copy=False)
    if m.shape[0] <= m.shape[1]:
        evals, evecs = np.linalg.eigh(m @ m.T)
        idx = np.argsort(evals)[::-1][:k]
        s = np.sqrt(np.maximum(evals[idx], 0.0))
        u = evecs[:, idx]
        vs = m.T @ u  # = V S
        return u, s, vs
    evals, evecs = np.linalg.eigh(m.T @ m)
    idx = np.argsort(evals)[::-1][:k]
    s = np.sqrt(np.maximum(evals[idx], 0.0))
    v = evecs[:, idx]
    u = (m @ v) / np.maximum(s, 1e-12)
    return u, s, v * s


def _randomized_svd_sparse(
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    shape: tuple[int, int],
    centre: np.ndarray,
    k: int,
    *,
    oversample: int = 10,
    n_iter: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k SVD of ``X - 1 centre^T`` for a sparse X in COO form (Halko et al. randomised range finder)."""
    n_users, n_items = shape
    r = min(k + oversample, n_users, n_items)

    def x_times(q: np.ndarray) -> np.ndarray:  # X @ q, q: items x r
        out = np.empty((n_users, q.shape[1]))
        for j in range(q.shape[1]):
            out[:, j] = np.bincount(rows, weights=vals * q[cols, j], minlength=n_users)
        return out - np.outer(np.ones(n_users), centre @ q)

    def xt_times(q: np.ndarray) -> np.ndarray:  # X^T @ q, q: users x r
        out = np.empty((n_items, q.shape[1]))
        for j in range(q.shape[1]):
            out[:, j] = np.bincount(cols, weights=vals * q[rows, j], minlength=n_items)
        return out - np.outer(centre, q.sum(axis=0))

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(x_times(rng.standard_normal((n_items, r))))
    for _ in range(n_iter):
        z, _ = np.linalg.qr(xt_times(q))
        q, _ = np.linalg.qr(x_times(z))
    b = xt_times(q).T  # r x items = Q^T M
    ub, s, vt = np.linalg.svd(b, full_matrices=False)
    u = (q @ ub)[:, :k]
    return u, s[:k], (vt[:k].T * s[:k])


def fit_svd(data: Interactions, seen_weight: float, k_max: int) -> SvdFit:
    """Popularity prior and the top ``k_max`` factors of the centred preference matrix."""
    k_max = max(1, min(k_max, data.n_users, data.n_items))
    if data.n_users * data.n_items <= DENSE_LIMIT and min(data.n_users, data.n_items) <= GRAM_LIMIT:
        x = preference_matrix(data, seen_weight)
        popularity = x.mean(axis=0, dtype=np.float64)
        u, _, vs = _gram_svd(x - popularity.astype(np.float32), k_max)
    else:
        rows, cols, vals = _sparse_pref(data, seen_weight)
        popularity = np.bincount(cols, weights=vals, minlength=data.n_items) / data.n_users
        u, _, vs = _randomized_svd_sparse(rows, cols, vals, (data.n_users, data.n_items), popularity, k_max)
    # Fix signs so results are reproducible: the largest |component| of each item factor is positive.
    signs = np.sign(vs[np.abs(vs).argmax(axis=0), np.arange(vs.shape[1])])
    signs[signs == 0] = 1.0
    return SvdFit(popularity=popularity, user_factors=u * signs, item_factors=vs * signs)


# ----------------------------------------------------------------------------- segments
def segment_weights(user_segment: npt.NDArray[np.int64], bandwidth: float, other_gender: float) -> np.ndarray:
    """(16 segments x users) weights of each user in each segment's mean."""
    known = user_segment >= 0
    seg = np.where(known, user_segment, 0)
    user_gender = _GENDER_OF_SEGMENT[seg]
    user_bracket = _BRACKET_OF_SEGMENT[seg]
    distance = np.abs(_BRACKET_OF_SEGMENT[:, None] - user_bracket[None, :]).astype(np.float64)
    if bandwidth > 0:
        age_w = np.exp(-(distance**2) / (2.0 * bandwidth**2))
    else:
        age_w = (distance == 0).astype(np.float64)
    gender_w = np.where(_GENDER_OF_SEGMENT[:, None] == user_gender[None, :], 1.0, other_gender)
    return age_w * gender_w * known[None, :]


def segment_vectors(
    user_factors: np.ndarray, user_segment: npt.NDArray[np.int64], params: TrainParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segment vectors 16 x k, global vector k, effective user count per segment)."""
    global_vector = user_factors.mean(axis=0) if user_factors.shape[0] else np.zeros(user_factors.shape[1])
    weights = segment_weights(user_segment, params.bandwidth, params.other_gender)
    mass = weights.sum(axis=1)
    sums = weights @ (user_factors - global_vector)
    vectors = global_vector + sums / (mass + params.shrink)[:, None].clip(min=1e-12)
    vectors[mass <= 0] = global_vector
    return vectors, global_vector, mass


# ----------------------------------------------------------------------------- validation
def _folds(n_users: int, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(n_users)
    parts = np.array_split(order, n_folds)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(parts[i])) for i in range(n_folds)]


def relevance_matrix(data: Interactions) -> npt.NDArray[np.bool_]:
    """Dense users x items: liked (small data only; see :func:`relevance`)."""
    rel = np.zeros((data.n_users, data.n_items), dtype=bool)
    liked = data.liked
    rel[data.users[liked], data.items[liked]] = True
    return rel


def relevance(data: Interactions) -> SparseRelevance:
    """Liked items per user without a dense matrix (validation and retrain scoring)."""
    liked = data.liked
    return SparseRelevance(data.users[liked], data.items[liked], data.n_users, data.n_items)


def _search_users(
    data: Interactions, space: SearchSpace, *, n_folds: int, seed: int
) -> tuple[TrainParams, float, list[dict[str, float]]]:
    """Grid search by mean validation NDCG@10 over user folds; returns (best params, its NDCG, table)."""
    seen_weights = space.seen_weights if data.like_threshold is not None else (0.0,)
    k_max = max(space.ranks)
    known = np.flatnonzero(data.user_segment >= 0)
    if known.size < n_folds * 2:
        raise DataError(
            f"need at least {n_folds * 2} users with a known segment to validate, got {known.size}"
        )
    folds = _folds(known.size, n_folds, seed)
    results: dict[tuple, list[float]] = {}
    for seen in seen_weights:
        for fit_idx, val_idx in folds:
            # Fit on every user outside the validation fold (including users with unknown segment).
            val_users = known[val_idx]
            fit_users = np.setdiff1d(np.arange(data.n_users), val_users)
            fit_data = data.subset_users(fit_users)
            val_data = data.subset_users(val_users)
            svd = fit_svd(fit_data, seen, k_max)
            rel = relevance(val_data)
            val_seg = val_data.user_segment
            for bw, og in itertools.product(space.bandwidths, space.other_genders):
                weights = segment_weights(fit_data.user_segment, bw, og)
                mass = weights.sum(axis=1)
                g = svd.user_factors.mean(axis=0)
                sums = weights @ (svd.user_factors - g)
                for k in space.ranks:
                    if k > svd.item_factors.shape[1]:
                        continue
                    base = svd.item_factors[:, :k]
                    for shrink in space.shrinks:
                        vec = g[:k] + sums[:, :k] / np.maximum(mass + shrink, 1e-12)[:, None]
                        vec[mass <= 0] = g[:k]
                        scores = vec @ base.T + svd.popularity
                        lists = top_n(scores, 10)[val_seg]
                        _, ndcg, _ = precision_ndcg(lists, rel, 10)
                        key = (k, shrink, bw, og, seen)
                        results.setdefault(key, []).append(ndcg)
    return _best(results, n_folds)


def _best(
    results: dict[tuple, list[float]], n_folds: int
) -> tuple[TrainParams, float, list[dict[str, float]]]:
    table = [
        {
            "rank": k,
            "shrink": s,
            "bandwidth": b,
            "other_gender": o,
            "seen_weight": w,
            "ndcg": float(np.mean(v)),
        }
        for (k, s, b, o, w), v in results.items()
        if len(v) == n_folds
    ]
    if not table:
        raise DataError("no parameter combination could be validated (too little data?)")
    best = max(table, key=lambda r: (round(r["ndcg"], 12), -r["rank"], r["shrink"]))
    params = TrainParams(
        rank=int(best["rank"]),
        shrink=best["shrink"],
        bandwidth=best["bandwidth"],
        other_gender=best["other_gender"],
        seen_weight=best["seen_weight"],
    )
    return params, best["ndcg"], table


# ----------------------------------------------------------------------------- segment-level data
#: Grid for segment-level data (shrink is in sale lines; rank is at most 15 with 16 segments).
SEGMENT_SPACE = SearchSpace(
    ranks=(2, 4, 8, 15),
    shrinks=(0.0, 5.0, 20.0, 50.0, 200.0),
    bandwidths=(0.0, 0.75, 1.5),
    other_genders=(0.0, 0.25),
    seen_weights=(0.0,),
)


def is_segment_level(data: Interactions) -> bool:
    """True when the data carries no shopper identity: every user is a segment (the admin's export uses
    the segment label as the user id) or has a single interaction (rows without a user)."""
    known = data.user_segment >= 0
    if not known.any():
        return False
    labels = np.array(SEGMENT_LABELS)[data.user_segment[known]]
    ids = np.array(data.user_ids, dtype=object)[known]
    if all(a == b for a, b in zip(ids, labels)):
        return True
    per_user = np.bincount(data.users, minlength=data.n_users)
    return bool(per_user.max(initial=0) <= 1)


def _segment_counts(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(16 x items units bought per segment, items units bought by everyone incl. unknown segments)."""
    liked = data.liked
    seg = data.user_segment[data.users]
    units = data.values.astype(np.float64)
    counts = np.zeros((len(SEGMENT_LABELS), data.n_items))
    mask = liked & (seg >= 0)
    np.add.at(counts, (seg[mask], data.items[mask]), units[mask])
    total = np.bincount(data.items[liked], weights=units[liked], minlength=data.n_items)
    return counts, total


def _segment_shares(
    counts: np.ndarray, total: np.ndarray, params: TrainParams
) -> tuple[np.ndarray, np.ndarray]:
    """(16 x items kernel-smoothed, shrunk purchase shares, global share), both scaled so the mean is 1."""
    n_items = total.size
    glob = total / max(total.sum(), 1e-12) * n_items
    weights = segment_weights(np.arange(len(SEGMENT_LABELS)), params.bandwidth, params.other_gender)
    num = weights @ counts * n_items
    mass = weights @ counts.sum(axis=1)
    shares = glob + (num - mass[:, None] * glob) / np.maximum(mass + params.shrink, 1e-12)[:, None]
    shares[mass <= 0] = glob
    return shares, glob


def _segment_svd(shares: np.ndarray, glob: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(segment vectors 16 x k, item factors items x k) of the rank-k SVD of ``shares - glob``."""
    u, s, vt = np.linalg.svd(shares - glob, full_matrices=False)
    k = max(1, min(k, s.size))
    signs = np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return u[:, :k] * signs, (vt[:k].T * s[:k]) * signs


def _search_segments(
    data: Interactions, space: SearchSpace, *, n_folds: int, seed: int
) -> tuple[TrainParams, float, list[dict[str, float]]]:
    """Grid search on random folds of the sale lines: each held-out line is a shopper of its segment."""
    seg = data.user_segment[data.users]
    rows = np.flatnonzero((seg >= 0) & data.liked)
    if rows.size < n_folds * 2:
        raise DataError(
            f"need at least {n_folds * 2} sales with a known segment to validate, got {rows.size}"
        )
    order = np.random.default_rng(seed).permutation(rows.size)
    results: dict[tuple, list[float]] = {}
    discount = 1.0 / np.log2(np.arange(2, 12))
    for part in np.array_split(order, n_folds):
        held = np.zeros(data.users.size, dtype=bool)
        held[rows[part]] = True
        counts, total = _segment_counts(data.subset_rows(~held))
        val_seg, val_item = seg[held], data.items[held]
        for bw, og, shrink in itertools.product(space.bandwidths, space.other_genders, space.shrinks):
            params = TrainParams(shrink=shrink, bandwidth=bw, other_gender=og)
            shares, glob = _segment_shares(counts, total, params)
            for k in space.ranks:
                vectors, factors = _segment_svd(shares, glob, k)
                lists = top_n(vectors @ factors.T + glob, 10)[val_seg]
                hit = lists == val_item[:, None]
                ndcg = float((hit @ discount[: lists.shape[1]]).mean())
                results.setdefault((k, shrink, bw, og, 0.0), []).append(ndcg)
    return _best(results, n_folds)


def _build_segment_model(data: Interactions, params: TrainParams, metadata: dict) -> FactorModel:
    counts, total = _segment_counts(data)
    shares, glob = _segment_shares(counts, total, params)
    vectors, factors = _segment_svd(shares, glob, params.rank)
    meta = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": data.source,
        "method": "segment-share-svd",
        "rank": int(factors.shape[1]),
        "params": asdict(replace(params, rank=int(factors.shape[1]))),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": int(data.users.size),
        "data_until": float(data.times.max()) if data.times.size else None,
        "segment_units": {label: float(c) for label, c in zip(SEGMENT_LABELS, counts.sum(axis=1))},
        "score": "segment_vector . item_factors + popularity",
    }
    meta.update(metadata)
    return FactorModel(
        item_ids=data.item_ids,
        item_factors=factors.astype(np.float32),
        segment_ids=SEGMENT_LABELS,
        segment_vectors=vectors.astype(np.float32),
        global_vector=np.zeros(factors.shape[1], dtype=np.float32),
        popularity=glob.astype(np.float32),
        metadata=meta,
    )


# ----------------------------------------------------------------------------- dispatch
def _segment_level(data: Interactions, level: str) -> bool:
    if level not in ("auto", "user", "segment"):
        raise DataError(f"level must be auto, user or segment, got {level!r}")
    return is_segment_level(data) if level == "auto" else level == "segment"


def search(
    data: Interactions,
    space: SearchSpace | None = None,
    *,
    n_folds: int = 3,
    seed: int = 0,
    level: str = "auto",
) -> tuple[TrainParams, float, list[dict[str, float]]]:
    """Choose parameters by validation NDCG@10: over folds of the users (user-level data) or of the sale
    lines (segment-level data, see :func:`is_segment_level`). Returns (params, NDCG, table)."""
    if _segment_level(data, level):
        return _search_segments(data, space or SEGMENT_SPACE, n_folds=n_folds, seed=seed)
    return _search_users(data, space or SearchSpace(), n_folds=n_folds, seed=seed)


def build_model(
    data: Interactions, params: TrainParams, *, metadata: dict | None = None, level: str = "auto"
) -> FactorModel:
    """Fit on all of ``data`` with fixed parameters and return the factor model."""
    if _segment_level(data, level):
        return _build_segment_model(data, params, metadata or {})
    return _build_user_model(data, params, metadata or {})


# ----------------------------------------------------------------------------- training
def _build_user_model(data: Interactions, params: TrainParams, metadata: dict) -> FactorModel:
    svd = fit_svd(data, params.seen_weight, params.rank)
    k = svd.item_factors.shape[1]
    vectors, global_vector, _ = segment_vectors(svd.user_factors, data.user_segment, replace(params, rank=k))
    counts = np.bincount(data.user_segment[data.user_segment >= 0], minlength=len(SEGMENT_LABELS))
    meta = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": data.source,
        "method": "svd-segment-kernel" if params.bandwidth > 0 or params.other_gender > 0 else "svd-segment",
        "rank": k,
        "params": asdict(params),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": int(data.users.size),
        "data_until": float(data.times.max()) if data.times.size else None,
        "segment_users": {label: int(c) for label, c in zip(SEGMENT_LABELS, counts)},
        "score": "segment_vector . item_factors + popularity",
    }
    meta.update(metadata)
    return FactorModel(
        item_ids=data.item_ids,
        item_factors=svd.item_factors.astype(np.float32),
        segment_ids=SEGMENT_LABELS,
        segment_vectors=vectors.astype(np.float32),
        global_vector=global_vector.astype(np.float32),
        popularity=svd.popularity.astype(np.float32),
        metadata=meta,
    )


@single_threaded_blas()
def train(
    data: Interactions,
    *,
    space: SearchSpace | None = None,
    n_folds: int = 3,
    seed: int = 0,
    params: TrainParams | None = None,
    level: str = "auto",
) -> FactorModel:
    """Choose parameters on validation folds (unless given), then fit on all of ``data``.

    ``level``: "user" (users are shoppers: SVD of the user x item matrix), "segment" (users are
    segments or single sales: SVD of the segment x item purchase shares) or "auto" (see
    :func:`is_segment_level`)."""
    started = time.perf_counter()
    validation: dict[str, object] = {}
    if params is None:
        params, ndcg, table = search(data, space, n_folds=n_folds, seed=seed, level=level)
        validation = {
            "validation_ndcg@10": round(ndcg, 5),
            "validation_folds": n_folds,
            "grid_size": len(table),
        }
        logger.info("chose %s (validation NDCG@10 %.4f over %d combinations)", params, ndcg, len(table))
    model = build_model(data, params, metadata={"metrics": validation}, level=level)
    meta = dict(model.metadata)
    meta["train_seconds"] = round(time.perf_counter() - started, 3)
    return replace(model, metadata=meta)


def split_users(n_users: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train user rows, test user rows), a fixed-seed permutation split."""
    order = np.random.default_rng(seed).permutation(n_users)
    n_test = max(1, round(n_users * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
