"""Ranking on the device: a dot product, a candidate filter and maximal-marginal-relevance diversity.

Pure numpy, no I/O. ``Ranker(model).rank(segment, n=3, candidates=in_stock_ids[, mixture=weights])``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.recommend.factors import FactorModel
from smartshelf.core.types import Recommendation, Segment

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.intp]

#: Cosine similarity above which two items count as near-identical.
NEAR_DUPLICATE = 0.95
#: At most this many near-identical items are picked while other candidates remain.
MAX_NEAR_DUPLICATES = 2
#: MMR looks at the best ``max(POOL_MIN, POOL_FACTOR * n)`` candidates by score.
POOL_MIN = 30
POOL_FACTOR = 6


class RankerProtocol(Protocol):
    def rank(
        self,
        segment: Segment | None,
        *,
        n: int,
        candidates: Sequence[str] | None = None,
        diversity: float = 0.3,
        mixture: Mapping[str, float] | None = None,
    ) -> list[Recommendation]: ...


class Ranker:
    """Ranks items of one :class:`FactorModel` for a segment (``None``: generic picks)."""

    def __init__(self, model: FactorModel, *, candidate_cache: int = 8) -> None:
        self.model = model
        self._cache: OrderedDict[tuple[str, ...], IntArray] = OrderedDict()
        self._cache_size = candidate_cache

    # ------------------------------------------------------------ candidates
    def _rows(self, candidates: Sequence[str] | None) -> IntArray | None:
        """Row indices of the known candidates, in first-seen order (None: every item)."""
        if candidates is None:
            return None
        key = tuple(candidates)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        index = self.model.item_index
        rows: list[int] = []
        seen: set[int] = set()
        unknown: list[str] = []
        for item in key:
            row = index.get(item)
            if row is None:
                unknown.append(item)
            elif row not in seen:
                seen.add(row)
                rows.append(row)
        if unknown:
            logger.debug("ignoring %d candidate(s) not in the factor file: %s", len(unknown), unknown[:10])
        result = np.asarray(rows, dtype=np.intp)
        result.setflags(write=False)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    # ------------------------------------------------------------ ranking
    def rank(
        self,
        segment: Segment | None,
        *,
        n: int,
        candidates: Sequence[str] | None = None,
        diversity: float = 0.3,
        mixture: Mapping[str, float] | None = None,
    ) -> list[Recommendation]:
        """Best ``n`` items for ``segment`` among ``candidates`` (all items if None), best first.

        ``mixture`` (segment label -> probability, from :func:`device.recommend.mixture.segment_mixture`),
        when given, ranks by the expected score over those segments instead of ``segment``'s alone.

        ``diversity`` in [0, 1] is the MMR trade-off: 0 ranks by score alone; higher values penalise
        items similar (cosine of item factors) to those already picked. Independently of it, no more
        than two near-identical items (cosine >= 0.95) are picked while other candidates remain.
        ``score`` in each result is the model score, not the MMR value.
        """
        if n <= 0:
            return []
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity}")
        model = self.model
        vector = model.mixture_vector(mixture) if mixture else model.segment_vector(segment)
        rows = self._rows(candidates)
        if rows is None:
            scores = model.item_factors @ vector + model.popularity
            rows_all: IntArray | None = None
        else:
            if rows.size == 0:
                return []
            scores = model.item_factors[rows] @ vector + model.popularity[rows]
            rows_all = rows
        pool_size = min(scores.size, max(POOL_MIN, POOL_FACTOR * n))
        if pool_size < scores.size:
            pool = np.argpartition(-scores, pool_size - 1)[:pool_size]
        else:
            pool = np.arange(scores.size)
        pool = pool[np.argsort(-scores[pool], kind="stable")]
        pool_rows = pool if rows_all is None else rows_all[pool]
        pool_scores = scores[pool]
        order = _mmr(model.item_unit[pool_rows], pool_scores, n, diversity)
        ids = model.item_ids
        return [Recommendation(item_id=ids[pool_rows[j]], score=float(pool_scores[j])) for j in order]

    def pairs_with(
        self, item_id: str, *, n: int, candidates: Sequence[str] | None = None
    ) -> list[Recommendation]:
        """Items most similar to ``item_id`` (cosine of item factors), best first, excluding itself.

        An item not in the factor file gives an empty list (logged at debug).
        """
        model = self.model
        row = model.item_index.get(item_id)
        if row is None or n <= 0:
            if row is None:
                logger.debug("pairs_with: item %r not in the factor file", item_id)
            return []
        rows = self._rows(candidates)
        if rows is None:
            rows = np.arange(model.n_items)
        rows = rows[rows != row]
        if rows.size == 0:
            return []
        sims = model.item_unit[rows] @ model.item_unit[row]
        take = min(n, sims.size)
        top = np.argpartition(-sims, take - 1)[:take] if take < sims.size else np.arange(sims.size)
        top = top[np.argsort(-sims[top], kind="stable")]
        return [Recommendation(item_id=model.item_ids[rows[j]], score=float(sims[j])) for j in top]


def _mmr(unit: np.ndarray, scores: np.ndarray, n: int, diversity: float) -> list[int]:
    """Greedy maximal marginal relevance over a pool sorted by score; returns pool positions."""
    size = scores.size
    n = min(n, size)
    if n == 0:
        return []
    # Relevance scaled to [0, 1] over the best max(2n, 10) items (items below go negative), so that a
    # few very bad items in the pool do not flatten the differences between the good ones.
    floor = float(scores[min(size, max(2 * n, 10)) - 1])
    spread = float(scores[0]) - floor
    relevance = (scores - floor) / spread if spread > 1e-12 else np.ones(size, dtype=np.float32)
    sims = unit @ unit.T
    max_sim = np.full(size, -1.0, dtype=np.float32)
    near = np.zeros(size, dtype=np.int32)
    available = np.ones(size, dtype=bool)
    chosen: list[int] = []
    for _ in range(n):
        value = (1.0 - diversity) * relevance - diversity * np.maximum(max_sim, 0.0)
        blocked = near >= MAX_NEAR_DUPLICATES
        allowed = available & ~blocked
        if not allowed.any():
            allowed = available
        value = np.where(allowed, value, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        available[pick] = False
        row = sims[pick]
        np.maximum(max_sim, row, out=max_sim)
        near += row >= NEAR_DUPLICATE
    return chosen
