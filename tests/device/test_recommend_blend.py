"""The store model: every product on a slot is ranked, by the factor file where it knows the product
(by item id, else by sku), by the catalogue prior otherwise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.recommend.blend import factor_row, store_model
from device.recommend.factors import FactorModel
from device.recommend.prior import prior_from_products
from device.recommend.ranker import Ranker
from smartshelf.core.types import AGE_BRACKETS, Gender, Segment


@dataclass(frozen=True)
class P:
    sku: str
    name: str
    gender: str | None = None
    category: str | None = None
    price: int | None = 100_00
    item_id: str | None = None
    sold: int = 0


def factors(item_ids: list[str], rows: list[list[float]]) -> FactorModel:
    labels, vectors = [], []
    for g in Gender:
        for b in AGE_BRACKETS:
            labels.append(f"{g.value}/{b}")
            vectors.append([1.0, 0.0] if g is Gender.FEMALE else [0.0, 1.0])
    return FactorModel(
        item_ids=tuple(item_ids), item_factors=np.array(rows), segment_ids=tuple(labels),
        segment_vectors=np.array(vectors), global_vector=np.array([0.5, 0.5]),
        popularity=np.zeros(len(item_ids)), metadata={"method": "test"},
    )


WOMAN, MAN = Segment.parse("female/25-34"), Segment.parse("male/25-34")


def test_without_a_factor_file_the_prior_ranks_products_without_item_ids() -> None:
    products = [P("dress-1", "Floral Dress", "female"), P("shirt-1", "Oxford Shirt", "male"), P("bag-1", "Tote", None)]
    model, coverage = store_model(products, None)
    assert model is not None and set(model.item_ids) == {"dress-1", "shirt-1", "bag-1"}
    assert coverage.by_prior == ("dress-1", "shirt-1", "bag-1") and coverage.by_factor_file == ()
    ranker = Ranker(model)
    assert ranker.rank(WOMAN, n=1, diversity=0)[0].item_id == "dress-1"
    assert ranker.rank(MAN, n=1, diversity=0)[0].item_id == "shirt-1"
    assert len(ranker.rank(WOMAN, n=5)) == 3


def test_what_sells_leads_among_otherwise_equal_products() -> None:
    products = [P("a", "Blue Tee", "unisex"), P("b", "Red Tee", "unisex", sold=9), P("c", "Green Tee", "unisex", sold=1)]
    model = prior_from_products(products)
    assert model is not None
    order = [r.item_id for r in Ranker(model).rank(WOMAN, n=3, diversity=0)]
    assert order == ["b", "c", "a"]


def test_factor_items_map_by_item_id_else_by_sku() -> None:
    fm = factors(["ID-7", "sku-b"], [[1.0, 0.0], [0.0, 1.0]])
    assert factor_row(fm, P("sku-a", "x", item_id="ID-7")) == 0
    assert factor_row(fm, P("sku-b", "x")) == 1
    assert factor_row(fm, P("sku-b", "x", item_id="not-in-file")) == 1, "an unknown item id falls back to the sku"
    assert factor_row(fm, P("sku-c", "x")) is None


def test_products_the_factor_file_does_not_know_are_blended_in_never_dropped() -> None:
    fm = factors(["ID-W", "m-top"], [[1.0, 0.0], [0.0, 1.0]])
    products = [
        P("w-top", "Women Top", "female", item_id="ID-W"),
        P("m-top", "Men Top", "male"),
        P("new-dress", "Women Summer Dress", "female"),  # entered by staff after the retrain
        P("new-shirt", "Men Linen Shirt", "male"),
    ]
    model, coverage = store_model(products, fm)
    assert model is not None
    assert set(coverage.by_factor_file) == {"w-top", "m-top"} and set(coverage.by_prior) == {"new-dress", "new-shirt"}
    ranker = Ranker(model)
    everything = ranker.rank(WOMAN, n=10, diversity=0)
    assert {r.item_id for r in everything} == {p.sku for p in products}
    order = [r.item_id for r in everything]
    # For a woman the women's products (known or not) come before the men's.
    assert set(order[:2]) == {"w-top", "new-dress"}
    order_m = [r.item_id for r in ranker.rank(MAN, n=10, diversity=0)]
    assert set(order_m[:2]) == {"m-top", "new-shirt"}
    # Known products keep the factor file's scores.
    assert np.isclose(model.scores(WOMAN)[model.item_index["w-top"]], fm.scores(WOMAN)[0])
    assert model.metadata["blend"] == {"by_factor_file": 2, "by_prior": 2, "prior_scale": model.metadata["blend"]["prior_scale"]}


def test_no_products_no_model() -> None:
    # store_model ranks what it is given; StoreView.candidates() filters stock and slots.
    model, _ = store_model([], None)
    assert model is None
