"""Judgement where shoppers really stand: per-frame range table and visit-level evaluation on approach clips.

    python -m tools.visit_eval range --split test      # detection and accuracy by face size, crop from view vs full
    python -m tools.visit_eval clips --split test      # approach clips through the real controller
    python -m tools.visit_eval tune                    # gate/aggregator grid on VALIDATION clips only
    python -m tools.visit_eval sweep                   # the search's tile sweeps on VALIDATION faces only

Frames come from :mod:`tools.vision_clips` (faces of one split, made in memory, never written). The
``clips`` run runs every clip once through the real detectors and the int8 age/gender model (the
device path: letterbox, BlazeFace, alignment, flip-average) and keeps, per frame, the faces found and
the estimate of the largest one (cropped from the view and from the full frame). The visit logic is
then the real :class:`~device.controller.ShelfController` (fake clock, demo store and factor file)
fed those per-frame results, so every variant (detector, crop source, gate settings) and the two
baselines (5-frame majority vote, single best frame) are judged on the same model outputs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from smartshelf.core.config import Config, VisitConfig
from smartshelf.core.types import Capture, Demographic, Face, Frame, bracket_index

logger = logging.getLogger(__name__)

SIZES = (32, 40, 48, 60, 80, 100)
DETECTORS = ("short_range", "full_range", "cascade", "full_range_tiles")
#: The cascade with FaceSearch (device option ``models.search``): judged on a standing shopper, within a sweep.
SEARCH = "cascade+search"
SWEEP_FRAMES = 9
#: Detectors the clips are run through.
CLIP_DETECTORS = ("short_range", "cascade", SEARCH)
#: Faces per frame and detector refined in ``clips`` (the controller checks at most CONFIRM_AT_MOST of
#: those at least ``visit.min_face_px`` wide; a frame with more small faces before them is rare).
CHECKED = 4
#: Bumped when what the clip cache holds changes.
CACHE_FORMAT = 3


class TiledDetector:
    """Full range on 2x2 overlapping tiles of the view (each 62.5% of its width and height): a face
    gets 1.6x the model-input pixels it has when the whole view is letterboxed, for four inferences.
    Measured by ``range`` only (not a device option: on a Pi it would cost four full-range runs on
    every frame without a face)."""

    def __init__(self, full: Any, grid: int = 2, overlap: float = 0.25) -> None:
        self.full, self.grid, self.overlap = full, grid, overlap

    def detect(self, view: Frame) -> list[Face]:
        from device.inference.detector import detect_in

        h, w = view.shape[:2]
        tw, th = int(w / self.grid * (1 + self.overlap)), int(h / self.grid * (1 + self.overlap))
        found: list[Face] = []
        for gy in range(self.grid):
            for gx in range(self.grid):
                x0 = (w - tw) * gx // max(1, self.grid - 1)
                y0 = (h - th) * gy // max(1, self.grid - 1)
                found += detect_in(self.full, view, (x0, y0, tw, th))
        return sorted(found, key=lambda f: f.box[2] * f.box[3], reverse=True)

    def close(self) -> None:
        self.full.close()


def face_at(faces: list[Face], centre: tuple[float, float], face_px: float) -> Face | None:
    """The detected face whose box centre lies within half a face width of the true centre."""
    for f in faces:
        x, y, w, h = f.box
        if abs(x + w / 2 - centre[0]) < face_px / 2 and abs(y + h / 2 - centre[1]) < face_px / 2:
            return f
    return None


def _pct(values: Iterable[bool]) -> float:
    v = list(values)
    return 100.0 * sum(v) / len(v) if v else float("nan")


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


# ------------------------------------------------------------------------------------ range
def run_range(split: str, n_faces: int, seed: int, models_dir: Path | None = None) -> dict[str, Any]:
    """Detection rate per detector and accuracy with the crop from the view vs the full frame, by face size."""
    from device.controller import first_confirmed
    from device.inference import create_age_gender, create_detector, create_refiner
    from device.inference.detector import FaceSearch
    from tools.vision_clips import VIEW_SIZE, background, face_frame, load_faces

    faces = load_faces(split, limit=n_faces, seed=seed)
    rng = np.random.default_rng(seed + 1)
    detectors: dict[str, Any] = {v: create_detector(v, num_threads=2) for v in DETECTORS if v != "full_range_tiles"}
    detectors["full_range_tiles"] = TiledDetector(create_detector("full_range", num_threads=2))
    search = create_detector("cascade", num_threads=2, search=True)
    assert isinstance(search, FaceSearch)
    model = create_age_gender(num_threads=2, models_dir=models_dir)
    refiner = create_refiner(num_threads=2)
    rows = []
    timed = (*DETECTORS, SEARCH)
    timing: dict[str, list[float]] = {v: [] for v in timed}
    empty_timing: dict[str, list[float]] = {v: [] for v in timed}
    false_pos: dict[str, list[bool]] = {v: [] for v in timed}
    #: empty frames where a face survives the full frame's check (the controller's, two streams)
    false_confirmed: dict[str, list[bool]] = {v: [] for v in timed}
    empty_scenes: list[bool] = []
    confirmed_scenes: list[bool] = []

    def confirms(full: np.ndarray, got: list[Face]) -> bool:
        scale = full.shape[1] / VIEW_SIZE[0]
        return first_confirmed(got, lambda f: refiner.refine(full, f.scaled(scale))) is not None

    try:
        for px in SIZES:
            found: dict[str, list[bool]] = {v: [] for v in DETECTORS}
            swept: list[bool] = []
            kept: list[bool] = []
            confirmed: list[bool] = []
            per: dict[str, list[tuple[bool, float, bool]]] = {"view": [], "full": [], "refined": []}
            for face in faces:
                capture, centre = face_frame(face, px, rng)
                hit: Face | None = None
                for v, det in detectors.items():
                    t = time.perf_counter()
                    got = det.detect(capture.view)
                    timing[v].append((time.perf_counter() - t) * 1000)
                    f = face_at(got, centre, px)
                    found[v].append(f is not None)
                    if v == "cascade":
                        hit = f
                # a shopper standing still: the same frame until the search has swept the view once
                search.reset()
                got_at = None
                for k in range(SWEEP_FRAMES):
                    t = time.perf_counter()
                    got = search.detect(capture.view)
                    timing[SEARCH].append((time.perf_counter() - t) * 1000)
                    if face_at(got, centre, px) is not None:
                        got_at = k
                        break
                swept.append(got_at is not None)
                if got_at is not None:  # then held: the next frames, cascade or around the last face
                    kept += [face_at(search.detect(capture.view), centre, px) is not None for _ in range(3)]
                if hit is None:
                    continue
                assert capture.full is not None
                refined = refiner.refine(capture.full, hit.scaled(capture.scale))
                confirmed.append(refined is not None)
                if refined is None:  # the shelf drops it; the view's and scaled crops are still judged
                    refined = hit.scaled(capture.scale)
                for source, frame, box in (
                    ("view", capture.view, hit),
                    ("full", capture.full, hit.scaled(capture.scale)),
                    ("refined", capture.full, refined),
                ):
                    est = model.estimate(frame, box)
                    per[source].append((face.age >= 13, abs(est.age - face.age), est.gender.value == ("female" if face.female else "male")))
            row: dict[str, Any] = {"face_px": px, "faces": len(faces)}
            for v in DETECTORS:
                row[f"found_{v}"] = _pct(found[v])
            row["found_search_sweep"] = _pct(swept)
            row["kept_search"] = _pct(kept)
            row["confirmed_cascade"] = _pct(confirmed)
            for source in ("view", "full", "refined"):
                got = per[source]
                row[f"gender_{source}"] = _pct(ok for adult, _, ok in got if adult)
                row[f"age_mae_{source}"] = float(np.mean([e for _, e, _ in got])) if got else float("nan")
            rows.append(row)
        blank = np.random.default_rng(seed + 2)
        import cv2

        for _ in range(100):
            full = background(blank)
            view = cv2.resize(full, VIEW_SIZE, interpolation=cv2.INTER_AREA)
            for v, det in detectors.items():
                t = time.perf_counter()
                got = det.detect(view)
                empty_timing[v].append((time.perf_counter() - t) * 1000)
                false_pos[v].append(bool(got))
                false_confirmed[v].append(confirms(full, got))
            search.reset()
            scene, kept_scene = [], []
            for _ in range(SWEEP_FRAMES):
                t = time.perf_counter()
                got = search.detect(view)
                empty_timing[SEARCH].append((time.perf_counter() - t) * 1000)
                false_pos[SEARCH].append(bool(got))
                false_confirmed[SEARCH].append(confirms(full, got))
                scene.append(bool(got))
                kept_scene.append(false_confirmed[SEARCH][-1])
            empty_scenes.append(any(scene))
            confirmed_scenes.append(any(kept_scene))
    finally:
        for det in detectors.values():
            det.close()
        search.close()
        model.close()
        refiner.close()
    cost = {
        v: {"median_ms_with_face": statistics.median(timing[v]), "p95_ms_with_face": _p95(timing[v]),
            "median_ms_empty": statistics.median(empty_timing[v]), "p95_ms_empty": _p95(empty_timing[v]),
            "false_positive_pct": _pct(false_pos[v]), "false_confirmed_pct": _pct(false_confirmed[v])}
        for v in timed
    }
    cost[SEARCH]["false_scene_pct"] = _pct(empty_scenes)
    cost[SEARCH]["false_confirmed_scene_pct"] = _pct(confirmed_scenes)
    return {"split": split, "rows": rows, "detector_cost": cost}


def range_table(result: dict[str, Any]) -> str:
    lines = [
        (f"Faces of the {result['split']} split ({result['rows'][0]['faces']} photos) pasted into 1280x960 frames "
        "(lighting, colour cast, noise); detection on the 640x480 downscaled view."),
        "",
        ("| face width in the 640x480 view | found: short range | full range | cascade | full range on 2x2 tiles "
         f"| cascade + search, within {SWEEP_FRAMES} frames | then held | cascade's faces confirmed on 1280x960 "
        "| gender 13+, crop from view | from 1280x960, keypoints scaled | refined | age MAE, crop from view "
        "| keypoints scaled | refined |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['face_px']} px | {r['found_short_range']:.1f}% | {r['found_full_range']:.1f}% | "
            f"{r['found_cascade']:.1f}% | {r['found_full_range_tiles']:.1f}% | {r['found_search_sweep']:.1f}% | "
            f"{r['kept_search']:.1f}% | {r['confirmed_cascade']:.1f}% | {r['gender_view']:.1f}% | {r['gender_full']:.1f}% | "
            f"{r['gender_refined']:.1f}% | {r['age_mae_view']:.2f} y | {r['age_mae_full']:.2f} y | "
            f"{r['age_mae_refined']:.2f} y |"
        )
    lines += [
        "",
        ("| detector | ms per 640x480 frame with a face (median / p95) | empty frame (median / p95) "
        "| empty frames with a (false) face | with one the 1280x960 frame confirms |"),
        "|---|---|---|---|---|",
    ]

    def scenes(c: dict[str, float], key: str) -> str:
        return f" ({c[key]:.0f}% of empty scenes within {SWEEP_FRAMES} frames)" if key in c else ""

    for v, c in result["detector_cost"].items():
        lines.append(
            f"| {v} | {c['median_ms_with_face']:.2f} / {c['p95_ms_with_face']:.2f} | "
            f"{c['median_ms_empty']:.2f} / {c['p95_ms_empty']:.2f} | {c['false_positive_pct']:.0f}%"
            f"{scenes(c, 'false_scene_pct')} | {c['false_confirmed_pct']:.0f}%{scenes(c, 'false_confirmed_scene_pct')} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ sweep
#: FaceSearch sweeps compared by ``sweep``: (tile_share, tiles_per_frame); the first is the first version.
SWEEPS: tuple[tuple[float, int], ...] = ((0.4, 1), (0.4, 2), (0.33, 2), (0.3, 2))


def run_sweep(n_faces: int, seed: int, sizes: tuple[int, ...] = (40, 48), within: tuple[int, ...] = (5, 9),
              sweeps: tuple[tuple[float, int], ...] = SWEEPS) -> list[dict[str, Any]]:
    """How soon the cascade with each FaceSearch sweep finds a standing shopper's face, on VALIDATION
    faces (the frames of the range table): the share found within each of ``within`` frames."""
    from device.inference import create_detector
    from device.inference.detector import FaceSearch
    from tools.vision_clips import VIEW_SIZE, face_frame, load_faces

    faces = load_faces("val", limit=n_faces, seed=seed)
    searches = []
    for share, per_frame in sweeps:
        shipped = create_detector("cascade", num_threads=2, search=True)  # its models, set up as on the shelf
        assert isinstance(shipped, FaceSearch)
        searches.append(FaceSearch(shipped.inner, shipped.short, tile_share=share, tiles_per_frame=per_frame))
    rows = []
    try:
        for px in sizes:
            rng = np.random.default_rng(seed + 1)
            first: list[list[int | None]] = [[] for _ in searches]
            for face in faces:
                capture, centre = face_frame(face, px, rng)
                for i, search in enumerate(searches):
                    search.reset()
                    at = next((k for k in range(max(within))
                               if face_at(search.detect(capture.view), centre, px) is not None), None)
                    first[i].append(at)
            for (share, per_frame), search, ats in zip(sweeps, searches, first, strict=True):
                rows.append({"face_px": px, "tile_share": share, "tiles_per_frame": per_frame,
                             "tiles": len(search.tiles(*VIEW_SIZE)), "faces": len(ats),
                             **{f"within_{m}": _pct(a is not None and a < m for a in ats) for m in within}})
    finally:
        for search in searches:
            search.close()
    return rows


def sweep_table(rows: list[dict[str, Any]]) -> str:
    from tools.vision_clips import VIEW_SIZE

    within = sorted(int(k.split("_")[1]) for k in rows[0] if k.startswith("within_"))
    sizes = sorted({r["face_px"] for r in rows})
    head = " | ".join(f"{px} px: within {m} frames" for px in sizes for m in within)
    lines = [f"Validation faces ({rows[0]['faces']}) standing still, the cascade with the search:", "",
             f"| sweep | {head} |", "|---|" + "---|" * (len(sizes) * len(within))]
    for share, per_frame in dict.fromkeys((r["tile_share"], r["tiles_per_frame"]) for r in rows):
        mine = {r["face_px"]: r for r in rows if (r["tile_share"], r["tiles_per_frame"]) == (share, per_frame)}
        any_row = next(iter(mine.values()))
        side = round(share * VIEW_SIZE[0])
        cells = " | ".join(f"{mine[px][f'within_{m}']:.1f}%" for px in sizes for m in within)
        lines.append(f"| {any_row['tiles']} tiles of {side} px, {per_frame} a frame | {cells} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ clips
@dataclass
class FrameResult:
    """What the models said on one clip frame (kept in memory for the visit variants)."""

    faces: dict[str, list[Face]]  # detector variant -> faces (view pixels), largest first
    #: (detector, crop) -> the estimate of each of the detector's first CHECKED faces; for the refined
    #: crop None where the full frame did not confirm the face (the controller's refiner, face by face)
    estimates: dict[tuple[str, str], list[Demographic | None]] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)

    def judged(self, detector: str, crop: str, min_face_px: int) -> tuple[Face, Demographic] | None:
        """The face the shelf judges this frame by, and its estimate: the largest of at least ``min_face_px``;
        for the refined crop, the one the controller's rule picks among those the full frame confirmed
        (:func:`device.controller.first_confirmed`)."""
        from device.controller import first_confirmed

        index = {id(f): i for i, f in enumerate(self.faces[detector])}
        faces = [f for f in self.faces[detector] if f.box[2] >= min_face_px]

        def estimate(face: Face) -> Demographic | None:
            return self.estimate_of(detector, crop, index[id(face)])

        if crop != "refined":
            found = (faces[0], faces[0]) if faces else None
        else:
            found = first_confirmed(faces, lambda f: f if estimate(f) is not None else None)
        est = None if found is None else estimate(found[0])
        return None if found is None or est is None else (found[0], est)

    def estimate_of(self, detector: str, crop: str, index: int) -> Demographic | None:
        """The estimate of face ``index`` of ``detector`` from ``crop``; None: not confirmed (refined crop)."""
        known = self.estimates[(detector, crop)]
        if index >= len(known):
            raise IndexError(f"face {index} of {detector} was not estimated (only the first {len(known)} are)")
        return known[index]


@dataclass
class ClipRun:
    clip_index: int
    age: int
    female: int
    stop_frame: int
    leave_frame: int
    passer: bool
    frames: list[FrameResult]


def precompute(clips: list[Any], detector_variants: tuple[str, ...] = CLIP_DETECTORS,
               models_dir: Path | None = None) -> list[ClipRun]:
    """Run every clip frame through the real detectors and the int8 model (largest face of each detector)."""
    from device.inference import create_age_gender, create_detector, create_refiner

    detectors = {v: create_detector(v.removesuffix("+search"), num_threads=2, search=v.endswith("+search"))
                 for v in detector_variants}
    model = create_age_gender(num_threads=2, models_dir=models_dir)
    refiner = create_refiner(num_threads=2)
    runs = []
    try:
        for n, clip in enumerate(clips):
            frames = []
            for det in detectors.values():
                if hasattr(det, "reset"):
                    det.reset()  # a new clip: nobody followed
            for capture in clip.frames():
                faces: dict[str, list[Face]] = {}
                ms: dict[str, float] = {}
                for v, det in detectors.items():
                    t = time.perf_counter()
                    faces[v] = det.detect(capture.view)
                    ms[f"detect_{v}"] = (time.perf_counter() - t) * 1000
                result = FrameResult(faces, {(v, crop): [] for v in faces for crop in CROPS}, ms)
                done: dict[tuple[int, int, int, int], dict[str, Demographic | None]] = {}
                for v, found in faces.items():
                    for face in found[:CHECKED]:
                        if face.box not in done:
                            t = time.perf_counter()
                            view_est = model.estimate(capture.view, face)
                            ms["classify_view"] = (time.perf_counter() - t) * 1000
                            t = time.perf_counter()
                            refined = refiner.refine(capture.full, face.scaled(capture.scale))
                            refined_est = None if refined is None else model.estimate(capture.full, refined)
                            ms["classify_refined"] = (time.perf_counter() - t) * 1000
                            done[face.box] = {
                                "view": view_est,
                                "full": model.estimate(capture.full, face.scaled(capture.scale)),
                                "refined": refined_est,
                            }
                        for crop, est in done[face.box].items():
                            result.estimates[(v, crop)].append(est)
                frames.append(result)
            runs.append(ClipRun(clip.index, clip.shopper.age, clip.shopper.female, clip.stop_frame,
                                clip.leave_frame, clip.passer is not None, frames))
            if (n + 1) % 20 == 0:
                logger.info("clips: %d/%d", n + 1, len(clips))
    finally:
        for det in detectors.values():
            det.close()
        model.close()
        refiner.close()
    return runs


class _Replayed:
    """Camera, detector, refiner and age/gender double that hands the controller one clip's precomputed
    results. For the refined crop the camera gives two streams (of one size), so the controller asks the
    refiner face by face, as on the shelf."""

    FRAME = np.zeros((4, 4, 3), np.uint8)

    def __init__(self, run: ClipRun, detector: str, crop: str) -> None:
        self.run, self.detector, self.crop = run, detector, crop
        self.index = -1

    # camera
    def open(self) -> None:
        pass

    def read(self) -> Frame:
        self.index += 1
        if self.index >= len(self.run.frames):
            from smartshelf.core.errors import CameraError

            raise CameraError("end of clip")
        return Capture(self.FRAME, self.FRAME) if self.crop == "refined" else self.FRAME

    # detector
    def detect(self, frame: Frame) -> list[Face]:
        return list(self.run.frames[self.index].faces[self.detector])

    def _index(self, face: Face) -> int:
        return next(i for i, f in enumerate(self.run.frames[self.index].faces[self.detector]) if f is face)

    # refiner: confirmed or not, as precomputed (the face itself stands for its refined copy)
    def refine(self, full: Frame, face: Face) -> Face | None:
        est = self.run.frames[self.index].estimate_of(self.detector, "refined", self._index(face))
        return None if est is None else face

    # age/gender: the face the controller judges, as precomputed
    def estimate(self, frame: Frame, face: Face) -> Demographic:
        est = self.run.frames[self.index].estimate_of(self.detector, self.crop, self._index(face))
        assert est is not None
        return est

    def close(self) -> None:
        pass


@dataclass
class VisitOutcome:
    age: int
    female: int
    personalised: bool
    gender_ok: bool | None
    bracket_off: int | None  # |estimated - true| bracket index
    time_to_decision_s: float | None
    decisions: int
    passer: bool


def _store(tmp: Path) -> Config:
    from device.demo.store import prepare_demo

    return prepare_demo(tmp)


def run_controller(runs: list[ClipRun], base: Config, visit: VisitConfig, detector: str, crop: str) -> list[VisitOutcome]:
    """Each clip through the real ShelfController (fake clock at 10 fps); the decision in effect at the
    end of the stop is what the shopper got."""
    from device.controller import ShelfController
    from device.display.leds import NullIndicator
    from device.display.screen import NullScreen
    from device.inventory import STORE_FILE, StoreView
    from device.sensors.camera import ReconnectingCamera
    from device.sensors.presence import AlwaysPresent
    from device.shelf import FactorRankers
    from tools.vision_clips import FPS

    config = base.replace(visit=visit)
    store = StoreView(config.data_dir / STORE_FILE)
    rankers = FactorRankers(config.factors_path)
    outcomes = []
    for run in runs:
        double = _Replayed(run, detector, crop)
        now = [0.0]

        def clock(now: list[float] = now) -> float:
            return now[0]

        controller = ShelfController(
            config, camera=ReconnectingCamera(double, clock=clock), presence=AlwaysPresent(),
            detector=double, age_gender=double, rankers=rankers, store=store, indicator=NullIndicator(),
            screen=NullScreen(), events=None, clock=clock, rng=random.Random(0),
            refiner=double if crop == "refined" else None,
        )
        decisions: list[tuple[int, Any]] = []
        for i in range(len(run.frames)):
            d = controller.step()
            if d is not None:
                decisions.append((i, d))
            now[0] += 1.0 / FPS
        in_effect = [d for i, d in decisions if i < run.leave_frame]
        final = in_effect[-1] if in_effect else None
        first_personal = next((i for i, d in decisions if d.segment is not None and i < run.leave_frame), None)
        outcomes.append(_outcome(run, final.segment if final is not None else None, first_personal,
                                 len([1 for i, _ in decisions if i < run.leave_frame])))
    return outcomes


def _outcome(run: ClipRun, segment: Any, first_personal: int | None, decisions: int) -> VisitOutcome:
    from tools.vision_clips import FPS

    personalised = segment is not None
    gender_ok = bracket_off = None
    if personalised:
        gender_ok = (segment.gender.value == "female") == bool(run.female)
        bracket_off = abs(bracket_index(segment.bracket) - bracket_index(_true_bracket(run.age)))
    delay = None
    if first_personal is not None:
        delay = max(0.0, (first_personal - run.stop_frame) / FPS)
    return VisitOutcome(run.age, run.female, personalised, gender_ok, bracket_off, delay, decisions, run.passer)


def _true_bracket(age: int) -> str:
    from smartshelf.core.types import age_bracket

    return age_bracket(age)


def baseline_majority(runs: list[ClipRun], detector: str, crop: str, min_face_px: int, n: int = 5) -> list[VisitOutcome]:
    """The first ``n`` frames with a face vote: majority gender, most common bracket; adults personalised."""
    from collections import Counter

    from smartshelf.core.types import Gender, Segment

    outcomes = []
    for run in runs:
        votes: list[Demographic] = []
        at = None
        for i, fr in enumerate(run.frames[: run.leave_frame]):
            judged = fr.judged(detector, crop, min_face_px)
            if judged is not None:
                votes.append(judged[1])
                if len(votes) == n:
                    at = i
                    break
        segment = None
        if at is not None:
            female = sum(v.p_female >= 0.5 for v in votes) * 2 > n
            bracket = Counter(v.age_bracket for v in votes).most_common(1)[0][0]
            if bracket_index(bracket) >= bracket_index("18-24"):
                segment = Segment(Gender.FEMALE if female else Gender.MALE, bracket)
        outcomes.append(_outcome(run, segment, at if segment is not None else None, 1 if at is not None else 0))
    return outcomes


def baseline_best_frame(runs: list[ClipRun], detector: str, crop: str, min_face_px: int) -> list[VisitOutcome]:
    """The single frame of the visit (until the shopper leaves) with the highest confidence x face size."""
    from tools.vision_clips import FPS  # noqa: F401 - same clock as the others

    outcomes = []
    for run in runs:
        best: tuple[float, int, Demographic] | None = None
        for i, fr in enumerate(run.frames[: run.leave_frame]):
            judged = fr.judged(detector, crop, min_face_px)
            if judged is None:
                continue
            face, est = judged
            score = est.confidence * min(1.0, face.box[2] / 120)
            if best is None or score > best[0]:
                best = (score, i, est)
        segment = None
        at = None
        if best is not None and best[2].age >= 18:
            segment, at = best[2].segment, best[1]
        outcomes.append(_outcome(run, segment, at, 1 if best is not None else 0))
    return outcomes


def summarise(outcomes: list[VisitOutcome]) -> dict[str, float]:
    adults = [o for o in outcomes if o.age >= 18]
    minors = [o for o in outcomes if o.age < 18]
    personal = [o for o in adults if o.personalised]
    wrong = [o for o in outcomes if o.personalised and (o.age < 18 or not o.gender_ok)]
    delays = [o.time_to_decision_s for o in personal if o.time_to_decision_s is not None]
    return {
        "visits": len(outcomes),
        "adult_visits": len(adults),
        "gender_pct": _pct(bool(o.gender_ok) for o in personal),
        "bracket_exact_pct": _pct(o.bracket_off == 0 for o in personal),
        "bracket_within_one_pct": _pct((o.bracket_off or 0) <= 1 for o in personal),
        "adults_personalised_pct": _pct(o.personalised for o in adults),
        "minors_personalised_pct": _pct(o.personalised for o in minors),
        "wrong_personalisation_pct": 100.0 * len(wrong) / len(outcomes) if outcomes else float("nan"),
        "median_s_stop_to_decision": statistics.median(delays) if delays else float("nan"),
        "revisions_per_visit": statistics.mean(max(0, o.decisions - 1) for o in outcomes) if outcomes else 0.0,
    }


def clip_table(rows: list[tuple[str, dict[str, float]]], title: str) -> str:
    lines = [
        title,
        "",
        ("| variant | gender (personalised adults) | bracket exact | within one | adult visits personalised | "
        "minors personalised | wrong personalisation | median s stop -> decision | revisions per visit |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    def pct(v: float) -> str:
        return "-" if math.isnan(v) else f"{v:.1f}%"  # NaN: no visit to measure

    for name, m in rows:
        delay = m["median_s_stop_to_decision"]
        lines.append(
            f"| {name} | {pct(m['gender_pct'])} | {pct(m['bracket_exact_pct'])} | {pct(m['bracket_within_one_pct'])} | "
            f"{pct(m['adults_personalised_pct'])} | {pct(m['minors_personalised_pct'])} | "
            f"{pct(m['wrong_personalisation_pct'])} | {'-' if math.isnan(delay) else f'{delay:.1f}'} | "
            f"{m['revisions_per_visit']:.2f} |"
        )
    return "\n".join(lines)


def _runs_to_json(runs: list[ClipRun]) -> list[dict[str, Any]]:
    def frame(fr: FrameResult) -> dict[str, Any]:
        return {
            "faces": {d: [[list(f.box), f.score, [list(k) for k in f.keypoints]] for f in fs] for d, fs in fr.faces.items()},
            "estimates": {f"{d}|{c}": [None if e is None else [e.p_female, e.age, e.confidence, e.age_std] for e in es]
                          for (d, c), es in fr.estimates.items()},
            "ms": fr.ms,
        }

    return [{"clip": r.clip_index, "age": r.age, "female": r.female, "stop": r.stop_frame, "leave": r.leave_frame,
             "passer": r.passer, "frames": [frame(fr) for fr in r.frames]} for r in runs]


def _runs_from_json(data: list[dict[str, Any]]) -> list[ClipRun]:
    def frame(d: dict[str, Any]) -> FrameResult:
        faces = {k: [Face(tuple(b), s, tuple(tuple(p) for p in kp)) for b, s, kp in fs] for k, fs in d["faces"].items()}
        est = {tuple(k.split("|")): [None if e is None else Demographic(*e) for e in es]
               for k, es in d["estimates"].items()}
        return FrameResult(faces, est, d["ms"])  # type: ignore[arg-type]

    return [ClipRun(r["clip"], r["age"], r["female"], r["stop"], r["leave"], r["passer"], [frame(f) for f in r["frames"]])
            for r in data]


def _model_sha(models_dir: Path | None) -> str:
    """The age/gender model the outputs came from (sha256 of its int8 file, from its manifest)."""
    from device.inference.runtime import MANIFEST_NAME, MODELS_DIR, load_manifest

    folder = models_dir if models_dir is not None else MODELS_DIR
    for entry in load_manifest(folder / MANIFEST_NAME):
        if entry.get("file") == "age_gender_int8.tflite":
            return str(entry.get("sha256", ""))
    return ""


def _search_settings() -> dict[str, Any]:
    """FaceSearch's defaults (the sweep's tiles, the following): part of the clip cache's key."""
    import inspect

    from device.inference.detector import FaceSearch

    params = inspect.signature(FaceSearch.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def make_runs(
    split: str, n_clips: int, seed: int, cache: Path | None = None, stop_px: float = 120.0,
    models_dir: Path | None = None,
) -> list[ClipRun]:
    """The clips' per-frame model outputs; with ``cache``, kept in that JSON file (model outputs and face
    boxes only, no pixels) so that re-tabulating does not rerun the models. ``models_dir``: a folder
    with another age/gender model and its manifest (a candidate from ``models.training.train --out``)."""
    from tools.vision_clips import load_faces, make_clips

    model = _model_sha(models_dir)
    if cache is not None and cache.exists():
        data = json.loads(cache.read_text())
        key = (data.get("split"), data.get("clips"), data.get("seed"), data.get("stop_px", 120.0), data.get("model"),
               data.get("detectors", ["short_range", "cascade"]), data.get("search"), data.get("format"))
        if key == (split, n_clips, seed, stop_px, model, list(CLIP_DETECTORS), _search_settings(), CACHE_FORMAT):
            return _runs_from_json(data["runs"])
    faces = load_faces(split, limit=n_clips, seed=seed)
    clips = make_clips(faces, n_clips, seed=seed, stop_px=stop_px)
    runs = precompute(clips, models_dir=models_dir)
    if cache is not None:
        cache.write_text(json.dumps({"split": split, "clips": n_clips, "seed": seed, "stop_px": stop_px,
                                     "model": model, "detectors": list(CLIP_DETECTORS), "search": _search_settings(),
                                     "format": CACHE_FORMAT, "runs": _runs_to_json(runs)}))
    return runs


CROPS = {
    "view": "crop from the 640x480 view",
    "full": "crop from 1280x960, keypoints scaled",
    "refined": "crop from 1280x960, refined",
}


def evaluate_clips(
    runs: list[ClipRun], visit: VisitConfig, detector: str, crop_default: str
) -> list[tuple[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory(prefix="visit-eval-") as tmp:
        base = _store(Path(tmp))
        rows = []
        for det in CLIP_DETECTORS:
            for crop, label in CROPS.items():
                rows.append((f"controller, {det}, {label}", summarise(run_controller(runs, base, visit, det, crop))))
        rows.append((f"5-frame majority vote ({detector}, {CROPS[crop_default]})",
                     summarise(baseline_majority(runs, detector, crop_default, visit.min_face_px))))
        rows.append((f"single best frame of the visit ({detector}, {CROPS[crop_default]})",
                     summarise(baseline_best_frame(runs, detector, crop_default, visit.min_face_px))))
    return rows


def shipped_detector() -> str:
    """The default config's detector as named in these tables (``cascade+search`` with ``models.search``)."""
    models = Config().models
    return models.detector + ("+search" if models.search else "")


def frame_costs(runs: list[ClipRun]) -> dict[str, float]:
    """Per-frame model time on the clips: the detector, then (frames with a face) the classification from
    the view, or refinement + classification from the full frame."""
    cost: dict[str, float] = {}
    for det in CLIP_DETECTORS:
        for crop in ("view", "refined"):
            ms = [fr.ms.get(f"detect_{det}", 0.0) + (fr.ms.get(f"classify_{crop}", 0.0) if fr.faces[det] else 0.0)
                  for run in runs for fr in run.frames]
            cost[f"{det}+{crop}_median_ms"] = statistics.median(ms)
            cost[f"{det}+{crop}_p95_ms"] = _p95(ms)
    return cost


GRID = {
    "min_confidence": (0.3, 0.35, 0.4, 0.45, 0.5),
    "min_frames": (2, 3, 5),
    "decide_within_s": (0.5, 1.0, 1.5),
    "min_face_px": (32, 40),
}


@dataclass(frozen=True)
class Setting:
    """One point of the tuning grid: the detector (``cascade+search``: with ``models.search``) and ``[visit]``."""

    detector: str
    visit: VisitConfig

    def label(self) -> str:
        v = self.visit
        return (f"{self.detector}, min_confidence {v.min_confidence}, min_frames {v.min_frames}, "
                f"decide_within_s {v.decide_within_s}, min_face_px {v.min_face_px}")


def tune(runs: list[ClipRun], detectors: tuple[str, ...], crop: str) -> list[tuple[Setting, dict[str, float]]]:
    """Every grid point on the validation clips, best first (:func:`rank`)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="visit-tune-") as tmp:
        base = _store(Path(tmp))
        for detector, mc, mf, dw, px in itertools.product(
            detectors, GRID["min_confidence"], GRID["min_frames"], GRID["decide_within_s"], GRID["min_face_px"]
        ):
            visit = replace(VisitConfig(), min_confidence=mc, min_frames=mf, decide_within_s=dw, min_face_px=px)
            results.append((Setting(detector, visit), summarise(run_controller(runs, base, visit, detector, crop))))
    return rank(results, detectors)


#: Gender among personalised adult visits a setting must reach before anything else counts.
GENDER_FLOOR_PCT = 98.5


def rank(results: list[tuple[Setting, dict[str, float]]], detectors: tuple[str, ...]) -> list[tuple[Setting, dict[str, float]]]:
    """Best first. The first setting is chosen from all by the criteria in order, each keeping the
    settings level with the best on it for the next: gender >= GENDER_FLOOR_PCT (else the best gender);
    the fewest minors personalised (a shelf must not target children); the most adult visits
    personalised; bracket within one; the fewest revisions; the soonest decision; the cheaper detector
    (the first of ``detectors``). On the visit counts (gender, minors, adults, within one, revisions)
    "level" means within one visit of the best: on a few hundred clips one shopper more or less is not
    a difference, and a strict order let one minor of 117 outweigh a third of the adults. The second
    setting is chosen the same way from the rest, and so on."""
    if not results:
        return []
    first = results[0][1]
    n_visits, n_adults = first["visits"], first["adult_visits"]
    n_minors = n_visits - n_adults

    def value(m: dict[str, float], name: str) -> float:
        v = m[name]
        return -1.0 if math.isnan(v) else v  # nothing to measure (no minors, nobody personalised)

    def personalised(m: dict[str, float]) -> float:
        return max(1.0, m["adults_personalised_pct"] * n_adults / 100)

    # (criterion, higher is better, one visit in its unit for the settings still in)
    criteria: list[tuple[Any, bool, Any]] = [
        (lambda m: value(m, "gender_pct") >= GENDER_FLOOR_PCT, True, lambda ms: 0.0),
        # below the floor the best gender; at or above it gender no longer orders them
        (lambda m: min(value(m, "gender_pct"), GENDER_FLOOR_PCT), True, lambda ms: 100 / max(personalised(m) for m in ms)),
        (lambda m: value(m, "minors_personalised_pct"), False, lambda ms: 100 / max(1, n_minors)),
        (lambda m: value(m, "adults_personalised_pct"), True, lambda ms: 100 / max(1, n_adults)),
        (lambda m: value(m, "bracket_within_one_pct"), True, lambda ms: 100 / max(personalised(m) for m in ms)),
        (lambda m: m["revisions_per_visit"], False, lambda ms: 1 / max(1, n_visits)),
        (lambda m: value(m, "median_s_stop_to_decision"), False, lambda ms: 0.0),
    ]
    left = list(results)
    ranked = []
    while left:
        cand = left
        for crit, higher, tol in criteria:
            if len(cand) == 1:
                break
            metrics = [m for _, m in cand]
            best = max(crit(m) for m in metrics) if higher else min(crit(m) for m in metrics)
            slack = tol(metrics) + 1e-9
            cand = [item for item in cand
                    if (crit(item[1]) >= best - slack if higher else crit(item[1]) <= best + slack)]
        chosen = min(cand, key=lambda item: detectors.index(item[0].detector))
        ranked.append(chosen)
        left = [item for item in left if item is not chosen]
    return ranked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.visit_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("range", help="detection and accuracy by face size; crop from view vs full frame")
    r.add_argument("--split", choices=("val", "test"), default="test")
    r.add_argument("--faces", type=int, default=300)
    w = sub.add_parser("sweep", help="the search's sweeps compared on validation faces (never the test split)")
    w.add_argument("--faces", type=int, default=300)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    c = sub.add_parser("clips", help="approach clips through the real controller, with the baselines")
    c.add_argument("--split", choices=("val", "test"), default="test")
    c.add_argument("--clips", type=int, default=150)
    c.add_argument("--stop-px", type=float, default=120.0,
                   help="face width (640x480 view pixels) where the shopper stops (120: ~0.66 m, 50: ~1.6 m)")
    t = sub.add_parser("tune", help="visit/gate grid on validation clips (never the test split)")
    t.add_argument("--clips", type=int, default=100, help="clips per stopping distance")
    t.add_argument("--stop-px", type=float, nargs="+", default=[120.0, 50.0, 40.0],
                   help="stopping face widths; the clips of all of them are judged together")
    t.add_argument("--detector", default=None, choices=CLIP_DETECTORS,
                   help="judge only this one (default: cascade, and cascade with the search)")
    t.add_argument("--crop", default="refined", choices=tuple(CROPS))
    c.add_argument("--cache", type=Path, default=None,
                   help="keep the clips' model outputs (no pixels) in this JSON file and reuse them")
    t.add_argument("--cache", default=None,
                   help="as for clips, one file per stopping distance: a path with {px}, e.g. models/work/clips-val-{px}.json")
    for p in (r, c, t):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--models-dir", type=Path, default=None,
                       help="another age/gender model (a folder with age_gender_int8.tflite and its manifest, "
                            "e.g. a candidate from models.training.train --out); default: the committed one")
        p.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("device.inventory", "device.shelf", "device.recommend.factors"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.cmd == "range":
        result = run_range(args.split, args.faces, args.seed, args.models_dir)
        print(json.dumps(result) if args.json else range_table(result))
        return 0
    if args.cmd == "sweep":
        rows = run_sweep(args.faces, args.seed)
        print(json.dumps(rows) if args.json else sweep_table(rows))
        return 0
    if args.cmd == "clips":
        runs = make_runs(args.split, args.clips, args.seed, args.cache, args.stop_px, args.models_dir)
        visit = Config().visit
        detector = shipped_detector()
        rows = evaluate_clips(runs, visit, detector, "refined")
        cost = frame_costs(runs)
        if args.json:
            print(json.dumps({"split": args.split, "rows": dict(rows), "frame_cost_ms": cost}))
        else:
            n_adult = rows[0][1]["adult_visits"]
            title = (f"{len(runs)} approach clips from the {args.split} split, stopping at a {args.stop_px:g} px face "
                     f"({n_adult} adults, "
                     f"{sum(r.passer for r in runs)} with a passer-by); visit settings: {visit}")
            print(clip_table(rows, title))
            print("\nModel time per clip frame (detector + one classification of the largest face), ms: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in cost.items()))
        return 0
    if args.cache is not None and len(args.stop_px) > 1 and "{px}" not in args.cache:
        parser.error("--cache needs {px} in its name when there are several --stop-px")
    runs = []
    for px in args.stop_px:
        cache = Path(args.cache.format(px=f"{px:g}")) if args.cache is not None else None
        runs += make_runs("val", args.clips, args.seed, cache, px, models_dir=args.models_dir)
    detectors = (args.detector,) if args.detector else CLIP_DETECTORS[1:]
    results = tune(runs, detectors, args.crop)
    if args.json:
        print(json.dumps([{"detector": st.detector, "visit": {
            "min_confidence": st.visit.min_confidence, "min_frames": st.visit.min_frames,
            "decide_within_s": st.visit.decide_within_s, "min_face_px": st.visit.min_face_px}, **m}
            for st, m in results]))
    else:
        rows = [(st.label(), m) for st, m in results[:10]]
        stops = ", ".join(f"{px:g}" for px in args.stop_px)
        print(clip_table(rows, f"Validation clips ({args.clips} per stop at {stops} px: {len(runs)}), crop from "
                               f"{args.crop}: best 10 of {len(results)} settings"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
