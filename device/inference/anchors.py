"""BlazeFace SSD anchors, box/keypoint decoding and weighted non-maximum suppression (pure numpy).

Anchor options are those published with the MediaPipe face detection graphs:

* short range, 128x128 input: 4 layers, strides (8, 16, 16, 16), min_scale 0.1484375, max_scale 0.75,
  aspect ratio 1.0 plus one interpolated anchor per layer, fixed anchor size -> 896 anchors;
* full range, 192x192 input: 1 layer, stride 4, interpolated_scale_aspect_ratio 0 (no extra anchor),
  fixed anchor size -> 2304 anchors.

Raw regressor rows are ``(dx, dy, w, h, kx0, ky0, ..., kx5, ky5)`` in input pixels relative to the
anchor centre; decoding divides by the input size and adds the anchor centre, giving coordinates
normalised to the (letterboxed) model input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class AnchorOptions:
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    num_keypoints: int = 6
    anchor_offset: float = 0.5


SHORT_RANGE = AnchorOptions(input_size=128, strides=(8, 16, 16, 16), interpolated_scale_aspect_ratio=1.0)
FULL_RANGE = AnchorOptions(input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0)


def generate_anchors(options: AnchorOptions) -> FloatArray:
    """Anchor centres ``(N, 2)`` as (x, y) in [0, 1]; every anchor has size 1 (fixed_anchor_size).

    Consecutive layers with the same stride share one feature map, as in MediaPipe's
    SsdAnchorsCalculator: the anchors of all those layers are laid out per cell.
    """
    centres: list[FloatArray] = []
    strides = options.strides
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 1  # aspect ratio 1.0
            if options.interpolated_scale_aspect_ratio > 0.0:
                per_cell += 1
            last += 1
        size = int(np.ceil(options.input_size / strides[layer]))
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        cx = (xs.reshape(-1) + options.anchor_offset) / size
        cy = (ys.reshape(-1) + options.anchor_offset) / size
        cell = np.stack([cx, cy], axis=1).astype(np.float32)
        centres.append(np.repeat(cell, per_cell, axis=0))
        layer = last
    return np.concatenate(centres, axis=0)


def decode(raw: FloatArray, anchors: FloatArray, input_size: int, num_keypoints: int = 6) -> FloatArray:
    """Decode raw regressors ``(N, 4 + 2K)`` into ``(N, 4 + 2K)`` normalised
    ``(xmin, ymin, xmax, ymax, kx0, ky0, ...)``."""
    raw = np.asarray(raw, dtype=np.float32).reshape(anchors.shape[0], -1)
    scale = np.float32(input_size)
    cx = raw[:, 0] / scale + anchors[:, 0]
    cy = raw[:, 1] / scale + anchors[:, 1]
    w = raw[:, 2] / scale
    h = raw[:, 3] / scale
    out = np.empty((raw.shape[0], 4 + 2 * num_keypoints), dtype=np.float32)
    out[:, 0] = cx - w / 2
    out[:, 1] = cy - h / 2
    out[:, 2] = cx + w / 2
    out[:, 3] = cy + h / 2
    kp = raw[:, 4 : 4 + 2 * num_keypoints].reshape(-1, num_keypoints, 2) / scale + anchors[:, None, :]
    out[:, 4:] = kp.reshape(-1, 2 * num_keypoints)
    return out


def sigmoid_scores(raw_scores: FloatArray, clip: float = 100.0) -> FloatArray:
    """Scores from raw logits, clipped like MediaPipe's score_clipping_thresh."""
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -clip, clip)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one ``(4,)`` box against ``(M, 4)`` boxes, all as (xmin, ymin, xmax, ymax)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)
    area_b = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(
    detections: FloatArray, scores: FloatArray, iou_threshold: float
) -> list[tuple[FloatArray, float]]:
    """MediaPipe-style weighted NMS.

    Repeatedly takes the best remaining detection, gathers every remaining detection overlapping it
    by more than ``iou_threshold`` (itself included), and returns their score-weighted mean
    (box and keypoints) with the best score. Output is in descending score order.
    """
    order = np.argsort(-scores, kind="stable")
    dets = detections[order]
    scs = scores[order]
    results: list[tuple[FloatArray, float]] = []
    while dets.shape[0] > 0:
        overlaps = iou(dets[0, :4], dets[:, :4])
        group = overlaps > iou_threshold
        group[0] = True
        weights = scs[group]
        merged = (dets[group] * weights[:, None]).sum(axis=0) / weights.sum()
        results.append((merged.astype(np.float32), float(scs[0])))
        dets = dets[~group]
        scs = scs[~group]
    return results
