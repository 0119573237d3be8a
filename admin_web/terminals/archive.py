"""The sales-ledger archive: older ledger documents moved out of store.json.

Why: every event rewrites store.json whole (atomic temp file + fsync + rename, the one-writer rule),
so its write cost grows with the ledger: measured on the development machine, 5,000 sales make a
1.5 MB file and a 23 ms ``json.dumps`` per write, 20,000 sales 6 MB and 56 ms; on a Pi's SD card
each rewrite also wears the card. So store.json keeps only the recent ledger (the ``sales`` table,
bounded), and the ledger keeps older documents in ``<data_dir>/ledger/sales-NNNNNN.json``: one
write-once chunk per move (``KEEP_RECENT`` .. ``COMPACT_AT`` entries), each
``{"format": 1, "sales": [doc, ...]}``, written atomically like every data file and never rewritten,
so a move costs the same whatever the ledger's size (the admin is their sole writer).

Moving is crash-safe without a second lock: the archive file is written first, then store.json
without the moved documents. A crash in between leaves a document in both places; readers and the
next move de-duplicate by ``event_id``, and the duplicate check of new events consults both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from smartshelf.core.errors import StorageError
from smartshelf.core.storage import atomic_write_json

logger = logging.getLogger(__name__)

ARCHIVE_DIR = "ledger"
FORMAT = 1


class LedgerArchive:
    """The archive chunks of one data dir.

    Only the archived event ids are kept in memory (for the duplicate check of every commit;
    strings cost the garbage collector nothing to scan); documents are read on demand, newest chunk
    first, so a report on the last days reads only the last chunks.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / ARCHIVE_DIR
        self._signature: tuple[int, int] | None = None
        self._loaded = False
        self._ids: frozenset[str] = frozenset()

    def _files(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("sales-*.json") if p.stem[6:].isdigit())

    def _current_signature(self) -> tuple[int, int] | None:
        """The folder's (inode, mtime): every chunk is created by a rename into it, which changes
        the folder's mtime, so one stat tells whether anything changed (not one per chunk)."""
        try:
            st = self.dir.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    @staticmethod
    def _read_file(path: Path) -> list[dict[str, Any]]:
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StorageError(f"{path}: ledger archive file is unreadable ({exc}); restore it from a backup") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("sales"), list):
            raise StorageError(f"{path}: not a ledger archive file (expected {{\"format\": 1, \"sales\": [...]}})")
        return raw["sales"]

    def ids(self) -> frozenset[str]:
        """Event ids of every archived document (re-read only when a chunk was added)."""
        sig = self._current_signature()
        if not (self._loaded and sig == self._signature):
            seen: set[str] = set()
            for path in self._files():
                seen.update(str(doc.get("event_id")) for doc in self._read_file(path))
            self._ids, self._signature, self._loaded = frozenset(seen), sig, True
        return self._ids

    def docs(self, *, since: float | None = None) -> list[dict[str, Any]]:
        """Archived documents, oldest first, each event once; with ``since`` (unix seconds) only the
        chunks that hold entries received at or after it are read (and only those entries kept)."""
        chunks: list[list[dict[str, Any]]] = []
        for path in reversed(self._files()):
            docs = self._read_file(path)
            if since is not None:
                docs = [d for d in docs if _received(d) >= since]
            chunks.append(docs)
            if since is not None and len(docs) == 0:
                break  # chunks are chronological: older ones hold nothing newer
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for docs in reversed(chunks):
            for doc in docs:
                if doc.get("event_id") not in seen:
                    seen.add(doc.get("event_id"))
                    out.append(doc)
        return out

    def add(self, docs: Iterable[dict[str, Any]]) -> int:
        """Write the not yet archived ``docs`` as a new chunk file; returns how many were written."""
        ids = set(self.ids())
        fresh: list[dict[str, Any]] = []
        for doc in docs:
            if doc.get("event_id") not in ids:
                ids.add(str(doc.get("event_id")))
                fresh.append(doc)
        if not fresh:
            return 0
        files = self._files()
        number = int(files[-1].stem[6:]) + 1 if files else 1
        path = self.dir / f"sales-{number:06d}.json"
        atomic_write_json(path, {"format": FORMAT, "sales": fresh})
        self._ids = frozenset(ids)  # current without reading every chunk again
        self._signature = self._current_signature()
        logger.info("moved %d ledger entries from store.json to %s", len(fresh), path)
        return len(fresh)


def _received(doc: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(doc.get("received_at"))).timestamp()
    except ValueError:
        return float("inf")  # unknown: keep it in every report rather than lose it
