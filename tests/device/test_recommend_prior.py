"""Catalogue prior: gender, kids, price and category leanings; catalogue parsing; committed demo files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from device.recommend.data import DataError
from device.recommend.factors import FactorModel
from device.recommend.prior import CatalogItem, build_prior, category_of, read_catalog

DEMO = Path(__file__).resolve().parents[2] / "device" / "demo"


def catalogue() -> list[CatalogItem]:
    return [
        CatalogItem("w-top", "Roadster Women Blue Top", "women", "casual", 799),
        CatalogItem("m-tee", "Roadster Men Blue T-shirt", "men", "casual", 799),
        CatalogItem("u-bag", "Wildcraft Unisex Backpack", "unisex", "bags", 1499),
        CatalogItem("g-dress", "Girls Printed Dress", "girls", "casual", 699),
        CatalogItem("b-tee", "Boys Striped T-shirt", "boys", "casual", 499),
        CatalogItem("w-kurta-cheap", "Women Kurta", "women", "ethnic", 499),
        CatalogItem("w-kurta-dear", "Women Silk Kurta", "women", "ethnic", 4999),
        CatalogItem("m-suit", "Men Formal Suit", "men", "formal", 7999),
        CatalogItem("m-shoe", "Men Running Shoes", "men", "footwear", 2999),
    ]


def test_gender_decides_first() -> None:
    model = build_prior(catalogue())
    for bracket in ("18-24", "25-34", "45-54", "65+"):
        female, male = model.scores(f"female/{bracket}"), model.scores(f"male/{bracket}")
        w, m = model.item_index["w-top"], model.item_index["m-tee"]
        assert female[w] > female[m] and male[m] > male[w]
        u = model.item_index["u-bag"]
        assert female[w] > female[u] > female[m]


def test_kids_items_lead_for_children_and_trail_for_adults() -> None:
    model = build_prior(catalogue())
    girls = model.scores("female/0-12")
    assert model.item_ids[int(np.argmax(girls))] == "g-dress"
    boys = model.scores("male/0-12")
    assert model.item_ids[int(np.argmax(boys))] == "b-tee"
    adult = model.scores("female/45-54")
    assert adult[model.item_index["w-top"]] > adult[model.item_index["g-dress"]]


def test_price_leaning_by_age() -> None:
    model = build_prior(catalogue())
    cheap, dear = model.item_index["w-kurta-cheap"], model.item_index["w-kurta-dear"]
    young, older = model.scores("female/18-24"), model.scores("female/45-54")
    assert young[cheap] > young[dear]
    assert older[dear] > older[cheap]


def test_generic_vector_is_gender_neutral() -> None:
    model = build_prior(catalogue())
    generic = model.scores(None)
    assert generic[model.item_index["w-top"]] == pytest.approx(generic[model.item_index["m-tee"]])
    assert model.metadata["method"] == "catalogue-prior"


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Libas Women Green Printed Kurta with Palazzos", "ethnic"),
        ("Raymond Men Blue Self-Design Single-Breasted Bandhgala Suit", "ethnic"),
        ("Louis Philippe Men Grey Slim Fit Formal Blazer", "formal"),
        ("Puma Men Black Running Shoes", "footwear"),
        ("DKNY Unisex Black & Grey Printed Medium Trolley Bag", "bags"),
        ("Roadster Men Navy Blue Printed Round Neck T-shirt", "casual"),
        ("Nike Women Black Solid Track Pants", "sportswear"),
        ("Titan Men Black Analogue Watch", "accessories"),
        ("Lakme Absolute Matte Melt Liquid Lip Color 12 Natural Nude", "beauty"),
        ("Something Entirely Different", "other"),
    ],
)
def test_category_keywords(name: str, category: str) -> None:
    assert category_of(name) == category


def test_read_catalog_accepts_myntra_columns(tmp_path: Path) -> None:
    path = tmp_path / "myntra.csv"
    path.write_text(
        "Product_ID,Product_Name,Product_Brand,Gender,Price,Num_Images,Description,Primary_Color,\n"
        "1,Roadster Men Blue T-shirt,Roadster,Men,799,5,desc, Blue,\n"
        "2,Libas Women Kurta,Libas,Women,1299,5,desc,Red,\n"
    )
    items = read_catalog(path)
    assert [(i.sku, i.gender, i.category, i.price) for i in items] == [
        ("1", "men", "casual", 799.0),
        ("2", "women", "ethnic", 1299.0),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sku,name\n1,x\n", "lacks column"),
        ("sku,name,gender,price\n1,x,alien,100\n", "line 2: gender 'alien'"),
        ("sku,name,gender,price\n1,x,men,free\n", "line 2: price 'free'"),
        ("sku,name,gender,price\n1,x,men,100\n1,y,men,100\n", "line 3: duplicate sku"),
        ("sku,name,gender,price,category\n1,x,men,100,spaceships\n", "category 'spaceships'"),
    ],
)
def test_bad_catalogue_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "cat.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_catalog(path)


def test_committed_demo_files_match_each_other() -> None:
    with open(DEMO / "catalog.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert 30 <= len(rows) <= 40
    assert {"sku", "name", "brand", "gender", "category", "price", "colour"} <= set(rows[0])
    assert {r["gender"] for r in rows} >= {"Women", "Men", "Unisex", "Girls", "Boys"}
    assert len({r["category"] for r in rows}) >= 6
    model = FactorModel.load(DEMO / "factors.npz")
    assert list(model.item_ids) == [r["sku"] for r in rows]
    rebuilt = build_prior(read_catalog(DEMO / "catalog.csv"))
    np.testing.assert_allclose(rebuilt.item_factors, model.item_factors, atol=1e-6)
    np.testing.assert_allclose(rebuilt.segment_vectors, model.segment_vectors, atol=1e-6)
