"""Ranking metrics shared by training (validation), evaluation and retraining. Pure numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_DISCOUNT = 1.0 / np.log2(np.arange(2, 102, dtype=np.float64))


def top_n(scores: npt.NDArray[np.floating], n: int) -> npt.NDArray[np.int64]:
    """Per row, the column indices of the ``n`` highest scores, best first (ties: lower index first)."""
    scores = np.atleast_2d(scores)
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part.sort(axis=1)  # stable tie-break by index before ordering by score
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def precision_ndcg(
    lists: npt.NDArray[np.int64], relevant: npt.NDArray[np.bool_], k: int = 10
) -> tuple[float, float, int]:
    """Mean precision@k and NDCG@k over the rows of ``relevant`` that have at least one relevant item.

    ``lists[u]`` is user u's ranked list of item indices (at least k long); ``relevant`` is users x items.
    Returns (precision, ndcg, number of users counted).
    """
    lists = lists[:, :k]
    hits = np.take_along_axis(relevant, lists, axis=1).astype(np.float64)
    n_rel = relevant.sum(axis=1)
    counted = n_rel > 0
    if not counted.any():
        return 0.0, 0.0, 0
    dcg = hits @ _DISCOUNT[: lists.shape[1]]
    ideal_cum = np.concatenate([[0.0], np.cumsum(_DISCOUNT[:k])])
    idcg = ideal_cum[np.minimum(n_rel, k)]
    precision = hits.sum(axis=1) / k
    ndcg = np.where(counted, dcg / np.maximum(idcg, 1e-12), 0.0)
    return float(precision[counted].mean()), float(ndcg[counted].mean()), int(counted.sum())


def hit_rate(lists: npt.NDArray[np.int64], relevant: npt.NDArray[np.bool_], k: int = 10) -> float:
    """Share of users (with >= 1 relevant item) that have at least one relevant item in their top k."""
    hits = np.take_along_axis(relevant, lists[:, :k], axis=1).any(axis=1)
    counted = relevant.any(axis=1)
    return float(hits[counted].mean()) if counted.any() else 0.0
