"""BlazeFace anchors, decoding and weighted NMS on synthetic tensors with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from device.inference import anchors as anc


def test_short_range_anchor_layout():
    a = anc.generate_anchors(anc.SHORT_RANGE)
    assert a.shape == (896, 2)
    # 16x16 map, 2 anchors per cell, then 8x8 map with 6 anchors per cell
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(a[511], [15.5 / 16, 15.5 / 16])
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8])
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_full_range_anchor_layout():
    a = anc.generate_anchors(anc.FULL_RANGE)
    assert a.shape == (2304, 2)  # 48x48, one anchor per cell
    assert np.allclose(a[1], [1.5 / 48, 0.5 / 48])
    assert np.allclose(a[48], [0.5 / 48, 1.5 / 48])


def test_decode_known_answer():
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float32)
    raw = np.zeros((2, 16), dtype=np.float32)
    raw[0, :4] = [12.8, -12.8, 64.0, 32.0]  # +0.1, -0.1 of the input; w 0.5, h 0.25
    raw[0, 4:6] = [-25.6, 0.0]  # first keypoint 0.2 left of the anchor
    out = anc.decode(raw, anchors, input_size=128)
    assert np.allclose(out[0, :4], [0.6 - 0.25, 0.4 - 0.125, 0.6 + 0.25, 0.4 + 0.125])
    assert np.allclose(out[0, 4:6], [0.3, 0.5])
    assert np.allclose(out[0, 6:8], [0.5, 0.5])
    assert np.allclose(out[1, :4], [0.25, 0.75, 0.25, 0.75])  # zero-size box on its anchor
    assert np.allclose(out[1, 4:].reshape(-1, 2), [0.25, 0.75])


def test_sigmoid_scores_clip_without_overflow():
    with np.errstate(over="raise"):
        s = anc.sigmoid_scores(np.array([-1e4, 0.0, 1e4]))
    assert np.allclose(s, [0.0, 0.5, 1.0], atol=1e-6)


def test_iou_known_values():
    box = np.array([0, 0, 2, 2], dtype=np.float32)
    boxes = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 6, 6], [0, 0, 0, 0]], dtype=np.float32)
    assert np.allclose(anc.iou(box, boxes), [1.0, 2 / 6, 0.0, 0.0])


def test_weighted_nms_merges_overlaps_and_keeps_distinct_faces():
    dets = np.array(
        [
            [0.0, 0.0, 1.0, 1.0] + [0.2, 0.2] * 6,
            [0.1, 0.0, 1.1, 1.0] + [0.4, 0.2] * 6,  # overlaps the first (IoU 0.82)
            [3.0, 3.0, 4.0, 4.0] + [3.5, 3.5] * 6,  # a second face
        ],
        dtype=np.float32,
    )
    scores = np.array([0.6, 0.9, 0.7], dtype=np.float32)
    out = anc.weighted_nms(dets, scores, iou_threshold=0.3)
    assert [round(s, 3) for _, s in out] == [0.9, 0.7]
    merged = out[0][0]
    w = np.array([0.9, 0.6]) / 1.5
    assert np.allclose(merged[:4], w[0] * dets[1, :4] + w[1] * dets[0, :4])
    assert np.isclose(merged[4], w[0] * 0.4 + w[1] * 0.2)
    assert np.allclose(out[1][0], dets[2])


def test_weighted_nms_threshold_separates_slight_overlap():
    dets = np.array([[0, 0, 1, 1] + [0] * 12, [0.8, 0, 1.8, 1] + [0] * 12], dtype=np.float32)
    out = anc.weighted_nms(dets, np.array([0.9, 0.8], dtype=np.float32), iou_threshold=0.3)
    assert len(out) == 2  # IoU 0.11 < 0.3


@pytest.mark.parametrize("n", [0, 1])
def test_weighted_nms_small_inputs(n):
    dets = np.zeros((n, 16), dtype=np.float32)
    dets[:, 2:4] = 1
    assert len(anc.weighted_nms(dets, np.ones(n, dtype=np.float32), 0.3)) == n
