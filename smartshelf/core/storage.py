"""Crash-safe JSON storage shared by the device and the admin page.

Guarantees (see CONTRACTS.md, "Storage module"):

* Every write is temp file in the same directory + ``fsync`` + ``os.replace`` + ``fsync`` of the
  directory, so a reader (or the next boot after a power cut) sees either the old or the new file,
  never half a file.
* :class:`AtomicJSONStorage` is a TinyDB storage that keeps the parsed file in memory, keyed on
  the file's (inode, size, mtime_ns, ctime_ns): reading an unchanged file does not parse it again,
  and a file replaced by another process is picked up on the next read.
* Before each write the storage keeps the previous (known good) version as ``<name>.bak`` (a hard
  link, no copy). A file that no longer parses is moved aside as ``<name>.corrupt-<timestamp>`` and
  the ``.bak`` copy restored, with an ERROR log line. It is never silently emptied: without a good
  copy :class:`~smartshelf.core.errors.StorageError` is raised and the file is left alone.
* :class:`FileLock` (``fcntl.flock`` on ``<file>.lock``) serialises read-modify-write cycles between
  processes (the admin service and CLI commands such as ``smartshelf admin set-password``).

Thread safety: a storage instance and the TinyDB on top of it are not thread-safe; one owner per
process (the admin ``InventoryRepository``, the device ``EventLog``) serialises access with a lock.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from smartshelf.core.atomic import FileLock, atomic_write_bytes, atomic_write_json, fsync_dir
from smartshelf.core.errors import StorageError

__all__ = [
    "BACKUP_DATABASES", "BACKUP_DIRS", "BACKUP_FILES", "BACKUP_SECRET_FILES", "AtomicJSONStorage", "FileLock",
    "SkipWrite", "atomic_write_bytes", "atomic_write_json", "backup", "fsync_dir", "open_db", "restore",
    "write_transaction",
]

logger = logging.getLogger(__name__)

#: Admin-owned files that ``backup`` copies and ``restore`` puts back (relative to the data dir).
BACKUP_FILES: tuple[str, ...] = ("store.json", "accounts.json")
#: Admin-owned secrets copied as they are and restored 0600 (the key that opens the terminals' secrets).
BACKUP_SECRET_FILES: tuple[str, ...] = ("terminal.key",)
#: Admin-owned SQLite databases, copied through the sqlite3 backup API (a consistent snapshot of a
#: live database): the sales ledger.
BACKUP_DATABASES: tuple[str, ...] = ("ledger.sqlite3",)
#: Admin-owned folders copied whole: product images uploaded by staff (never camera images) and
#: ``ledger/``, the sales ledger's JSON chunks of earlier releases (restored from an old backup, they
#: are moved into ledger.sqlite3 on the next start).
BACKUP_DIRS: tuple[str, ...] = ("images", "ledger")


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _parse_db(raw: bytes) -> dict[str, Any]:
    """Parse a TinyDB file; raise ValueError if it is not a JSON object of tables."""
    if not raw.strip():
        raise ValueError("file is empty")
    data = json.loads(raw)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError("top level is not an object of tables")
    return data


class AtomicJSONStorage(Storage):
    """TinyDB storage with atomic writes, a parse cache and corrupt-file recovery.

    ``read()`` returns the cached parsed object itself (TinyDB mutates it just before ``write``);
    when a write fails the cache is dropped so the next read re-parses the file on disk.

    Deferred writes (``write(data, defer=True)``) keep a change in memory only: this process reads
    it at once, the file follows at the owner's next :meth:`write` (or :meth:`flush`). Only for
    changes that are durable in another file already and can be derived from it again: when the
    file was replaced by another writer, or the in-memory copy was dropped, the next read parses the
    file and hands it to ``reconcile`` (set by the owner of that other file), which re-applies what
    the file lacks; a change it reports is kept as deferred again. ``deferred_since`` is the
    monotonic time of the oldest change not yet on disk (None when the file is current).
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, indent: int | None = None,
                 create_dirs: bool = True) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.indent = indent
        self.backup_path = self.path.with_name(self.path.name + ".bak")
        self._cache_key: tuple[int, int, int, int] | None = None
        self._cache: dict[str, Any] | None = None
        self._generation = 0
        #: monotonic time of the oldest change kept in memory only (see the class docstring)
        self.deferred_since: float | None = None
        #: re-applies changes durable elsewhere to freshly parsed data; returns whether it changed it
        self.reconcile: Callable[[dict[str, Any]], bool] | None = None
        self.monotonic: Callable[[], float] = time.monotonic
        if create_dirs and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    # -- reading --------------------------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache_key, self._cache = None, None
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from exc
        key = _stat_key(st)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        try:
            with open(self.path, "rb") as handle:  # stat the open file: key and bytes match
                st = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from exc
        try:
            data = _parse_db(raw)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            data = self._recover(exc)
            st = self.path.stat()
        self._cache_key, self._cache = _stat_key(st), data
        self._generation += 1
        self.deferred_since = None  # what was kept in memory only is gone with the old copy
        if self.reconcile is not None and not self.read_only and self.reconcile(data):
            self.deferred_since = self.monotonic()
        return data

    def _recover(self, reason: Exception) -> dict[str, Any]:
        if self.read_only:
            raise StorageError(
                f"{self.path} is corrupt ({reason}); its owner will restore the last good copy on its next open"
            )
        good: dict[str, Any] | None = None
        good_raw = b""
        try:
            good_raw = self.backup_path.read_bytes()
            good = _parse_db(good_raw)
        except (OSError, ValueError):
            good = None
        if good is None:
            raise StorageError(
                f"{self.path} is corrupt ({reason}) and there is no good copy ({self.backup_path}); "
                "the file was left untouched: restore a backup with `smartshelf admin restore ARCHIVE` "
                "or move the file away to start empty"
            )
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            os.replace(self.path, aside)
            atomic_write_bytes(self.path, good_raw)
        except OSError as exc:
            raise StorageError(f"{self.path} is corrupt and could not be restored: {exc}") from exc
        logger.error(
            "CORRUPT DATA FILE %s (%s): moved aside to %s and restored the last good copy %s; "
            "changes made after that copy are lost",
            self.path, reason, aside, self.backup_path,
        )
        return good

    # -- writing --------------------------------------------------------------------------------
    def write(self, data: dict[str, Any], *, durable: bool = True, defer: bool = False) -> None:
        """Replace the file with ``data`` (atomically; with fsyncs unless ``durable=False``), or with
        ``defer=True`` keep ``data`` in memory only until the next write (see the class docstring)."""
        if self.read_only:
            raise StorageError(f"{self.path} is opened read-only")
        if defer and self._cache_key is not None:
            self._cache = data
            self._generation += 1
            if self.deferred_since is None:
                self.deferred_since = self.monotonic()
            return
        try:
            raw = json.dumps(data, indent=self.indent, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            self.invalidate()
            raise StorageError(f"cannot serialise data for {self.path}: {exc}") from exc
        if not self.path.exists() and self.backup_path.exists():
            # the file vanished but its last good copy is here: writing now would start a new, nearly
            # empty file that the next write copies over the good backup. Refuse; the owner restores.
            self.invalidate()
            raise StorageError(
                f"{self.path} is missing but its last good copy {self.backup_path.name} exists; nothing was "
                f"written. Restore it (cp {self.backup_path} {self.path}) and restart"
            )
        try:
            self._keep_last_good()
            atomic_write_bytes(self.path, raw, durable=durable)
            st = self.path.stat()
        except BaseException:
            self.invalidate()
            raise
        self._cache_key, self._cache = _stat_key(st), data
        self._generation += 1
        self.deferred_since = None

    def flush(self, *, durable: bool = False) -> bool:
        """Write what is kept in memory only (the caller holds the file lock); False when the file
        is current. A file replaced meanwhile by another writer is read and reconciled first."""
        if self.deferred_since is None:
            return False
        data = self.read()  # the deferred data, or the other writer's file reconciled
        if self.deferred_since is None or data is None:
            return False
        self.write(data, durable=durable)
        return True

    def _keep_last_good(self) -> None:
        """Hard-link the current file as ``.bak`` if it is known good (we parsed or wrote it)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if _stat_key(st) != self._cache_key:
            return
        tmp = self.backup_path.with_name(f".{self.backup_path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            os.link(self.path, tmp)
        except OSError:  # file systems without hard links: copy instead
            atomic_write_bytes(self.backup_path, self.path.read_bytes())
            return
        os.replace(tmp, self.backup_path)

    @property
    def version(self) -> tuple[int, ...] | None:
        """Identity of the data last read or written (changes with every write, from any process,
        deferred ones included); None before the first read. Call ``read()`` first to refresh it."""
        return None if self._cache_key is None else (*self._cache_key, self._generation)

    def invalidate(self) -> None:
        """Drop the in-memory copy (deferred changes too: ``reconcile`` brings them back); the next
        read parses the file again."""
        self._cache_key, self._cache = None, None
        self.deferred_since = None

    def close(self) -> None:
        self.invalidate()


class _FreshTable(Table):
    """A TinyDB table that never serves stale data when another handle or process wrote the file.

    TinyDB caches query results and the next document id per Table object; both go stale when the
    file is written elsewhere, so both caches are off (reads stay cheap: the storage caches the parse).
    """

    default_query_cache_capacity = 0
    _in_batch = False

    def _get_next_id(self) -> int:
        # Inside insert_multiple the file is written only once at the end, so the ids handed out so
        # far in the batch must be remembered; between operations the id is recomputed from the file.
        if not self._in_batch:
            self._next_id = None
        return super()._get_next_id()

    def insert_multiple(self, documents: Iterable[Mapping[str, Any]]) -> list[int]:
        self._next_id = None
        self._in_batch = True
        try:
            return super().insert_multiple(documents)
        finally:
            self._in_batch = False
            self._next_id = None


class SmartShelfDB(TinyDB):
    table_class = _FreshTable


def open_db(path: str | os.PathLike[str], *, read_only: bool = False, indent: int | None = None) -> TinyDB:
    """Open a TinyDB file through :class:`AtomicJSONStorage`."""
    return SmartShelfDB(os.fspath(path), storage=AtomicJSONStorage, read_only=read_only, indent=indent)


class SkipWrite(Exception):
    """Raised inside :func:`write_transaction` to leave the file as it is (nothing changed)."""


@contextlib.contextmanager
def write_transaction(db: TinyDB, *, durable: bool = True,
                      defer: Callable[[], bool] | None = None) -> Iterator[dict[str, dict[str, Any]]]:
    """Yield the raw tables (``{table: {doc_id: doc}}``) and write them once, atomically, at the end.

    Use it for a change that spans tables (a sale and its stock change): either all of it reaches
    the disk or none. The caller holds the file lock (and its thread lock). If the block raises,
    nothing is written and the cache is dropped. ``defer``, asked at the end: keep the change in
    memory only (:meth:`AtomicJSONStorage.write`'s ``defer``).
    """
    storage = db.storage
    if not isinstance(storage, AtomicJSONStorage):
        raise StorageError(f"write_transaction needs an AtomicJSONStorage, not {type(storage).__name__}")
    data = storage.read() or {}
    try:
        yield data
    except SkipWrite:
        storage.invalidate()
        return
    except BaseException:
        storage.invalidate()
        raise
    storage.write(data, durable=durable, defer=defer is not None and defer())


# -- backup / restore ---------------------------------------------------------------------------
def backup(data_dir: str | os.PathLike[str], dest_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write a ``.tar.gz`` of the admin-owned files to ``dest_dir`` (default ``<data_dir>/backups``):
    store.json, accounts.json, ledger.sqlite3, terminal.key (if present), images/ and ledger/.

    Each JSON file is read under its file lock, so the copy is a consistent snapshot; the sales
    ledger is copied with the sqlite3 backup API while store.json's lock is held (a sale commits
    the ledger and store.json under that lock), so the stock and the ledger in the archive agree.
    The archive is created 0600 (it holds password hashes and terminal secrets). Returns its path.
    """
    from smartshelf.core.sqlite import database_bytes

    root = Path(data_dir)
    dest = Path(dest_dir) if dest_dir is not None else root / "backups"
    dest.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive = dest / f"smartshelf-backup-{stamp}.tar.gz"
    n = 1
    while archive.exists():
        n += 1
        archive = dest / f"smartshelf-backup-{stamp}-{n}.tar.gz"
    buffer = io.BytesIO()
    databases: dict[str, bytes] = {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in BACKUP_FILES:
            path = root / name
            with FileLock(path):
                if name == "store.json":
                    for db_name in BACKUP_DATABASES:
                        snapshot = database_bytes(root / db_name)
                        if snapshot is not None:
                            databases[db_name] = snapshot
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    continue
            try:
                _parse_db(raw)
            except ValueError as exc:
                raise StorageError(f"not backing up {path}: it is corrupt ({exc})") from exc
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(raw))
        for name, raw in databases.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(raw))
        for name in BACKUP_SECRET_FILES:
            path = root / name
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(raw))
        for dirname in BACKUP_DIRS:
            folder = root / dirname
            if not folder.is_dir():
                continue
            for item in sorted(folder.iterdir()):
                if item.is_file() and not item.is_symlink():
                    tar.add(item, arcname=f"{dirname}/{item.name}", recursive=False)
    atomic_write_bytes(archive, buffer.getvalue(), mode=0o600)
    logger.info("backup written to %s", archive)
    return archive


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    parts = Path(name).parts
    ok = member.isfile() and (
        (name in BACKUP_FILES)
        or (name in BACKUP_SECRET_FILES)
        or (name in BACKUP_DATABASES)
        or (len(parts) == 2 and parts[0] in BACKUP_DIRS and parts[1] not in ("", ".", ".."))
    )
    if not ok or name.startswith("/") or ".." in parts:
        raise StorageError(f"{archive}: unexpected entry {name!r} (not a smartshelf backup?)")


