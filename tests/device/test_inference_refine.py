"""LandmarkRefiner: a far face's keypoints found again on the full-resolution frame are closer to the truth
than the detection view's keypoints scaled up (real BlazeFace models, real face photos)."""

from __future__ import annotations

import cv2
import numpy as np

from device.inference import create_detector, create_refiner
from smartshelf.core.types import Face
from tests.helpers import face_photos


def _photos(n: int) -> list[np.ndarray]:
    return face_photos(n, every=97)


def test_refined_keypoints_are_closer_than_scaled_ones() -> None:
    rng = np.random.default_rng(0)
    scaled_err, refined_err = [], []
    with create_detector("short_range") as native, create_detector("full_range") as far:
        refiner = create_refiner()
        try:
            for photo in _photos(12):
                truth = native.detect(photo)
                if not truth:
                    continue
                # the photo 84 px wide in a 1280x960 frame: its face ~42 px in the 640x480 view
                side = 84
                s = side / photo.shape[1]
                x0, y0 = int(rng.integers(100, 1000)), int(rng.integers(100, 700))
                full = np.full((960, 1280, 3), 120, np.uint8)
                full[y0 : y0 + side, x0 : x0 + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
                true_kp = np.array([(x0 + px * s, y0 + py * s) for px, py in truth[0].keypoints[:4]])
                view = cv2.resize(full, (640, 480), interpolation=cv2.INTER_AREA)
                found = far.detect(view)
                if not found:
                    continue
                scaled = found[0].scaled(2.0)
                refined = refiner.refine(full, scaled)
                assert isinstance(refined, Face)
                scaled_err.append(np.abs(np.array(scaled.keypoints[:4]) - true_kp).mean())
                refined_err.append(np.abs(np.array(refined.keypoints[:4]) - true_kp).mean())
        finally:
            refiner.close()
    assert len(scaled_err) >= 6, "the far faces were found"
    assert np.mean(refined_err) < 0.7 * np.mean(scaled_err), (np.mean(refined_err), np.mean(scaled_err))


def test_refine_says_none_when_the_full_frame_shows_no_face_there() -> None:
    """A view's detection the full frame does not confirm was not a face: the controller drops it."""
    refiner = create_refiner()
    try:
        blank = np.full((960, 1280, 3), 128, np.uint8)
        face = Face((600, 400, 80, 80), 0.7, ((620.0, 420.0),))
        assert refiner.refine(blank, face) is None
        edge = Face((1276, 956, 4, 4), 0.7)
        assert refiner.refine(blank, edge) is None
    finally:
        refiner.close()
        refiner.close()
