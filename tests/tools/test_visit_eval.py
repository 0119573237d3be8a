"""tools.vision_clips and tools.visit_eval: clips that look like the spec, and visit measures with a known answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from smartshelf.core.types import Demographic, Face
from tools.visit_eval import (
    ClipRun,
    FrameResult,
    VisitOutcome,
    _store,
    baseline_best_frame,
    baseline_majority,
    run_controller,
    summarise,
)

FACE = Face((300, 200, 100, 100), 0.9, ((330.0, 230.0), (370.0, 230.0), (350.0, 250.0), (350.0, 270.0)))
WOMAN_30 = Demographic(p_female=0.97, age=30, confidence=0.9, age_std=3.0)
MAN_30 = Demographic(p_female=0.03, age=30, confidence=0.9, age_std=3.0)


def _run(estimates: list[Demographic | None], *, age: int = 29, female: int = 1, stop: int = 5) -> ClipRun:
    frames = []
    for est in estimates:
        faces = [] if est is None else [FACE]
        fr = FrameResult({"cascade": faces}, {("cascade", "refined"): [] if est is None else [est]})
        frames.append(fr)
    return ClipRun(0, age, female, stop, len(estimates) - 3, False, frames)


def test_tune_finds_the_smaller_face_limit_for_far_shoppers_and_prefers_the_cheaper_detector(tmp_path) -> None:
    """A shopper whose face stays 34 px is personalised only with visit.min_face_px 32; with both detectors
    seeing the same faces, the cascade (cheaper) is ranked first."""
    from dataclasses import replace as dc_replace

    import tools.visit_eval as V

    far_face = Face((300, 200, 34, 34), 0.9, FACE.keypoints)
    run = _run([None, None] + [WOMAN_30] * 15 + [None] * 3, age=29, female=1, stop=5)
    for fr in run.frames:
        if fr.faces["cascade"]:
            fr.faces = {"cascade": [far_face], "cascade+search": [far_face]}
        else:
            fr.faces = {"cascade": [], "cascade+search": []}
        fr.estimates[("cascade+search", "refined")] = fr.estimates[("cascade", "refined")]
    small = dict(V.GRID)
    try:
        V.GRID.update({"min_confidence": (0.35,), "min_frames": (3,), "decide_within_s": (1.5,)})
        results = V.tune([run], ("cascade", "cascade+search"), "refined")
    finally:
        V.GRID.clear()
        V.GRID.update(small)
    best, metrics = results[0]
    assert best.detector == "cascade" and best.visit.min_face_px == 32
    assert metrics["adults_personalised_pct"] == pytest.approx(100.0)
    assert "min_face_px 32" in best.label()
    worst = [m for s, m in results if s.visit.min_face_px == 40]
    assert all(m["adults_personalised_pct"] == 0.0 for m in worst)
    assert dc_replace(best.visit, min_face_px=40) in [s.visit for s, _ in results]


def test_rank_does_not_let_one_visit_outweigh_many() -> None:
    """Settings within one visit of the best on a count are level for the next criterion: one minor
    fewer of 100 does not win over 30 more adults of 100; a clear difference in minors still does."""
    import tools.visit_eval as V
    from smartshelf.core.config import VisitConfig

    def m(adults: float, minors: float, revisions: float = 0.3) -> dict[str, float]:
        return {"visits": 200, "adult_visits": 100, "gender_pct": 100.0, "bracket_exact_pct": 50.0,
                "bracket_within_one_pct": 90.0, "adults_personalised_pct": adults,
                "minors_personalised_pct": minors, "wrong_personalisation_pct": 1.0,
                "median_s_stop_to_decision": 0.1, "revisions_per_visit": revisions}

    def st(det: str, mc: float) -> V.Setting:
        return V.Setting(det, VisitConfig(min_confidence=mc))

    corner = (st("cascade", 0.5), m(60.0, 1.0))
    broad = (st("cascade", 0.35), m(90.0, 2.0))
    childish = (st("cascade", 0.3), m(95.0, 5.0))
    searched = (st("cascade+search", 0.35), m(90.5, 2.0))  # level with broad: the cheaper detector first
    wrong = (st("cascade", 0.2), {**m(99.0, 0.0), "gender_pct": 97.0})
    order = V.rank([corner, childish, searched, wrong, broad], ("cascade", "cascade+search"))
    assert [item[0] for item in order] == [broad[0], searched[0], corner[0], childish[0], wrong[0]]
    # at or above the floor gender no longer orders them: 98.6% with more adults before 100%
    nearly = (st("cascade", 0.4), {**m(95.0, 2.0), "gender_pct": 98.6})
    assert [item[0] for item in V.rank([broad, nearly], ("cascade",))] == [nearly[0], broad[0]]


def test_summarise_counts_what_the_shopper_got() -> None:
    outcomes = [
        VisitOutcome(30, 1, True, True, 0, 0.0, 1, False),
        VisitOutcome(40, 0, True, False, 1, 0.5, 2, False),  # wrong gender
        VisitOutcome(50, 0, False, None, None, None, 1, False),  # generic
        VisitOutcome(15, 1, True, True, 2, 0.2, 1, False),  # a minor personalised: wrong too
    ]
    m = summarise(outcomes)
    assert m["adult_visits"] == 3
    assert m["gender_pct"] == pytest.approx(50.0)  # adults only: 1 of 2 personalised
    assert m["bracket_exact_pct"] == pytest.approx(50.0)
    assert m["bracket_within_one_pct"] == pytest.approx(100.0)
    assert m["adults_personalised_pct"] == pytest.approx(200 / 3)
    assert m["minors_personalised_pct"] == pytest.approx(100.0)
    assert m["wrong_personalisation_pct"] == pytest.approx(50.0)
    assert m["median_s_stop_to_decision"] == pytest.approx(0.25)
    assert m["revisions_per_visit"] == pytest.approx(0.25)


def test_controller_and_baselines_on_a_scripted_clip(tmp_path) -> None:
    from smartshelf.core.config import Config

    # two frames without a face, then a woman of ~30; the shopper stops at frame 5, leaves at frame 17
    run = _run([None, None] + [WOMAN_30] * 15 + [None] * 3, age=29, female=1, stop=5)
    base = _store(tmp_path)
    visit = replace(Config().visit, min_frames=5)
    [out] = run_controller([run], base, visit, "cascade", "refined")
    assert out.personalised and out.gender_ok and out.bracket_off == 0
    first = 2 + visit.min_frames - 1  # the frame of the min_frames-th face
    assert out.time_to_decision_s == pytest.approx(max(0.0, (first - 5) / 10)), "decided on that frame"
    early = replace(visit, min_frames=3)
    [out] = run_controller([run], base, early, "cascade", "refined")
    assert out.time_to_decision_s == 0.0, "decided on frame 4 (third face), before the stop"
    # a majority of men among the first five faces wins the vote
    vote = _run([MAN_30, WOMAN_30, MAN_30, WOMAN_30, MAN_30] + [WOMAN_30] * 10, female=1, stop=2)
    [maj] = baseline_majority([vote], "cascade", "refined", 40)
    assert maj.personalised and maj.gender_ok is False
    # the single best frame is the most confident one
    best = _run([Demographic(0.4, 30, 0.2)] * 5 + [WOMAN_30] + [Demographic(0.4, 30, 0.2)] * 6, stop=3)
    [b] = baseline_best_frame([best], "cascade", "refined", 40)
    assert b.personalised and b.gender_ok and b.time_to_decision_s == pytest.approx(0.2)


def _behind(first: Face, crop: str, estimates: list[Demographic | None]) -> ClipRun:
    """A woman's clip where every frame with her face (FACE) has ``first`` before it, and these
    estimates of the two from ``crop``."""
    run = _run([None, None] + [WOMAN_30] * 15 + [None] * 3, age=29, female=1, stop=5)
    for fr in run.frames:
        if fr.faces["cascade"]:
            fr.faces["cascade"] = [first, FACE]
            fr.estimates[("cascade", crop)] = list(estimates)
    return run


def test_the_shelf_judges_the_largest_face_the_full_frame_confirms(tmp_path) -> None:
    """A false face (larger, not confirmed by the refiner) in front of the shopper is skipped by the
    controller and by both baselines; with no confirmed face nobody is personalised."""
    from smartshelf.core.config import Config

    run = _behind(Face((50, 50, 140, 140), 0.6), "refined", [None, WOMAN_30])
    base = _store(tmp_path)
    [out] = run_controller([run], base, Config().visit, "cascade", "refined")
    assert out.personalised and out.gender_ok
    [maj] = baseline_majority([run], "cascade", "refined", 40)
    [b] = baseline_best_frame([run], "cascade", "refined", 40)
    assert maj.personalised and maj.gender_ok and b.personalised and b.gender_ok
    assert run.frames[5].judged("cascade", "refined", 40) == (FACE, WOMAN_30)
    assert run.frames[5].judged("cascade", "refined", 120) is None, "FACE (100 px) is too small, the other false"
    for fr in run.frames:
        fr.estimates[("cascade", "refined")] = [None] * len(fr.faces["cascade"])
    [out] = run_controller([run], base, Config().visit, "cascade", "refined")
    assert not out.personalised and out.decisions == 0


def test_the_replay_hands_the_controller_the_estimate_of_the_face_it_judges(tmp_path) -> None:
    """The search appends its faces after the detector's: when the detector's face is below
    visit.min_face_px the controller judges the search's, and gets that face's estimate, not the first's."""
    from smartshelf.core.config import Config

    tiny = Face((10, 10, 20, 20), 0.7)
    run = _behind(tiny, "view", [MAN_30, WOMAN_30])
    [out] = run_controller([run], _store(tmp_path), Config().visit, "cascade", "view")
    assert out.personalised and out.gender_ok, "judged on FACE (the woman), not on the 20 px face"
    assert run.frames[5].judged("cascade", "view", 32) == (FACE, WOMAN_30)
    assert run.frames[5].judged("cascade", "view", 8) == (tiny, MAN_30)


