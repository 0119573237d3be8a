"""Face alignment shared by training and the device, so both see the same pixels.

The crop is rotated so that the eyes are level, centred halfway between the eye midpoint and the
mouth, and scaled from the larger of the eye distance and the eye-to-mouth distance (each shrinks
when the head turns or nods). Without keypoints, the box centre and size are used. A square of ``face_scale * (1 + 2 * margin)`` pixels is resampled to
``size`` x ``size`` RGB uint8; pixels outside the frame replicate the border.
"""

from __future__ import annotations

import math

import numpy as np

from device.inference.detector import check_frame
from smartshelf.core.types import Face, Frame

#: Face size (BlazeFace box side) ~= EYE_TO_FACE x eye distance ~= MOUTH_TO_FACE x eye-to-mouth
#: distance for a frontal face (medians over the UTKFace validation split, faces not clipped).
EYE_TO_FACE = 2.4
MOUTH_TO_FACE = 2.23
DEFAULT_MARGIN = 0.2


def alignment_matrix(face: Face, size: int, *, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """2x3 affine matrix mapping frame pixels to the ``size`` x ``size`` aligned crop."""
    if size < 8:
        raise ValueError(f"crop size must be >= 8 pixels, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x, y, w, h = face.box
    box_side = (w + h) / 2.0
    cx, cy = x + w / 2.0, y + h / 2.0
    angle = 0.0
    scale_ref = box_side
    if len(face.keypoints) >= 4:
        # Keypoints, not the box, set centre and scale: the box is clipped at the frame edge, the
        # keypoints are not, so a face filling a 200x200 photo and the same face in a 640x480 frame
        # give the same crop.
        (rx, ry), (lx, ly), _, (mx, my) = face.keypoints[:4]
        dx, dy = lx - rx, ly - ry
        eye_dist = math.hypot(dx, dy)
        ex, ey = (rx + lx) / 2.0, (ry + ly) / 2.0
        eye_mouth = math.hypot(mx - ex, my - ey)
        if eye_dist > 1e-6:
            angle = math.atan2(dy, dx)
        if eye_dist > 1e-6 or eye_mouth > 1e-6:
            # max(): turning the head shortens the eye distance, nodding the eye-mouth distance
            key_scale = max(EYE_TO_FACE * eye_dist, MOUTH_TO_FACE * eye_mouth)
            scale_ref = min(max(key_scale, 0.5 * box_side), 2.0 * box_side)
            cx, cy = (ex + mx) / 2.0, (ey + my) / 2.0
    side = max(scale_ref * (1.0 + 2.0 * margin), 1.0)
    s = size / side
    cos, sin = math.cos(-angle) * s, math.sin(-angle) * s
    # rotate by -angle about (cx, cy), scale by s, then move (cx, cy) to the crop centre
    matrix = np.array(
        [
            [cos, -sin, size / 2.0 - (cos * cx - sin * cy)],
            [sin, cos, size / 2.0 - (sin * cx + cos * cy)],
        ],
        dtype=np.float64,
    )
    return matrix


def align_face(frame: Frame, face: Face, size: int, *, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The aligned ``size`` x ``size`` x 3 uint8 RGB crop of ``face`` in ``frame``."""
    import cv2

    frame = check_frame(frame)
    matrix = alignment_matrix(face, size, margin=margin)
    # Warp at up to 4x the target size, then area-average down: a plain bilinear warp from a large
    # face to a small crop aliases (and would differ between camera resolutions).
    factor = int(min(4, max(1, np.floor(1.0 / max(float(np.hypot(*matrix[0, :2])), 1e-6)))))
    big = size * factor
    crop = cv2.warpAffine(
        frame,
        matrix * np.array([[factor], [factor]], dtype=np.float64),
        (big, big),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if factor > 1:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop, dtype=np.uint8)
