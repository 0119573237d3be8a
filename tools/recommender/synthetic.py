"""Test doubles shipped with the package (as gpiozero ships MockFactory): small factor models and
synthetic interaction data with a known answer, plus a MovieLens-format writer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device.recommend.data import SEGMENT_LABELS, Interactions
from device.recommend.factors import FactorModel
from smartshelf.core.types import bracket_midpoint


def make_model(
    item_factors: np.ndarray | Sequence[Sequence[float]],
    *,
    item_ids: Sequence[str] | None = None,
    segment_vectors: dict[str, Sequence[float]] | None = None,
    global_vector: Sequence[float] | None = None,
    popularity: Sequence[float] | None = None,
    metadata: dict | None = None,
) -> FactorModel:
    """A FactorModel from explicit arrays; unspecified segments get the global vector (default zeros)."""
    factors = np.asarray(item_factors, dtype=np.float32)
    n, k = factors.shape
    glob = np.zeros(k, dtype=np.float32) if global_vector is None else np.asarray(global_vector, np.float32)
    vectors = np.tile(glob, (len(SEGMENT_LABELS), 1))
    for label, vec in (segment_vectors or {}).items():
        vectors[SEGMENT_LABELS.index(label)] = vec
    return FactorModel(
        item_ids=tuple(item_ids) if item_ids is not None else tuple(f"item{i}" for i in range(n)),
        item_factors=factors,
        segment_ids=SEGMENT_LABELS,
        segment_vectors=vectors,
        global_vector=glob,
        popularity=np.zeros(n, np.float32) if popularity is None else np.asarray(popularity, np.float32),
        metadata=metadata or {"method": "test"},
    )


def two_group_interactions(
    *,
    n_users: int = 120,
    n_items: int = 30,
    liked_per_user: int = 6,
    noise: float = 0.05,
    seed: int = 0,
    empty_segments: Sequence[str] = (),
) -> Interactions:
    """Women like items 0-9, men items 10-19, items 20+ are rarely liked; ``noise`` share of random likes.

    Users are spread over the age brackets of both genders except ``empty_segments``. Ratings are 1-5
    (likes are 4-5, some disliked 1-2 ratings of the other group's items), like_threshold 4.
    """
    rng = np.random.default_rng(seed)
    segments = [s for s in range(len(SEGMENT_LABELS)) if SEGMENT_LABELS[s] not in set(empty_segments)]
    user_segment = np.array([segments[u % len(segments)] for u in range(n_users)], dtype=np.int64)
    users, items, values = [], [], []
    for u in range(n_users):
        female = SEGMENT_LABELS[user_segment[u]].startswith("female/")
        own = np.arange(0, 10) if female else np.arange(10, 20)
        liked = rng.choice(own, size=min(liked_per_user, own.size), replace=False)
        for i in liked:
            if rng.random() < noise:
                i = int(rng.integers(0, n_items))
            users.append(u)
            items.append(int(i))
            values.append(float(rng.integers(4, 6)))
        other = np.arange(10, 20) if female else np.arange(0, 10)
        for i in rng.choice(other, size=2, replace=False):
            users.append(u)
            items.append(int(i))
            values.append(float(rng.integers(1, 3)))
    n = len(users)
    return Interactions(
        user_ids=tuple(f"u{u}" for u in range(n_users)),
        item_ids=tuple(f"item{i}" for i in range(n_items)),
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        values=np.asarray(values, dtype=np.float32),
        times=np.arange(n, dtype=np.float64),
        user_segment=user_segment,
        like_threshold=4.0,
        source="synthetic:two-groups",
    )


def write_movielens(directory: Path, data: Interactions) -> Path:
    """Write interactions in the MovieLens-100K file format (u.data, u.user, u.item)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "u.user", "w", encoding="latin-1") as fh:
        for u, seg in enumerate(data.user_segment):
            gender, bracket = SEGMENT_LABELS[seg].split("/", 1)
            age = int(bracket_midpoint(bracket))
            fh.write(f"{u + 1}|{age}|{'F' if gender == 'female' else 'M'}|other|00000\n")
    with open(directory / "u.item", "w", encoding="latin-1") as fh:
        fh.writelines(
            f"{i + 1}|Item {i + 1} (1995)|01-Jan-1995||http://example.invalid/|0\n"
            for i, _ in enumerate(data.item_ids)
        )
    with open(directory / "u.data", "w", encoding="latin-1") as fh:
        for u, i, v, t in zip(data.users, data.items, data.values, data.times):
            fh.write(f"{u + 1}\t{i + 1}\t{int(v)}\t{int(t) + 880000000}\n")
    return directory


def write_ledger(directory: Path, *, flip_recent: bool, seed: int = 0) -> tuple[Path, Path]:
    """Sales ledger export (user,item,value,time) + users.csv; with ``flip_recent`` the last 30% of the
    sales follow the opposite taste (women buy the men's items and the other way round)."""
    data = two_group_interactions(n_users=150, seed=seed)
    liked = data.liked
    users, items = data.users[liked], data.items[liked]
    order = np.random.default_rng(seed).permutation(users.size)
    users, items = users[order], items[order]
    recent = np.arange(users.size) >= int(users.size * 0.7)
    if flip_recent:
        swap = recent & (items < 20)
        items = np.where(swap, (items + 10) % 20, items)
    lines = ["user,item,value,time"]
    lines += [f"u{u},item{i},1,{1_700_000_000 + t * 60}" for t, (u, i) in enumerate(zip(users, items))]
    (directory / "ledger.csv").write_text("\n".join(lines) + "\n")
    user_lines = ["user,gender,age"]
    for u, seg in enumerate(data.user_segment):
        gender, bracket = SEGMENT_LABELS[seg].split("/")
        user_lines.append(f"u{u},{gender},{int(bracket_midpoint(bracket))}")
    (directory / "users.csv").write_text("\n".join(user_lines) + "\n")
    return directory / "ledger.csv", directory / "users.csv"


def flipped_taste_model() -> FactorModel:
    """A 'current' model that already knows the recent (flipped) taste: women -> item10-19."""
    factors = np.zeros((30, 2))
    factors[10:20, 0] = 1.0
    factors[0:10, 1] = 1.0
    vectors = {label: ([1.0, 0.0] if label.startswith("female/") else [0.0, 1.0]) for label in SEGMENT_LABELS}
    return make_model(factors, segment_vectors=vectors, metadata={"method": "current"})


def write_admin_export(directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """The admin's export: user = the segment label (or "unknown"), value = quantity, users.csv user,segment."""
    rng = np.random.default_rng(seed)
    lines = ["user,item,value,time"]
    for t in range(600):
        label = SEGMENT_LABELS[int(rng.integers(0, len(SEGMENT_LABELS)))]
        base = 0 if label.startswith("female/") else 10
        item = base + int(rng.integers(0, 10)) if rng.random() > 0.1 else int(rng.integers(0, 30))
        user = label if rng.random() > 0.05 else "unknown"
        lines.append(f"{user},item{item},{int(rng.integers(1, 3))},{1_700_000_000 + 60 * t}")
    (directory / "interactions.csv").write_text("\n".join(lines) + "\n")
    (directory / "users.csv").write_text("user,segment\n" + "".join(f"{s},{s}\n" for s in SEGMENT_LABELS))
    return directory / "interactions.csv", directory / "users.csv"
