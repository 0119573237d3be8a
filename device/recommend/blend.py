"""The model the shelf ranks with: the store's own products, whatever ids they have.

A factor file knows the items it was trained on; the store knows its products. This module joins
them into one :class:`FactorModel` whose item ids are the products' skus:

* a product maps to a factor-file item by its explicit ``item_id``, else by its ``sku``;
* a product the factor file does not know (or every product, with no factor file) is scored by the
  catalogue prior (:mod:`device.recommend.prior`: gender, category, price, and what sells) and
  blended in, never dropped.

The blend stays one linear model, so the ranker, MMR diversity and "pairs with" work unchanged.
Item vectors live in two blocks, ``[factor part | prior part | 1]``: a known product has its factor
vector in the first block, an unknown one ``scale *`` its prior vector in the second and a 1 in the
last column. Segment vectors are ``[segment vector | prior segment vector | offset]``. ``scale`` makes
the spread of prior scores match the spread of the factor file's scores over this store's known
products, and each segment's ``offset`` makes their means match, so neither block drowns the other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from device.recommend.factors import FactorModel

logger = logging.getLogger(__name__)


class ProductLike(Protocol):
    sku: str
    name: str
    item_id: str | None
    gender: str | None
    category: str | None
    price: int | None


@dataclass(frozen=True)
class Coverage:
    """How the shelf's products are ranked: by the factor file or by the catalogue prior."""

    by_factor_file: tuple[str, ...]
    by_prior: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"factor_file": len(self.by_factor_file), "prior": len(self.by_prior),
                "prior_skus": list(self.by_prior[:20])}


def factor_row(model: FactorModel, product: ProductLike) -> int | None:
    """The factor-file row of a product: by its explicit item id, else by its sku; None if unknown."""
    if product.item_id:
        row = model.item_index.get(product.item_id)
        if row is not None:
            return row
    return model.item_index.get(product.sku)


def store_model(
    products: Sequence[ProductLike],
    factors: FactorModel | None,
    *,
    sold: Mapping[str, int] | None = None,
) -> tuple[FactorModel | None, Coverage]:
    """One model over ``products`` (item ids = skus); None when there are no products."""
    from device.recommend.prior import prior_from_products

    unique: dict[str, ProductLike] = {}
    for p in products:
        unique.setdefault(p.sku, p)
    items = list(unique.values())
    if not items:
        return None, Coverage((), ())
    prior = prior_from_products(items, sold=sold)
    assert prior is not None
    rows = [factor_row(factors, p) if factors is not None else None for p in items]
    known = [i for i, r in enumerate(rows) if r is not None]
    unknown = [i for i, r in enumerate(rows) if r is None]
    coverage = Coverage(tuple(items[i].sku for i in known), tuple(items[i].sku for i in unknown))
    if factors is None or not known:
        meta = dict(prior.metadata)
        meta["blend"] = {"factor_file": None if factors is None else dict(factors.metadata).get("method"),
                         "by_factor_file": 0, "by_prior": len(items)}
        if factors is not None:
            logger.warning("the factor file knows none of the %d products on the shelf; ranking by the "
                           "catalogue prior", len(items))
        return _rebuilt(prior, meta), coverage
    assert factors is not None
    return blend([p.sku for p in items], rows, factors, prior), coverage


def _rebuilt(model: FactorModel, metadata: Mapping[str, Any]) -> FactorModel:
    return FactorModel(model.item_ids, model.item_factors, model.segment_ids, model.segment_vectors,
                       model.global_vector, model.popularity, metadata=metadata)


def blend(
    item_ids: Sequence[str], rows: Sequence[int | None], factors: FactorModel, prior: FactorModel
) -> FactorModel:
    """One model over ``item_ids``: item ``j`` is ``factors``' row ``rows[j]``, or (None) ``prior``'s
    row ``j`` scaled and offset (see the module docstring). ``prior`` has one row per item id, in order.
    At least one row must be known."""
    n, k1, k2 = len(item_ids), factors.rank, prior.rank
    labels = tuple(dict.fromkeys((*factors.segment_ids, *prior.segment_ids)))
    known = np.array([r is not None for r in rows])
    f_rows = np.array([r for r in rows if r is not None], dtype=np.intp)
    # Scores of the known products under the factor file, and of every product under the prior,
    # per segment (rows: the labels, then the generic vector).
    f_vectors = np.stack([factors.segment_vector(s) for s in labels] + [factors.global_vector])
    p_vectors = np.stack([prior.segment_vector(s) for s in labels] + [prior.global_vector])
    f_scores = f_vectors @ factors.item_factors[f_rows].T + factors.popularity[f_rows]
    p_scores = p_vectors @ prior.item_factors.T + prior.popularity
    f_spread = float(f_scores.std())
    p_spread = float(p_scores.std())
    scale = f_spread / p_spread if p_spread > 1e-9 and f_spread > 1e-9 else 1.0
    offsets = f_scores.mean(axis=1) - scale * p_scores.mean(axis=1)
    item_factors = np.zeros((n, k1 + k2 + 1), dtype=np.float64)
    popularity = np.zeros(n, dtype=np.float64)
    item_factors[known, :k1] = factors.item_factors[f_rows]
    popularity[known] = factors.popularity[f_rows]
    item_factors[~known, k1:k1 + k2] = scale * prior.item_factors[~known]
    item_factors[~known, -1] = 1.0
    popularity[~known] = scale * prior.popularity[~known]
    vectors = np.concatenate([f_vectors, p_vectors, offsets[:, None]], axis=1)
    meta = dict(factors.metadata)
    meta["blend"] = {
        "by_factor_file": int(known.sum()),
        "by_prior": int((~known).sum()),
        "prior_scale": round(scale, 6),
    }
    return FactorModel(
        item_ids=tuple(item_ids),
        item_factors=item_factors.astype(np.float32),
        segment_ids=labels,
        segment_vectors=vectors[:-1].astype(np.float32),
        global_vector=vectors[-1].astype(np.float32),
        popularity=popularity.astype(np.float32),
        metadata=meta,
    )


def model_key(products: Iterable[ProductLike], sold: Mapping[str, int] | None = None) -> tuple[Any, ...]:
    """What the store model depends on (not stock): rebuilt only when this changes."""
    sold = sold or {}
    return tuple(
        (p.sku, p.item_id, p.name, p.gender, p.category, p.price, sold.get(p.sku, 0))
        for p in sorted(products, key=lambda p: p.sku)
    )
