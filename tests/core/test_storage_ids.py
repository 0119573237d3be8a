"""Document ids stay unique when many documents are inserted in one call (one atomic write)."""

from __future__ import annotations

from pathlib import Path

from smartshelf.core.storage import open_db


def test_insert_multiple_gives_every_document_its_own_id(tmp_path: Path) -> None:
    db = open_db(tmp_path / "store.json")
    table = db.table("products")
    ids = table.insert_multiple({"sku": f"S{i}"} for i in range(5))
    assert ids == [1, 2, 3, 4, 5]
    assert len(table.all()) == 5
    assert table.insert({"sku": "S5"}) == 6
    other = open_db(tmp_path / "store.json")  # another handle (process) appends after the first
    assert other.table("products").insert_multiple([{"sku": "S6"}, {"sku": "S7"}]) == [7, 8]
    assert table.insert({"sku": "S8"}) == 9, "the first handle sees the other's ids"
    assert sorted(d["sku"] for d in table.all()) == sorted(f"S{i}" for i in range(9))
