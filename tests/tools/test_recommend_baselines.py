"""The evaluation's popularity baselines: what each counts."""

from __future__ import annotations

import numpy as np

from device.recommend.data import SEGMENT_LABELS, Interactions
from tools.recommender.evaluate import segment_most_rated, segment_popularity

WOMEN_25 = SEGMENT_LABELS.index("female/25-34")
MEN_25 = SEGMENT_LABELS.index("male/25-34")


def _log(rows: list[tuple[int, int, float]], user_segment: list[int]) -> Interactions:
    users, items, values = (np.array(c) for c in zip(*rows))
    return Interactions(
        user_ids=tuple(f"u{i}" for i in range(len(user_segment))),
        item_ids=("a", "b", "c"),
        users=users.astype(np.int64),
        items=items.astype(np.int64),
        values=values.astype(np.float32),
        times=np.arange(len(rows), dtype=np.float64),
        user_segment=np.array(user_segment, dtype=np.int64),
        like_threshold=4.0,
    )


def test_likes_and_ratings_give_different_leaders() -> None:
    # Two women rate "a" badly, one loves "b"; a man loves "c".
    data = _log([(0, 0, 2.0), (1, 0, 1.0), (0, 1, 5.0), (2, 2, 5.0)], [WOMEN_25, WOMEN_25, MEN_25])
    liked = segment_popularity(data)
    rated = segment_most_rated(data)
    assert np.argmax(liked[WOMEN_25]) == 1  # the only like
    assert np.argmax(rated[WOMEN_25]) == 0  # the most ratings, though both are dislikes
    assert np.argmax(rated[MEN_25]) == 2 and np.argmax(liked[MEN_25]) == 2


def test_an_empty_segment_falls_back_to_everyone() -> None:
    data = _log([(0, 0, 2.0), (1, 0, 1.0), (0, 1, 5.0), (2, 2, 5.0)], [WOMEN_25, WOMEN_25, MEN_25])
    empty = SEGMENT_LABELS.index("male/65+")
    assert np.argmax(segment_most_rated(data)[empty]) == 0  # 2 ratings of "a" overall
    assert segment_most_rated(data)[empty].max() < 1.0  # tie-break only, below one rating