@pytest.mark.slow
def test_an_approach_clip_grows_stops_and_leaves() -> None:
    from device.inference import create_detector
    from tools.vision_clips import FULL_SIZE, VIEW_SIZE, load_faces, make_clips

    try:
        faces = load_faces("val", limit=3)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with pytest.raises(ValueError, match="never train"):
        load_faces("train")
    clip = make_clips(faces, 1, seed=4)[0]
    frames = list(clip.frames())
    assert len(frames) == clip.n_frames
    assert frames[0].view.shape == (VIEW_SIZE[1], VIEW_SIZE[0], 3)
    assert frames[0].full is not None and frames[0].full.shape == (FULL_SIZE[1], FULL_SIZE[0], 3)
    with create_detector("full_range") as det:
        widths = {}
        for i in (clip.stop_frame - 8, clip.stop_frame + 5):
            found = det.detect(frames[i].view)
            assert found, f"no face on frame {i}"
            widths[i] = found[0].box[2]
    walking, stopped = widths[clip.stop_frame - 8], widths[clip.stop_frame + 5]
    assert 90 <= stopped <= 150, stopped
    assert walking < 0.75 * stopped
    assert np.abs(frames[-1].view.astype(int) - frames[clip.stop_frame].view.astype(int)).mean() > 1, "shopper gone"


