"""SQLite (standard library) for what grows all day: the device's event log, the admin's sales ledger.

Why not TinyDB there: a TinyDB file is rewritten whole on every write, so the bytes written per
record grow with the file (the day's event file, the ledger). An SQLite database in WAL mode appends
the changed pages to its ``-wal`` file and folds them back at a checkpoint, so each record costs the
same whatever the size of the file, and indexed reads stay fast.

Rules (the same as for the JSON files): one writer per file (its owner's connection, serialised by
the owner); readers open the file read-only (:func:`open_readonly`) and never block the writer (WAL).

* :func:`open_database` opens the owner's connection with the pragmas (WAL, ``synchronous`` as the
  owner asks: ``NORMAL`` where the last few seconds may be lost in a power cut, ``FULL`` where an
  acknowledged record must survive it), brings the schema up to date by running the owner's
  migrations in order (``PRAGMA user_version`` is the schema version) and refuses a file that a newer
  release wrote or that is not a database, naming the file.
* :func:`integrity_check` runs ``PRAGMA integrity_check``; :func:`backup_database` copies a live
  database consistently with the ``sqlite3`` backup API (into a file or into bytes for an archive).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from smartshelf.core.atomic import atomic_write_bytes, fsync_dir
from smartshelf.core.errors import StorageError

logger = logging.getLogger(__name__)

Synchronous = Literal["NORMAL", "FULL"]
#: A migration is SQL (one or more statements) or a function of the connection; migration ``i``
#: (0-based) brings the schema from version ``i`` to ``i + 1``.
Migration = str | Callable[[sqlite3.Connection], None]
BUSY_TIMEOUT_MS = 10_000


def _fail(path: Path, what: str, exc: BaseException) -> StorageError:
    return StorageError(f"{path}: {what} ({exc})")


def open_database(
    path: str | os.PathLike[str],
    migrations: Sequence[Migration],
    *,
    synchronous: Synchronous = "NORMAL",
    mode: int = 0o644,
    page_size: int | None = None,
) -> sqlite3.Connection:
    """The owner's read-write connection to ``path`` (created if missing), schema up to date.

    The connection is in autocommit mode (``isolation_level=None``): use :func:`transaction` for
    writes. ``check_same_thread`` is off because owners hand the connection to a writer thread;
    the owner serialises all use of it. ``page_size`` applies to a new file only (a small page keeps
    the bytes a one-row commit appends to the WAL small).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        conn = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except (OSError, sqlite3.Error) as exc:
        raise _fail(path, "cannot open the database", exc) from exc
    try:
        if created:
            os.chmod(path, mode)
            fsync_dir(path.parent)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if created and page_size is not None:
            conn.execute(f"PRAGMA page_size = {int(page_size)}")
        journal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(journal).lower() != "wal":
            raise StorageError(f"{path}: cannot switch the database to WAL mode (got {journal!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        _migrate(conn, path, migrations)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _fail(path, "is not a usable SQLite database; restore it with `smartshelf admin restore` "
                    "or move it away to start empty", exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise StorageError(
            f"{path}: schema version {version} was written by a newer smartshelf (this one knows "
            f"{len(migrations)}); update smartshelf or restore a backup"
        )
    for number in range(version, len(migrations)):
        with transaction(conn):
            _apply(conn, migrations[number])
            conn.execute(f"PRAGMA user_version = {number + 1}")
        logger.info("%s: schema version %d -> %d", path, number, number + 1)
    _check_schema(conn, path, migrations)


def _apply(conn: sqlite3.Connection, step: Migration) -> None:
    if isinstance(step, str):
        for statement in (s.strip() for s in step.split(";")):
            if statement:
                conn.execute(statement)
    else:
        step(conn)


def _columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: {r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')} for t in tables}


def _check_schema(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> None:
    """Refuse a file whose schema version is current but whose tables are not the ones the
    migrations make (another program's database, a hand-edited file), naming what is missing."""
    reference = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in migrations:
            _apply(reference, step)
        expected = _columns(reference)
    finally:
        reference.close()
    found = _columns(conn)
    for table, columns in sorted(expected.items()):
        if table not in found:
            raise StorageError(f"{path}: schema version {len(migrations)} but no table {table!r}; "
                               "restore it with `smartshelf admin restore` or move it away to start empty")
        if missing := sorted(columns - found[table]):
            raise StorageError(f"{path}: table {table!r} lacks column(s) {', '.join(missing)}; "
                               "restore it with `smartshelf admin restore` or move it away to start empty")


def open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection | None:
    """A read-only connection for another process's database; None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA schema_version").fetchone()  # fails here for a file that is not a database
    except sqlite3.Error as exc:
        raise _fail(path, "cannot read the database", exc) from exc
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` if the block raises)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def integrity_check(path: str | os.PathLike[str]) -> list[str]:
    """Problems ``PRAGMA integrity_check`` finds in the database (empty list: it is sound)."""
    conn = open_readonly(path)
    if conn is None:
        raise StorageError(f"{path}: no such database")
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def backup_database(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """A consistent copy of a live database (``sqlite3`` backup API) written atomically to ``dest``."""
    source = Path(source)
    dest = Path(dest)
    src = open_readonly(source)
    if src is None:
        raise StorageError(f"{source}: no such database")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        finally:
            dst.close()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _fail(source, f"cannot back up to {dest}", exc) from exc
    finally:
        src.close()


def database_bytes(source: str | os.PathLike[str]) -> bytes | None:
    """A consistent snapshot of a live database as the bytes of one self-contained file (for an
    archive); None when the database does not exist."""
    source = Path(source)
    if not source.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="smartshelf-db-") as tmp:
        copy = Path(tmp) / source.name
        backup_database(source, copy)
        return copy.read_bytes()


def restore_database(dest: str | os.PathLike[str], raw: bytes) -> None:
    """Replace the database ``dest`` with ``raw`` (a :func:`database_bytes` snapshot), atomically.

    The stale ``-wal``/``-shm`` files of the replaced database are removed first (they belong to
    the old file and must not be replayed into the new one). The owner must not be running.
    """
    dest = Path(dest)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{dest}{suffix}")
    atomic_write_bytes(dest, raw, mode=0o600)


def check_database_bytes(raw: bytes, name: str) -> None:
    """Raise StorageError unless ``raw`` is a sound SQLite database (for restore's checks)."""
    if not raw.startswith(b"SQLite format 3\x00"):
        raise StorageError(f"{name} is not an SQLite database")
    with tempfile.TemporaryDirectory(prefix="smartshelf-db-") as tmp:
        copy = Path(tmp) / "check.sqlite3"
        copy.write_bytes(raw)
        try:
            problems = integrity_check(copy)
        except StorageError as exc:
            problems = [str(exc.__cause__ or exc)]
    if problems:
        raise StorageError(f"{name} is corrupt: {problems[0]}")