def restore(archive: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> Path | None:
    """Put the files of a :func:`backup` archive back into ``data_dir``.

    The archive is checked whole first (only known names, JSON files parse, databases pass SQLite's
    integrity check); if anything is wrong, nothing is changed. The current files are first saved
    with :func:`backup` (returned path) so a restore can be undone. Each file is replaced atomically
    under its lock. An archive without a sales ledger database (written by an earlier release, whose
    ledger is inside store.json) removes the current one: the archive's store.json is the whole
    ledger then. Stop the admin service first (it owns the ledger).
    """
    from smartshelf.core.sqlite import check_database_bytes, restore_database

    archive = Path(archive)
    root = Path(data_dir)
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar.getmembers():
                _check_member(member, archive)
                handle = tar.extractfile(member)
                if handle is None:
                    raise StorageError(f"{archive}: cannot read entry {member.name!r}")
                contents[member.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise StorageError(f"{archive} is not a readable backup archive: {exc}") from exc
    for name in BACKUP_FILES:
        if name in contents:
            try:
                _parse_db(contents[name])
            except ValueError as exc:
                raise StorageError(f"{archive}: {name} in the archive is corrupt ({exc})") from exc
    for name in BACKUP_DATABASES:
        if name in contents:
            check_database_bytes(contents[name], f"{archive}: {name} in the archive")
    if not any(name in contents for name in BACKUP_FILES):
        raise StorageError(f"{archive} holds none of {', '.join(BACKUP_FILES)}: not a smartshelf backup")
    safety = backup(root) if any((root / n).exists() for n in (*BACKUP_FILES, *BACKUP_DATABASES)) else None
    for name in BACKUP_FILES:
        if name in contents:
            path = root / name
            with FileLock(path):
                if name == "store.json":
                    for db_name in BACKUP_DATABASES:
                        if db_name in contents:
                            restore_database(root / db_name, contents[db_name])
                        else:
                            for leftover in (db_name, f"{db_name}-wal", f"{db_name}-shm"):
                                (root / leftover).unlink(missing_ok=True)
                atomic_write_bytes(path, contents[name], mode=0o600 if name == "accounts.json" else None)
    for name, raw in contents.items():
        if name in BACKUP_DATABASES:
            continue
        if name in BACKUP_SECRET_FILES:
            atomic_write_bytes(root / name, raw, mode=0o600)
        elif name not in BACKUP_FILES:
            atomic_write_bytes(root / name, raw)
    logger.info("restored %s into %s (previous state saved as %s)", archive, root, safety)
    return safety
