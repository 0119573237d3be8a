"""The shared SQLite helper: pragmas, schema versions and migrations, errors that name the file,
integrity check, consistent backups of a live database, and backup/restore archives that carry it."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

import pytest

from smartshelf.core.errors import StorageError
from smartshelf.core.sqlite import (
    backup_database,
    integrity_check,
    open_database,
    open_readonly,
    transaction,
)
from smartshelf.core.storage import backup, open_db, restore

V1 = ("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",)
V2 = (*V1, lambda conn: conn.execute("ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 7"))


def test_open_sets_wal_and_synchronous_and_runs_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    conn = open_database(path, V1, synchronous="FULL")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    with transaction(conn):
        conn.execute("INSERT INTO t (v) VALUES ('a')")
    conn.close()
    conn = open_database(path, V2)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("SELECT v, w FROM t").fetchall() == [("a", 7)]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "x.sqlite3", V1)
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO t (v) VALUES ('a')")
        raise RuntimeError("boom")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    conn.close()


def test_a_newer_schema_or_a_foreign_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    open_database(path, V2).close()
    with pytest.raises(StorageError, match=r"x\.sqlite3: schema version 2 was written by a newer smartshelf"):
        open_database(path, V1)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    before = junk.read_bytes()
    with pytest.raises(StorageError, match=r"junk\.sqlite3: is not a usable SQLite database"):
        open_database(junk, V1)
    assert junk.read_bytes() == before, "left untouched"
    assert open_readonly(tmp_path / "absent.sqlite3") is None


def test_a_current_version_with_other_tables_is_refused_naming_the_table(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    other.execute(f"PRAGMA user_version = {len(V1)}")
    other.commit()
    other.close()
    with pytest.raises(StorageError, match=r"x\.sqlite3: schema version 1 but no table 't'"):
        open_database(path, V1)
    open_database(tmp_path / "y.sqlite3", V1).close()
    other = sqlite3.connect(tmp_path / "y.sqlite3")
    other.execute("ALTER TABLE t RENAME TO old")
    other.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    other.commit()
    other.close()
    with pytest.raises(StorageError, match=r"y\.sqlite3: table 't' lacks column\(s\) v"):
        open_database(tmp_path / "y.sqlite3", V1)


def test_integrity_check_finds_damage(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    conn = open_database(path, V1)
    with transaction(conn):
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("v" * 200,) for _ in range(500)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert integrity_check(path) == []
    raw = bytearray(path.read_bytes())
    raw[4096 * 3: 4096 * 3 + 512] = b"\xff" * 512  # scribble over a b-tree page
    path.write_bytes(bytes(raw))
    assert integrity_check(path) != []


def test_backup_of_a_live_database_holds_every_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    conn = open_database(path, V1)
    with transaction(conn):
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(str(i),) for i in range(100)])
    conn.execute("BEGIN IMMEDIATE")  # a writer in the middle of a transaction: not in the copy
    conn.execute("INSERT INTO t (v) VALUES ('uncommitted')")
    backup_database(path, tmp_path / "copy.sqlite3")
    conn.execute("ROLLBACK")
    conn.close()
    copy = sqlite3.connect(tmp_path / "copy.sqlite3")
    assert copy.execute("SELECT count(*) FROM t").fetchone()[0] == 100
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "one self-contained file"
    copy.close()


def _ledger(data: Path, rows: int) -> None:
    conn = open_database(data / "ledger.sqlite3", V1, synchronous="FULL")
    with transaction(conn):
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"sale{i}",) for i in range(rows)])
    conn.close()


def test_backup_and_restore_carry_the_ledger_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_db(data / "store.json").table("products").insert({"sku": "A", "stock": 1})
    _ledger(data, 3)
    archive = backup(data, tmp_path / "out")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["ledger.sqlite3", "store.json"]
    _ledger(data, 2)  # two more sales after the backup
    safety = restore(archive, data)
    assert safety is not None
    with sqlite3.connect(data / "ledger.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 3
    with tarfile.open(safety) as tar:  # the state before the restore is kept, ledger included
        assert "ledger.sqlite3" in tar.getnames()


def test_restoring_an_archive_of_an_earlier_release_drops_the_newer_ledger(tmp_path: Path) -> None:
    old = tmp_path / "old"
    open_db(old / "store.json").table("sales").insert({"event_id": "e1"})  # its ledger is in store.json
    archive = backup(old, tmp_path / "out")
    data = tmp_path / "data"
    open_db(data / "store.json").table("products").insert({"sku": "A"})
    _ledger(data, 2)
    restore(archive, data)
    assert not (data / "ledger.sqlite3").exists(), "store.json's sales table is the whole ledger again"


def test_restore_refuses_a_corrupt_ledger_database_without_changes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_db(data / "store.json").table("products").insert({"sku": "A"})
    _ledger(data, 2)
    before = (data / "store.json").read_bytes()
    bad = tmp_path / "bad.tar.gz"
    payload = tmp_path / "p"
    with tarfile.open(bad, "w:gz") as tar:
        payload.write_text("{}")
        tar.add(payload, arcname="store.json")
        payload.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
        tar.add(payload, arcname="ledger.sqlite3")
    with pytest.raises(StorageError, match="ledger.sqlite3 in the archive"):
        restore(bad, data)
    assert (data / "store.json").read_bytes() == before
    with sqlite3.connect(data / "ledger.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
