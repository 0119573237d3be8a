"""FaceSearch: far faces the whole-view detector misses are found by the tile sweep and then followed
(real BlazeFace models, real face photos; the inner detector is a double only where a test needs it to
miss or to report a misplaced box)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.inference import create_detector, detector_files
from device.inference.detector import FaceSearch
from smartshelf.core.types import Face, Frame
from tests.helpers import face_photos


def _photos(n: int) -> list[np.ndarray]:
    return face_photos(n, every=89)


def _view(photo: np.ndarray, side: int, x0: int, y0: int) -> Frame:
    """A 640x480 view with ``photo`` ``side`` px wide at (x0, y0): its face is about 0.55 x side."""
    view = np.full((480, 640, 3), 110, np.uint8)
    view[y0 : y0 + side, x0 : x0 + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return view


def _hit(faces: list[Face], x0: int, y0: int, side: int) -> bool:
    cx, cy = x0 + side / 2, y0 + side / 2
    return any(abs(f.box[0] + f.box[2] / 2 - cx) < side / 3 and abs(f.box[1] + f.box[3] / 2 - cy) < side / 3
               for f in faces)


class Blind:
    """An inner detector that finds nothing, or always the same (misplaced) boxes."""

    variant = "blind"

    def __init__(self, boxes: list[Face] | None = None) -> None:
        self.boxes = boxes or []

    def detect(self, frame: Frame) -> list[Face]:
        return list(self.boxes)

    def close(self) -> None:
        pass


def _search(inner: object | None = None) -> FaceSearch:
    if inner is None:
        found = create_detector("cascade", search=True)
        assert isinstance(found, FaceSearch)
        return found
    short = create_detector("short_range")
    short.fallback_pad = 0.0
    return FaceSearch(inner, short)


def test_the_sweep_tiles_cover_the_view_with_overlap() -> None:
    search = _search(Blind())
    try:
        tiles = search.tiles(640, 480)
        assert len(tiles) == 12 and all(t[2] == t[3] == 211 for t in tiles)
        covered = np.zeros((480, 640), bool)
        for x, y, w, h in tiles:
            covered[y : y + h, x : x + w] = True
        assert covered.all()
        # any 48 px square lies wholly inside some tile
        for x in range(0, 640 - 48, 8):
            for y in range(0, 480 - 48, 8):
                assert any(tx <= x and x + 48 <= tx + tw and ty <= y and y + 48 <= ty + th
                           for tx, ty, tw, th in tiles), (x, y)
        assert search.tiles(1280, 960)[0][2] == 422, "tiles scale with the view"
    finally:
        search.close()


def test_far_faces_the_cascade_misses_are_found_within_one_sweep() -> None:
    rng = np.random.default_rng(3)
    cascade = create_detector("cascade")
    search = _search()
    by_cascade = by_search = n = 0
    try:
        for photo in _photos(24):
            side = 44  # the face ~25 px wide: a shopper ~3 m from a 640x480 Pi camera
            x0, y0 = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
            view = _view(photo, side, x0, y0)
            n += 1
            by_cascade += _hit(cascade.detect(view), x0, y0, side)
            search.reset()
            frames = -(-len(search.tiles(640, 480)) // search.tiles_per_frame)  # two tiles a frame: 6
            by_search += any(_hit(search.detect(view), x0, y0, side) for _ in range(frames))
    finally:
        cascade.close()
        search.close()
    assert by_search >= n - 1, (by_search, n)
    assert by_search > by_cascade, (by_search, by_cascade)


def test_a_found_face_is_followed_while_the_detector_misses_it() -> None:
    photo = _photos(1)[0]
    search = _search(Blind())
    try:
        side, x0, y0 = 72, 420, 330  # in the last tiles of the sweep
        frames = 0
        while not _hit(search.detect(_view(photo, side, x0, y0)), x0, y0, side):
            frames += 1
            assert frames < 9, "the sweep reaches every tile within 9 frames"
        # the shopper steps sideways: the tile has moved on, the search looks around the face
        for step in range(1, 6):
            x = x0 - 6 * step
            assert _hit(search.detect(_view(photo, side, x, y0)), x, y0, side), step
        assert search.tracked >= 5
        assert search.followed
        # gone: followed for track_frames frames more, then forgotten
        empty = np.full((480, 640, 3), 110, np.uint8)
        for _ in range(search.track_frames):
            assert search.detect(empty) == []
        assert search.followed == []
    finally:
        search.close()


def test_a_misplaced_large_box_does_not_hide_the_far_face() -> None:
    photo = _photos(1)[0]
    side, x0, y0 = 72, 100, 150
    wrong = Face((x0 - 40, y0 - 45, 125, 125), 0.55, tuple((x0 + 10.0, y0 + 10.0) for _ in range(6)))
    search = _search(Blind([wrong]))
    try:
        view = _view(photo, side, x0, y0)
        seen = [search.detect(view) for _ in range(9)]
        assert all(f[0] is wrong or f[0] == wrong for f in seen), "largest first: the big box leads"
        assert any(_hit(faces, x0, y0, side) and len(faces) == 2 for faces in seen)
    finally:
        search.close()


def test_the_search_needs_the_short_range_file_and_checks_its_settings() -> None:
    assert detector_files("full_range", search=True) == (
        "face_detection_full_range.tflite", "face_detection_short_range.tflite")
    assert detector_files("cascade", search=True) == detector_files("cascade")
    short = create_detector("short_range")
    try:
        for kwargs, message in (({"track_frames": 0}, "track_frames"), ({"follow": 0}, "follow"),
                                ({"context": 1.0}, "context"), ({"tile_share": 2.0}, "tile_share"),
                                ({"tiles_per_frame": 0}, "tiles_per_frame")):
            with pytest.raises(ValueError, match=message):
                FaceSearch(Blind(), short, **kwargs)  # type: ignore[arg-type]
    finally:
        short.close()
