"""The head office's chain: a simulated chain through the Spark trainer (local mode, small data) to
signed per-store factor files that a shelf verifies and ranks with; the hub's CSV export through ingest.
One Spark session for the module (its start is most of the time)."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.recommend.factors import FactorModel
from device.recommend.signing import SignatureError, load_public_key
from tools.factor_signing import generate_key

pyspark = pytest.importorskip("pyspark")


def java_available() -> bool:
    return shutil.which("java") is not None


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if not java_available():
        pytest.skip("no Java runtime (tests/install-tools.sh installs one as root)")
    from tools.chain.trainer import spark_session

    session = spark_session("local[2]", shuffle_partitions=2)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def chain_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.chain.simulate import ChainSpec, simulate

    out = tmp_path_factory.mktemp("chain")
    simulate(ChainSpec(interactions=6000, stores=3, items_per_store=150, rank=4, seed=1), out)
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_spark_trainer_writes_signed_store_files_the_shelf_loads(spark: Any, chain_data: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from device.recommend.ranker import Ranker
    from smartshelf.core.types import Segment
    from tools.chain.schema import map_schema
    from tools.chain.trainer import ChainParams, train_chain, write_store_files

    # store-002's map lacks half its items: those rows are counted as unmapped and left out.
    cmap = pq.read_table(chain_data / "catalogue_map.parquet").to_pydict()
    keep = [i for i, s in enumerate(cmap["store"]) if not (s == "store-002" and i % 2)]
    catalogue = {k: [v[i] for i in keep] for k, v in cmap.items()}
    pq.write_table(pa.table(catalogue, schema=map_schema()), tmp_path / "map.parquet")
    model = train_chain(spark, str(chain_data / "interactions"), str(tmp_path / "map.parquet"),
                        ChainParams(rank=4, iterations=5, shrink=50.0, blocks=2))
    assert model.stats["stores"] == 3 and model.stats["interactions"] == 6000
    assert 0 < model.stats["unmapped_interactions"] < 2000
    # Shrinkage: a segment without evidence in a store (the minors') gets exactly the chain's vector;
    # one with evidence lies between the store's own fit and the chain's.
    for store, vectors in model.store_vectors.items():
        assert vectors.shape == (16, 4) and np.all(np.isfinite(vectors))
        empty = model.evidence[store] == 0
        assert empty.any() and not empty.all()
        np.testing.assert_allclose(vectors[empty], model.chain_vectors[empty], atol=1e-6)
        assert not np.allclose(vectors[~empty], model.chain_vectors[~empty])
    private, public = generate_key(tmp_path / "head-office.key")
    files = write_store_files(model, tmp_path / "out", private)
    assert [f.name for f in files] == ["store-000.npz", "store-001.npz", "store-002.npz"]
    for path in files:
        loaded = FactorModel.load(path, public_key=load_public_key(public))
        store = path.stem
        own = {i for s, i in zip(catalogue["store"], catalogue["item"]) if s == store}
        assert set(loaded.item_ids) == own  # the store's own ids: its inventory's item_id needs no change
        assert loaded.metadata["method"] == "chain-als-centred-shares-shrunk" and loaded.metadata["store"] == store
        picks = Ranker(loaded).rank(Segment.parse("female/25-34"), n=3)
        assert len(picks) == 3 and all(p.item_id in own for p in picks)
    # A file from another key is refused by a shelf configured with the head office's key.
    other, _ = generate_key(tmp_path / "other.key")
    forged = write_store_files(model, tmp_path / "forged", other)[0]
    with pytest.raises(SignatureError):
        FactorModel.load(forged, public_key=load_public_key(public))


def test_hub_export_to_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from admin_web.store_export import INTERACTION_COLUMNS, interaction_rows
    from smartshelf.core.errors import ConfigError
    from tools.chain.ingest import csv_to_parquet

    events = [
        {"shelf": "aisle-1", "visit_id": 1, "time": 100.0, "segment": "female/25-34", "items": ["SKU1", "SKU2"]},
        {"shelf": "aisle-2", "visit_id": 1, "time": 150.0, "segment": "generic", "items": ["SKU3"]},
    ]
    sales = [{"type": "sale", "event_id": "e1", "time": "1970-01-01T00:03:00+00:00",
              "lines": [{"sku": "SKU2", "qty": 2}, {"sku": "SKU9", "qty": 1}]}]
    rows = interaction_rows("store-7", events, sales, {"SKU2": "item-2"})
    assert ("store-7", "aisle-1", "female/25-34", "item-2", 180.0, "bought") in rows
    assert sum(r[5] == "bought" for r in rows) == 2 and sum(r[5] == "shown" for r in rows) == 3
    path = tmp_path / "export.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(INTERACTION_COLUMNS)
        writer.writerows(rows)
    assert csv_to_parquet(path, tmp_path / "x.parquet") == 5
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.column_names == list(INTERACTION_COLUMNS) and table.num_rows == 5
    path.write_text(path.read_text().replace("female/25-34", "a person"))
    with pytest.raises(ConfigError, match="line 2: segment 'a person'"):
        csv_to_parquet(path, tmp_path / "y.parquet")
    assert not (tmp_path / "y.parquet").exists()