@pytest.mark.slow
def test_cached_model_outputs_are_reused_only_for_the_same_model(tmp_path, monkeypatch) -> None:
    """``--cache`` keeps per-frame outputs keyed on the clips, the age/gender model (its int8 sha256) and
    the search's settings, so a candidate model (``--models-dir``) or sweep is never judged on another's
    outputs."""
    import hashlib
    import json
    import shutil

    import tools.visit_eval as V
    from device.inference.runtime import MODELS_DIR, load_manifest

    committed = {e["file"]: e["sha256"] for e in load_manifest()}["age_gender_int8.tflite"]
    assert V._model_sha(None) == committed
    # a candidate folder as models.training.train --out writes it: here the float32 model under the int8 name
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    shutil.copy(MODELS_DIR / "age_gender_float32.tflite", candidate / "age_gender_int8.tflite")
    sha = hashlib.sha256((candidate / "age_gender_int8.tflite").read_bytes()).hexdigest()
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    entry = next(e for e in manifest["models"] if e["name"] == "age_gender_float32")
    manifest["models"] = [{**entry, "name": "age_gender_int8", "file": "age_gender_int8.tflite", "sha256": sha}]
    (candidate / "manifest.json").write_text(json.dumps(manifest))
    assert V._model_sha(candidate) == sha

    real = V.precompute
    ran: list[object] = []
    monkeypatch.setattr(V, "precompute", lambda clips, models_dir=None: (ran.append(models_dir),
                                                                          real(clips, models_dir=models_dir))[1])
    cache = tmp_path / "clips.json"
    try:
        first = V.make_runs("val", 1, 0, cache)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert ran == [None] and json.loads(cache.read_text())["model"] == committed
    again = V.make_runs("val", 1, 0, cache)
    assert ran == [None], "the same clips and model: read from the cache"
    other = V.make_runs("val", 1, 0, cache, models_dir=candidate)
    assert ran == [None, candidate], "another model's outputs are made afresh"
    assert json.loads(cache.read_text())["model"] == sha
    assert again[0].frames[25].estimates == first[0].frames[25].estimates
    key = ("cascade", "refined")
    assert any(a.estimates[key] != b.estimates[key] for a, b in zip(first[0].frames, other[0].frames, strict=True))
    data = json.loads(cache.read_text())
    cache.write_text(json.dumps({**data, "search": {**data["search"], "tile_share": 0.4, "tiles_per_frame": 1}}))
    V.make_runs("val", 1, 0, cache, models_dir=candidate)
    assert ran == [None, candidate, candidate], "outputs of another search sweep are made afresh"


