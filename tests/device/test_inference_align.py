"""align_face on synthetic frames with known keypoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.inference.align import align_face, alignment_matrix
from smartshelf.core.errors import ImageError
from smartshelf.core.types import Face


def _frame_with_eyes(angle_deg: float, centre=(150.0, 110.0), half=30.0):
    """A grey frame with a red dot on each 'eye', rotated by angle around centre."""
    import cv2

    frame = np.full((240, 320, 3), 128, dtype=np.uint8)
    a = math.radians(angle_deg)
    r = (centre[0] - half * math.cos(a), centre[1] - half * math.sin(a))
    l_ = (centre[0] + half * math.cos(a), centre[1] + half * math.sin(a))
    for x, y in (r, l_):
        cv2.circle(frame, (round(x), round(y)), 4, (255, 0, 0), -1)
    # the face centre lies 10 px below the eye midpoint along the (rolled) face axis
    fx, fy = centre[0] - 10 * math.sin(a), centre[1] + 10 * math.cos(a)
    box = (round(fx - 70), round(fy - 70), 140, 140)
    face = Face(box=box, score=0.9, keypoints=(r, l_, centre, centre, centre, centre))
    return frame, face


def _red_blobs(img):
    mask = (img[..., 0] > 180) & (img[..., 1] < 100)
    ys, xs = np.nonzero(mask)
    left = xs < img.shape[1] / 2
    return (xs[left].mean(), ys[left].mean()), (xs[~left].mean(), ys[~left].mean())


@pytest.mark.parametrize("angle", [-25.0, 0.0, 17.0, 35.0])
def test_eyes_are_level_after_alignment(angle):
    frame, face = _frame_with_eyes(angle)
    crop = align_face(frame, face, 96)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    (rx, ry), (lx, ly) = _red_blobs(crop)
    assert abs(ry - ly) < 1.5
    assert rx < lx
    # the eye midpoint sits on the vertical centre line of the crop
    assert abs((rx + lx) / 2 - 48) < 2.0


def test_crop_scale_follows_the_keypoints():
    # the same 'face' at two sizes (and a clipped box for the small one) gives the same crop geometry
    small_frame, small_face = _frame_with_eyes(0.0, half=15.0)
    small_face = Face(box=(100, 90, 40, 30), score=0.9, keypoints=small_face.keypoints)
    big_frame, big_face = _frame_with_eyes(0.0, half=30.0)
    (srx, sry), (slx, _) = _red_blobs(align_face(small_frame, small_face, 96))
    (brx, bry), (blx, _) = _red_blobs(align_face(big_frame, big_face, 96))
    assert abs((slx - srx) - (blx - brx)) < 2.0
    assert abs(sry - bry) < 2.0


def test_box_is_used_without_keypoints():
    _, face = _frame_with_eyes(0.0)
    m = alignment_matrix(Face(box=face.box, score=0.9), 64)
    x, y, _ = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2, 1
    assert np.allclose(m @ np.array([x, y, 1.0]), [32, 32])


def test_matrix_maps_box_centre_to_crop_centre():
    face = Face(box=(40, 20, 100, 120), score=1.0)
    m = alignment_matrix(face, 64)
    x, y = m @ np.array([90.0, 80.0, 1.0])
    assert abs(x - 32) < 1e-6 and abs(y - 32) < 1e-6


def test_face_without_keypoints_and_face_outside_frame():
    frame = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    crop = align_face(frame, Face(box=(90, 70, 60, 60), score=0.5), 32)
    assert crop.shape == (32, 32, 3)


def test_bad_inputs():
    face = Face(box=(0, 0, 10, 10), score=1.0)
    with pytest.raises(ImageError):
        align_face(np.zeros((10, 10), np.uint8), face, 32)
    with pytest.raises(ImageError):
        align_face(np.zeros((10, 10, 3), np.float32), face, 32)
    with pytest.raises(ValueError):
        align_face(np.zeros((10, 10, 3), np.uint8), face, 4)
