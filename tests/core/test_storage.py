"""smartshelf.core.storage: atomic writes, parse cache, cross-handle freshness, corrupt-file recovery, backup."""

from __future__ import annotations

import json
import logging
import os
import tarfile
import threading
from pathlib import Path

import pytest

from smartshelf.core.errors import StorageError
from smartshelf.core.storage import (
    AtomicJSONStorage,
    FileLock,
    atomic_write_bytes,
    atomic_write_json,
    backup,
    open_db,
    restore,
    write_transaction,
)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"b": [1, 2]})
    assert json.loads(target.read_text()) == {"b": [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_atomic_write_mode_and_kept_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write_bytes(target, b"k", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    atomic_write_bytes(target, b"k2")
    assert target.stat().st_mode & 0o777 == 0o600


def test_atomic_write_json_rejects_nan_without_touching_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_json(target, {"ok": True})
    with pytest.raises(StorageError, match="x.json"):
        atomic_write_json(target, {"bad": float("nan")})
    assert json.loads(target.read_text()) == {"ok": True}


def test_read_uses_cache_until_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.json"
    db = open_db(path)
    db.table("products").insert({"sku": "A"})
    storage = db.storage
    assert isinstance(storage, AtomicJSONStorage)
    parses = []
    real_loads = json.loads
    monkeypatch.setattr("smartshelf.core.storage.json.loads", lambda raw: parses.append(1) or real_loads(raw))
    for _ in range(5):
        assert db.table("products").all() == [{"sku": "A"}]
    assert parses == []  # written by this handle: served from the cache
    other = open_db(path)
    other.table("products").insert({"sku": "B"})  # another writer replaces the file
    assert [d["sku"] for d in db.table("products").all()] == ["A", "B"]
    assert len(parses) == 2  # `other` parsed once before inserting, `db` once after the change


def test_two_handles_never_reuse_ids_or_serve_stale_queries(tmp_path: Path) -> None:
    from tinydb import Query

    path = tmp_path / "store.json"
    a, b = open_db(path), open_db(path)
    q = Query()
    assert a.table("products").search(q.sku == "X") == []
    a.table("products").insert({"sku": "A"})
    b.table("products").insert({"sku": "X"})
    a.table("products").insert({"sku": "C"})
    assert [d["sku"] for d in a.table("products").search(q.sku == "X")] == ["X"]
    ids = [d.doc_id for d in open_db(path).table("products").all()]
    assert len(ids) == len(set(ids)) == 3


def test_write_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    db = open_db(path)
    db.table("products").insert({"sku": "A", "stock": 5})
    with write_transaction(db) as tables:
        tables["products"]["1"]["stock"] = 4
        tables.setdefault("sales", {})["1"] = {"event_id": "e1"}
    again = open_db(path)
    assert again.table("products").all()[0]["stock"] == 4
    assert again.table("sales").all() == [{"event_id": "e1"}]
    with pytest.raises(RuntimeError), write_transaction(db) as tables:
        tables["products"]["1"]["stock"] = 0
        raise RuntimeError("boom")
    assert db.table("products").all()[0]["stock"] == 4  # cache dropped, disk unchanged
    assert open_db(path).table("products").all()[0]["stock"] == 4


def test_corrupt_file_is_set_aside_and_last_good_copy_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.json"
    db = open_db(path)
    db.table("products").insert({"sku": "A"})
    db.table("products").insert({"sku": "B"})  # .bak now holds the version with A
    path.write_bytes(b'{"products": {"1": {"sku": "A"}, "2": {"sku"')  # torn by a bad disk
    with caplog.at_level(logging.ERROR, logger="smartshelf.core.storage"):
        fresh = open_db(path)
        skus = [d["sku"] for d in fresh.table("products").all()]
    assert skus == ["A"]
    assert any("CORRUPT DATA FILE" in r.getMessage() for r in caplog.records)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("store.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b'{"products"')
    json.loads(path.read_text())  # the restored file is valid


def test_corrupt_file_without_good_copy_raises_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(b"\x00\x00\x00garbage")
    with pytest.raises(StorageError, match="store.json is corrupt"):
        open_db(path).table("products").all()
    assert path.read_bytes() == b"\x00\x00\x00garbage"


def test_read_only_handle_refuses_writes_and_never_moves_files(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    open_db(path).table("products").insert({"sku": "A"})
    ro = open_db(path, read_only=True)
    assert ro.table("products").all() == [{"sku": "A"}]
    with pytest.raises(StorageError, match="read-only"):
        ro.table("products").insert({"sku": "B"})
    path.write_text("{not json")
    with pytest.raises(StorageError, match="corrupt"):
        open_db(path, read_only=True).table("products").all()
    assert path.read_text() == "{not json"


def test_file_lock_excludes_other_threads_and_is_reentrant(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    lock = FileLock(path)
    order: list[str] = []
    with lock, lock:  # re-entrant on the same instance
        def other() -> None:
            with FileLock(path):
                order.append("other")

        t = threading.Thread(target=other)
        t.start()
        t.join(0.2)
        assert t.is_alive()  # waiting for us
        order.append("main")
    t.join(5)
    assert order == ["main", "other"]


def test_file_lock_times_out_with_named_error(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    with FileLock(path):
        result: list[BaseException] = []

        def other() -> None:
            try:
                with FileLock(path, timeout=0.05):
                    pass
            except StorageError as exc:
                result.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(5)
    assert result and "store.json.lock" in str(result[0])


def test_backup_and_restore_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = open_db(data / "store.json")
    db.table("products").insert({"sku": "A", "stock": 1})
    open_db(data / "accounts.json").table("users").insert({"name": "admin", "hash": "x"})
    (data / "images").mkdir()
    (data / "images" / "a.png").write_bytes(b"\x89PNG fake")
    (data / "terminal.key").write_bytes(b"k" * 32)
    (data / "ledger").mkdir()
    (data / "ledger" / "sales-000001.json").write_text('{"sales": []}')
    (data / "events").mkdir()
    (data / "events" / "2026-01-01.json").write_text("{}")  # device-owned: not in the backup
    archive = backup(data, tmp_path / "out")
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "accounts.json", "images/a.png", "ledger/sales-000001.json", "store.json", "terminal.key"
        ]

    db.table("products").update({"stock": 99})
    (data / "images" / "a.png").write_bytes(b"changed")
    (data / "terminal.key").unlink()
    (data / "ledger" / "sales-000001.json").unlink()
    safety = restore(archive, data)
    assert safety is not None and safety.exists()
    assert open_db(data / "store.json").table("products").all()[0]["stock"] == 1
    assert (data / "images" / "a.png").read_bytes() == b"\x89PNG fake"
    assert (data / "terminal.key").read_bytes() == b"k" * 32
    assert (data / "ledger" / "sales-000001.json").read_text() == '{"sales": []}'
    assert (data / "terminal.key").stat().st_mode & 0o777 == 0o600
    # the still-open handle sees the restored file (mtime/inode changed)
    assert db.table("products").all()[0]["stock"] == 1


def test_restore_rejects_foreign_or_corrupt_archives_without_changes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_db(data / "store.json").table("products").insert({"sku": "A"})
    before = (data / "store.json").read_bytes()

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        payload = tmp_path / "p"
        payload.write_text("{}")
        tar.add(payload, arcname="../escape.json")
    with pytest.raises(StorageError, match="unexpected entry"):
        restore(evil, data)

    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        payload.write_text("{broken")
        tar.add(payload, arcname="store.json")
    with pytest.raises(StorageError, match="corrupt"):
        restore(bad, data)

    with pytest.raises(StorageError, match="not a readable backup"):
        restore(payload, data)
    assert (data / "store.json").read_bytes() == before
    assert not (tmp_path / "escape.json").exists()
    assert not os.path.exists(data / "backups")