def test_tiles_find_a_small_face_and_map_it_back_to_the_view() -> None:
    """The range table's tiled full range: faces found in a tile come back in view pixels."""
    from device.inference import create_detector
    from tools.vision_clips import face_frame, load_faces
    from tools.visit_eval import TiledDetector, face_at

    try:
        faces = load_faces("val", limit=6)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(3)
    tiles = TiledDetector(create_detector("full_range"))
    try:
        hits = 0
        for face in faces:
            capture, centre = face_frame(face, 60, rng)
            got = tiles.detect(capture.view)
            hits += face_at(got, centre, 60) is not None
            for f in got:
                x, y, w, h = f.box
                assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480
        assert hits >= 5, hits
    finally:
        tiles.close()


def test_the_sweep_comparison_counts_how_soon_each_sweep_finds_the_face() -> None:
    """``sweep`` (validation faces only): one row per size and sweep; a sweep that looks at more tiles a
    frame finds a far face no later; the table names each sweep by its tiles."""
    from tools.visit_eval import run_sweep, sweep_table

    try:
        rows = run_sweep(4, 0, sizes=(40,), within=(2, 9), sweeps=((0.4, 1), (0.4, 2)))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert [(r["tiles_per_frame"], r["tiles"], r["faces"]) for r in rows] == [(1, 9, 4), (2, 9, 4)]
    one, two = rows
    assert 0 <= one["within_2"] <= one["within_9"] <= 100
    assert two["within_2"] >= one["within_2"] and two["within_9"] >= 75.0
    table = sweep_table(rows)
    assert "| 9 tiles of 256 px, 1 a frame |" in table and "40 px: within 9 frames" in table
