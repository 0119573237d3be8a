"""Ranking metrics shared by training (validation), evaluation and retraining. Pure numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_DISCOUNT = 1.0 / np.log2(np.arange(2, 102, dtype=np.float64))


class SparseRelevance:
    """Which items are relevant to which users, without a dense users x items matrix.

    Supports what the metrics need: row selection (``rel[rows]``), ``take(lists)`` (the hits of each
    user's list) and ``counts`` (relevant items per user).
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.keys = np.unique(np.asarray(users, np.int64) * self.n_items + np.asarray(items, np.int64))
        self.counts = np.bincount(self.keys // max(self.n_items, 1), minlength=self.n_users)

    def __getitem__(self, rows: np.ndarray) -> SparseRelevance:
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        remap = np.full(self.n_users, -1, dtype=np.int64)
        remap[rows] = np.arange(rows.size)
        users, items = self.keys // self.n_items, self.keys % self.n_items
        keep = remap[users] >= 0
        return SparseRelevance(remap[users[keep]], items[keep], rows.size, self.n_items)

    def take(self, lists: np.ndarray) -> np.ndarray:
        query = np.arange(lists.shape[0], dtype=np.int64)[:, None] * self.n_items + lists
        pos = np.minimum(np.searchsorted(self.keys, query), max(self.keys.size - 1, 0))
        return self.keys[pos] == query if self.keys.size else np.zeros(lists.shape, dtype=bool)


Relevance = npt.NDArray[np.bool_] | SparseRelevance


def _hits(lists: np.ndarray, relevant: Relevance) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(relevant, SparseRelevance):
        return relevant.take(lists), relevant.counts
    return np.take_along_axis(relevant, lists, axis=1), relevant.sum(axis=1)


def top_n(scores: npt.NDArray[np.floating], n: int) -> npt.NDArray[np.int64]:
    """Per row, the column indices of the ``n`` highest scores, best first (ties: lower index first)."""
    scores = np.atleast_2d(scores)
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part.sort(axis=1)  # stable tie-break by index before ordering by score
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def precision_ndcg(
    lists: npt.NDArray[np.int64], relevant: Relevance, k: int = 10
) -> tuple[float, float, int]:
    """Mean precision@k and NDCG@k over the rows of ``relevant`` that have at least one relevant item.

    ``lists[u]`` is user u's ranked list of item indices (at least k long); ``relevant`` is users x items
    (dense bool or :class:`SparseRelevance`). Returns (precision, ndcg, number of users counted).
    """
    lists = lists[:, :k]
    hits, n_rel = _hits(lists, relevant)
    hits = hits.astype(np.float64)
    counted = n_rel > 0
    if not counted.any():
        return 0.0, 0.0, 0
    dcg = hits @ _DISCOUNT[: lists.shape[1]]
    ideal_cum = np.concatenate([[0.0], np.cumsum(_DISCOUNT[:k])])
    idcg = ideal_cum[np.minimum(n_rel, k)]
    precision = hits.sum(axis=1) / k
    ndcg = np.where(counted, dcg / np.maximum(idcg, 1e-12), 0.0)
    return float(precision[counted].mean()), float(ndcg[counted].mean()), int(counted.sum())


def hit_rate(lists: npt.NDArray[np.int64], relevant: Relevance, k: int = 10) -> float:
    """Share of users (with >= 1 relevant item) that have at least one relevant item in their top k."""
    hits, n_rel = _hits(lists[:, :k], relevant)
    hits = hits.any(axis=1)
    counted = n_rel > 0
    return float(hits[counted].mean()) if counted.any() else 0.0
