"""Interaction data for training: MovieLens-100K and the generic CSV format (the admin's sales export).

Generic CSV format (UTF-8, header row, comma-separated):

``interactions.csv``
    ``user,item,value,time``. ``user`` is any pseudonymous id (a visit, a loyalty card); ``item`` the
    product id used in the factor file; ``value`` a positive number (quantity, or a 1-5 rating: see
    ``like_threshold``), default 1 when the column is absent or empty; ``time`` a Unix timestamp or an
    ISO-8601 date/time (used to split off the most recent sales), default the row number.
    Instead of ``user`` (or as well), a ``segment`` column (``female/25-34``) may give the shopper's
    segment directly; rows without ``user`` are then one-row pseudo-users.
``users.csv`` (optional)
    ``user,gender,age`` (gender ``female``/``male`` or ``F``/``M``; age in years) **or** ``user,segment``.
``items.csv`` (optional)
    ``item,name,...``; lists the catalogue so that items nobody bought yet are still in the factor file.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smartshelf.core.errors import ConfigError
from smartshelf.core.types import Gender, Segment, all_segments

logger = logging.getLogger(__name__)

SEGMENT_LABELS: tuple[str, ...] = tuple(str(s) for s in all_segments())


class DataError(ConfigError):
    """An input data file is missing, malformed or inconsistent; the message names the file, row and column."""


@dataclass(frozen=True, eq=False)
class Interactions:
    """A user x item interaction log in coordinate form.

    ``user_segment[u]`` is an index into :data:`SEGMENT_LABELS` or -1 when unknown.
    ``like_threshold``: values >= it count as "liked" (relevant); None means every interaction is a like.
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]
    times: npt.NDArray[np.float64]
    user_segment: npt.NDArray[np.int64]
    like_threshold: float | None = None
    source: str = ""
    item_names: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def liked(self) -> npt.NDArray[np.bool_]:
        if self.like_threshold is None:
            return np.ones(self.values.shape, dtype=bool)
        return self.values >= self.like_threshold

    def subset_rows(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """Same users and items, only the interactions where ``mask`` is true."""
        return replace(
            self,
            users=self.users[mask],
            items=self.items[mask],
            values=self.values[mask],
            times=self.times[mask],
        )

    def per_row(self) -> Interactions:
        """Every interaction as its own user (one sale line = one shopper of the row's segment)."""
        n = self.users.size
        return replace(
            self,
            user_ids=tuple(f"row{i}" for i in range(n)),
            users=np.arange(n, dtype=np.int64),
            user_segment=self.user_segment[self.users],
        )

    def subset_users(self, user_rows: npt.NDArray[np.int64]) -> Interactions:
        """Only the given users (renumbered 0..len-1), all items kept."""
        user_rows = np.asarray(user_rows, dtype=np.int64)
        remap = np.full(self.n_users, -1, dtype=np.int64)
        remap[user_rows] = np.arange(user_rows.size)
        keep = remap[self.users] >= 0
        return replace(
            self,
            user_ids=tuple(self.user_ids[u] for u in user_rows),
            users=remap[self.users[keep]],
            items=self.items[keep],
            values=self.values[keep],
            times=self.times[keep],
            user_segment=self.user_segment[user_rows],
        )


def segment_index_of(gender: str, age: str, *, where: str) -> int:
    """Segment index from raw gender/age text; -1 if either is empty."""
    gender = gender.strip().lower()
    age = age.strip()
    if not gender or not age:
        return -1
    mapped = {
        "f": "female",
        "female": "female",
        "woman": "female",
        "women": "female",
        "m": "male",
        "male": "male",
        "man": "male",
        "men": "male",
    }.get(gender)
    if mapped is None:
        raise DataError(f"{where}: gender {gender!r} is not female/male (or F/M)")
    try:
        years = float(age)
    except ValueError:
        raise DataError(f"{where}: age {age!r} is not a number") from None
    if not math.isfinite(years) or years < 0 or years > 130:
        raise DataError(f"{where}: age {age!r} is out of range")
    return SEGMENT_LABELS.index(str(Segment.of(Gender(mapped), years)))


def _segment_label_index(label: str, *, where: str) -> int:
    label = label.strip()
    if not label:
        return -1
    try:
        return SEGMENT_LABELS.index(str(Segment.parse(label)))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def _movielens_users(directory: Path) -> list[tuple[str, str, str, str]]:
    """(user id, age text, gender text, "file line N") for every line of ``u.user``."""
    rows = []
    with open(directory / "u.user", encoding="latin-1") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("|")
            if len(parts) < 3:
                raise DataError(f"{directory / 'u.user'} line {line_no}: expected id|age|gender|...")
            rows.append((parts[0], parts[1], parts[2], f"{directory / 'u.user'} line {line_no}"))
    return rows


def movielens_ages(directory: str | Path) -> npt.NDArray[np.float64]:
    """Age in years of each user of ``u.user``, in :func:`load_movielens`'s user order (NaN: not given)."""
    ages = []
    for _user, age, _gender, where in _movielens_users(Path(directory)):
        try:
            ages.append(float(age) if age.strip() else math.nan)
        except ValueError:
            raise DataError(f"{where}: age {age!r} is not a number") from None
    return np.asarray(ages, dtype=np.float64)


def load_movielens(directory: str | Path) -> Interactions:
    """MovieLens-100K original format: ``u.data`` (tab), ``u.user`` and ``u.item`` (pipe, latin-1)."""
    directory = Path(directory)
    for name in ("u.data", "u.user"):
        if not (directory / name).is_file():
            raise DataError(f"MovieLens directory {directory} has no {name}")
    users: list[str] = []
    segments: list[int] = []
    for user, age, gender, where in _movielens_users(directory):
        users.append(user)
        segments.append(segment_index_of(gender, age, where=where))
    item_ids: list[str] = []
    names: list[str] = []
    if (directory / "u.item").is_file():
        with open(directory / "u.item", encoding="latin-1") as handle:
            for line in handle:
                if line.strip():
                    parts = line.split("|")
                    item_ids.append(parts[0])
                    names.append(parts[1] if len(parts) > 1 else "")
    try:
        raw = np.loadtxt(directory / "u.data", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{directory / 'u.data'}: {exc}") from None
    if raw.shape[1] < 4:
        raise DataError(f"{directory / 'u.data'}: expected user, item, rating, timestamp columns")
    user_pos = {u: i for i, u in enumerate(users)}
    item_pos = {it: i for i, it in enumerate(item_ids)}
    for it in np.unique(raw[:, 1]).astype(str).tolist():
        if it not in item_pos:
            item_pos[it] = len(item_ids)
            item_ids.append(it)
            names.append("")
    user_col = raw[:, 0].astype(str)
    missing = sorted(set(user_col.tolist()) - set(user_pos))
    if missing:
        raise DataError(f"{directory / 'u.data'}: user ids {missing[:5]} are not in u.user")
    u = np.fromiter((user_pos[x] for x in user_col.tolist()), dtype=np.int64, count=raw.shape[0])
    i = np.fromiter((item_pos[x] for x in raw[:, 1].astype(str).tolist()), dtype=np.int64, count=raw.shape[0])
    return Interactions(
        user_ids=tuple(users),
        item_ids=tuple(item_ids),
        users=u,
        items=i,
        values=raw[:, 2].astype(np.float32),
        times=raw[:, 3].astype(np.float64),
        user_segment=np.asarray(segments, dtype=np.int64),
        like_threshold=4.0,
        source=f"movielens:{directory}",
        item_names=tuple(names),
    )


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if not fields:
                raise DataError(f"CSV file {path} is empty (no header row)")
            reader.fieldnames = fields
            return fields, list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"CSV file {path} cannot be read: {exc}") from None


def _parse_time(text: str, *, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise DataError(f"{where}: time {text!r} is neither a Unix timestamp nor ISO-8601") from None


def load_csv(
    interactions: str | Path,
    users: str | Path | None = None,
    items: str | Path | None = None,
    *,
    like_threshold: float | None = None,
) -> Interactions:
    """Load the generic CSV format (see the module docstring)."""
    interactions = Path(interactions)
    user_segment: dict[str, int] = {}
    if users is not None:
        users = Path(users)
        fields, rows = _read_csv(users)
        if "user" not in fields or not ({"gender", "age"} <= set(fields) or "segment" in fields):
            raise DataError(
                f"{users}: needs columns user,gender,age or user,segment (found {','.join(fields)})"
            )
        for line_no, row in enumerate(rows, 2):
            where = f"{users} line {line_no}"
            if "segment" in fields and (row.get("segment") or "").strip():
                seg = _segment_label_index(row["segment"], where=where)
            else:
                seg = segment_index_of(row.get("gender") or "", row.get("age") or "", where=where)
            user_segment[(row.get("user") or "").strip()] = seg
    item_ids: list[str] = []
    names: list[str] = []
    item_pos: dict[str, int] = {}
    if items is not None:
        items = Path(items)
        fields, rows = _read_csv(items)
        if "item" not in fields:
            raise DataError(f"{items}: needs an 'item' column (found {','.join(fields)})")
        for line_no, row in enumerate(rows, 2):
            item = (row.get("item") or "").strip()
            if not item:
                raise DataError(f"{items} line {line_no}: empty item id")
            if item not in item_pos:
                item_pos[item] = len(item_ids)
                item_ids.append(item)
                names.append((row.get("name") or "").strip())
    fields, rows = _read_csv(interactions)
    if "item" not in fields or not ({"user", "segment"} & set(fields)):
        raise DataError(
            f"{interactions}: needs columns item and user and/or segment (found {','.join(fields)})"
        )
    user_ids: list[str] = []
    user_pos: dict[str, int] = {}
    segs: list[int] = []
    u_col: list[int] = []
    i_col: list[int] = []
    v_col: list[float] = []
    t_col: list[float] = []
    for line_no, row in enumerate(rows, 2):
        where = f"{interactions} line {line_no}"
        item = (row.get("item") or "").strip()
        if not item:
            raise DataError(f"{where}: empty item")
        user = (row.get("user") or "").strip()
        row_seg = _segment_label_index(row.get("segment") or "", where=where)
        if not user:
            if "segment" not in fields:
                raise DataError(f"{where}: empty user")
            user = f"row{line_no}"
        if user not in user_pos:
            user_pos[user] = len(user_ids)
            user_ids.append(user)
            segs.append(row_seg if row_seg >= 0 else user_segment.get(user, -1))
        elif row_seg >= 0:
            segs[user_pos[user]] = row_seg
        if item not in item_pos:
            item_pos[item] = len(item_ids)
            item_ids.append(item)
            names.append("")
        value_text = (row.get("value") or "").strip()
        try:
            value = float(value_text) if value_text else 1.0
        except ValueError:
            raise DataError(f"{where}: value {value_text!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: value {value_text!r} is not finite")
        time_text = (row.get("time") or "").strip()
        u_col.append(user_pos[user])
        i_col.append(item_pos[item])
        v_col.append(value)
        t_col.append(_parse_time(time_text, where=where) if time_text else float(line_no))
    if not u_col:
        raise DataError(f"{interactions}: no interactions")
    values = np.asarray(v_col, dtype=np.float32)
    keep = values > 0
    if not keep.all():
        logger.info(
            "%s: ignoring %d rows with value <= 0 (returns/refunds)", interactions, int((~keep).sum())
        )
    return Interactions(
        user_ids=tuple(user_ids),
        item_ids=tuple(item_ids),
        users=np.asarray(u_col, dtype=np.int64)[keep],
        items=np.asarray(i_col, dtype=np.int64)[keep],
        values=values[keep],
        times=np.asarray(t_col, dtype=np.float64)[keep],
        user_segment=np.asarray(segs, dtype=np.int64),
        like_threshold=like_threshold,
        source=f"csv:{interactions}",
        item_names=tuple(names),
    )
