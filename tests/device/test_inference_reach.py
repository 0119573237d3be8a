"""Distances from the camera's resolution and field of view (device.inference.reach)."""

from __future__ import annotations

import pytest

from device.inference.reach import (
    FIND_PX,
    PERSONALISE_CROP_PX,
    PERSONALISE_REFINED_PX,
    SEARCH_FIND_PX,
    camera_reach,
    distance_for,
    face_px_at,
    focal_px,
)
from smartshelf.core.config import CameraConfig


def test_pi_camera_v2_at_640_shows_a_face_80_px_wide_at_one_metre() -> None:
    assert focal_px(640, 62.2) == pytest.approx(530.5, abs=0.5)
    assert face_px_at(1.0, 640, 62.2) == pytest.approx(79.6, abs=0.5)
    assert face_px_at(2.0, 640, 62.2) == pytest.approx(39.8, abs=0.5)
    assert distance_for(face_px_at(1.7, 1280, 66), 1280, 66) == pytest.approx(1.7)
    with pytest.raises(ValueError, match="hfov_deg"):
        focal_px(640, 0)


def test_reach_grows_with_the_detector_and_the_refined_full_stream() -> None:
    one = CameraConfig(full_width=0, full_height=0)
    two = CameraConfig(full_width=1280, full_height=960)
    unrefined = CameraConfig(full_width=1280, full_height=960, refine=False)
    short = camera_reach(one, "short_range", 40)
    cascade = camera_reach(one, "cascade", 40)
    both = camera_reach(two, "cascade", 40)
    assert cascade.found_m > short.found_m
    assert both.found_m == pytest.approx(cascade.found_m), "the full stream does not change detection"
    assert both.personalised_m > cascade.personalised_m
    assert both.personalised_m <= both.found_m
    # one stream: the face needs PERSONALISE_CROP_PX in the view; refined two streams: the detector is the limit
    assert face_px_at(cascade.personalised_m, 640, 62.2) == pytest.approx(PERSONALISE_CROP_PX)
    assert both.personalised_m == pytest.approx(both.found_m)
    assert PERSONALISE_REFINED_PX / 2 < FIND_PX["cascade"]
    # scaled keypoints gain nothing: without refinement two streams personalise no further than one
    assert camera_reach(unrefined, "cascade", 40).personalised_m == pytest.approx(cascade.personalised_m)
    # visit.min_face_px bounds the found distance too
    assert camera_reach(one, "cascade", 120).found_m == pytest.approx(distance_for(120, 640, 62.2))
    with pytest.raises(ValueError, match="unknown detector"):
        camera_reach(one, "yolo", 40)


def test_the_defaults_cover_the_default_working_distance() -> None:
    from smartshelf.core.config import Config

    cfg = Config()
    reach = camera_reach(cfg.camera, cfg.models.detector, cfg.visit.min_face_px, search=cfg.models.search)
    assert reach.personalised_m >= cfg.shelf.working_distance_m
    assert "refined and cropped from 1280 px wide frames" in reach.describe()


def test_the_search_finds_faces_to_two_metres_and_is_advised_where_it_is_off() -> None:
    two = CameraConfig(full_width=1280, full_height=960)
    without = camera_reach(two, "cascade", 40)
    searching = camera_reach(two, "cascade", 40, search=True)
    assert SEARCH_FIND_PX < FIND_PX["cascade"]
    # visit.min_face_px (40 px) is the limit now: 2.0 m with a 640x480 Pi camera v2
    assert searching.found_m == pytest.approx(distance_for(40, 640, 62.2))
    assert searching.found_m > without.found_m
    assert searching.personalised_m == pytest.approx(searching.found_m)
    assert "cascade+search detector" in searching.describe()
    assert "models.search = true" in without.advice(2.0)
    assert "models.search" not in searching.advice(2.0)
