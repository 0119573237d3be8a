"""Atomic, durable file writes and the inter-process lock: standard library only.

Split from :mod:`smartshelf.core.storage` (which adds TinyDB on top) so that code that runs before
any venv exists (``smartshelf update`` from setup.sh, with the distribution's python) uses the same
writer and lock as the services.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

from smartshelf.core.errors import StorageError


def file_stamp(path: str | os.PathLike[str] | None) -> tuple[int, int] | None:
    """(mtime in ns, size) of a file, or None when it cannot be stat'ed: how readers notice that a
    file owned by another writer was replaced (every write is an atomic rename, so both change)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry change (a rename) to disk."""
    fd = os.open(os.fspath(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems (e.g. certain FUSE mounts) refuse fsync on a dir
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None,
                       durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``mode`` sets the permission bits of the new file (for example 0o600 for secrets); by default
    an existing file's mode is kept, else 0o644. ``durable=False`` skips the two fsyncs (file and
    folder): the replacement is still atomic (a reader sees the old or the new file), but a power
    cut may bring back the previous version; only for writes whose content is also durable
    elsewhere (store.json's stock after a sale, replayed from the sales ledger).
    """
    target = Path(path)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if mode is None:
            try:
                mode = target.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        if durable:
            fsync_dir(directory)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {target}: {exc}") from exc
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = None,
                      mode: int | None = None, durable: bool = True) -> None:
    """Serialise ``obj`` as UTF-8 JSON and write it with :func:`atomic_write_bytes`."""
    try:
        data = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StorageError(f"cannot serialise data for {path}: {exc}") from exc
    atomic_write_bytes(path, data, mode=mode, durable=durable)


class FileLock:
    """Inter-process lock: ``fcntl.flock`` on ``<path>.lock``.

    Re-entrant within one instance (a thread that holds it may enter again); different instances,
    threads or processes wait for each other. Use one instance per file per process.
    ``timeout`` (seconds, None = wait forever) raises StorageError when the lock is not free in time.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float | None = 30.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=-1 if self.timeout is None else self.timeout):
            raise StorageError(f"timed out waiting for lock {self.lock_path}")
        try:
            if self._depth == 0:
                self.lock_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() > deadline:
                            os.close(fd)
                            raise StorageError(
                                f"timed out after {self.timeout} s waiting for lock {self.lock_path} "
                                "(another smartshelf process holds it)"
                            ) from None
                        time.sleep(0.01)
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
        self._thread_lock.release()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
