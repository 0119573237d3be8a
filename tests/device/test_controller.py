"""ShelfController.step() with scripted faces, a factor file made here and a real store file."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest

from device.controller import ShelfController
from device.display import KioskScreen, RecordingIndicator
from device.events import EventLog
from device.inventory import STORE_FILE, StoreView
from device.recommend.factors import FactorModel
from device.sensors import ReconnectingCamera
from device.sensors.presence import AlwaysPresent
from device.shelf import FactorRankers
from smartshelf.core.config import Config, RecommendConfig, ShelfConfig, VisitConfig
from smartshelf.core.storage import open_db
from smartshelf.core.types import AGE_BRACKETS, Demographic, Face, Gender

FRAME = np.zeros((48, 64, 3), np.uint8)


class ScriptedCamera:
    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        return FRAME

    def close(self) -> None:
        pass


class ScriptedFaces:
    """Detector + age/gender double: each step pops the next script entry (None = no face)."""

    def __init__(self, script: list[Demographic | None]) -> None:
        self.script = list(script)
        self.current: Demographic | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        self.current = self.script.pop(0) if self.script else None
        return [] if self.current is None else [Face((0, 0, 120, 120), 0.9)]

    def estimate(self, frame: np.ndarray, face: Face) -> Demographic:
        assert self.current is not None
        return self.current

    def close(self) -> None:
        pass


WOMAN = Demographic(p_female=0.95, age=30, confidence=0.9)
MAN = Demographic(p_female=0.05, age=50, confidence=0.9)
CHILD = Demographic(p_female=0.5, age=9, confidence=0.9)

# Items w1..w3 are for women, m1..m3 for men, g1 is popular with everyone.
ITEMS = ["w1", "w2", "w3", "m1", "m2", "m3", "g1"]


def make_factors(path: Path) -> None:
    factors = np.array([[1, 0, 0.1], [0.9, 0.1, 0], [0.8, 0, 0.2], [0, 1, 0.1], [0.1, 0.9, 0], [0, 0.8, 0.2], [0.3, 0.3, 1]])
    segments = []
    vectors = []
    for g in Gender:
        for b in AGE_BRACKETS:
            segments.append(f"{g.value}/{b}")
            vectors.append([1, 0, 0] if g is Gender.FEMALE else [0, 1, 0])
    FactorModel(
        item_ids=tuple(ITEMS),
        item_factors=factors,
        segment_ids=tuple(segments),
        segment_vectors=np.array(vectors, float),
        global_vector=np.array([0, 0, 1.0]),
        popularity=np.zeros(len(ITEMS)),
        metadata={"method": "test"},
    ).save(path)


def make_store(path: Path, stock: dict[str, int] | None = None) -> None:
    stock = stock or {}
    db = open_db(path)
    db.drop_tables()
    db.table("products").insert_multiple(
        {"sku": f"SKU-{i}", "name": f"Product {i}", "price": 1000, "stock": stock.get(i, 5), "slot": f"S{n}", "item_id": i}
        for n, i in enumerate(ITEMS)
    )
    db.table("slots").insert_multiple({"slot": f"S{n}", "pin": 5 + n} for n in range(len(ITEMS)))
    db.close()


@pytest.fixture
def shelf(tmp_path: Path):
    def build(
        script: list[Demographic | None],
        *,
        stock: dict[str, int] | None = None,
        recommend: dict[str, object] | None = None,
        **visit: object,
    ):
        make_factors(tmp_path / "factors.npz")
        make_store(tmp_path / STORE_FILE, stock)
        config = Config(
            shelf=ShelfConfig(data_dir=tmp_path),
            visit=VisitConfig(**{"min_frames": 3, "leave_after_s": 1.0, **visit}),  # type: ignore[arg-type]
            recommend=RecommendConfig(**{"top_n": 2, "diversity": 0.0, "pairs_n": 1, **(recommend or {})}),  # type: ignore[arg-type]
        )
        now = [0.0]
        faces = ScriptedFaces(script)
        store = StoreView(tmp_path / STORE_FILE)
        store.refresh(force=True)
        controller = ShelfController(
            config,
            camera=ReconnectingCamera(ScriptedCamera(), clock=lambda: now[0]),
            presence=AlwaysPresent(),
            detector=faces,
            age_gender=faces,
            rankers=FactorRankers(config.factors_path, store),
            store=store,
            indicator=RecordingIndicator(),
            screen=KioskScreen("test"),
            events=EventLog(tmp_path),
            clock=lambda: now[0],
            rng=random.Random(1),
        )

        def step():
            decision = controller.step()
            now[0] += 0.1
            return decision

        return controller, step, now

    return build


def test_visit_lights_the_segments_picks_then_goes_idle(shelf, tmp_path: Path) -> None:
    controller, step, _now = shelf([WOMAN] * 5 + [None] * 20)
    decisions = [d for d in (step() for _ in range(25)) if d is not None]
    assert len(decisions) == 1, "one decision: the segment never changed"
    d = decisions[0]
    assert d.segment_label == "female/25-34" and d.reason == "personalised"
    assert d.items == ("SKU-w1", "SKU-w2")
    assert d.slots == ("S0", "S1")
    assert {"capture", "detect", "classify", "aggregate", "recommend", "display", "total"} <= set(d.timings_ms)
    indicator = controller.indicator
    assert ("show", ("S0", "S1")) in indicator.calls
    assert indicator.calls[-1] == ("idle", ()), "lights back to idle after the shopper left"
    assert controller.screen.snapshot()[1]["mode"] == "idle"
    events = controller.events.day(__import__("device.events", fromlist=["day_of"]).day_of(d.time))
    assert [e["segment"] for e in events] == ["female/25-34"]
    assert events[0]["items"] == ["SKU-w1", "SKU-w2"] and events[0]["variant"] == "personalised"


def test_out_of_stock_items_never_come_back(shelf) -> None:
    _controller, step, _ = shelf([WOMAN] * 4, stock={"w1": 0, "w2": -2})
    decision = next(d for d in (step() for _ in range(4)) if d is not None)
    assert "SKU-w1" not in decision.items and "SKU-w2" not in decision.items
    assert decision.items[0] == "SKU-w3"


def test_the_shops_ab_share_from_the_settings_wins_over_the_config(shelf, tmp_path: Path) -> None:
    _controller, step, _ = shelf([WOMAN] * 3 + [None] * 20 + [WOMAN] * 3)
    first = next(d for d in (step() for _ in range(10)) if d is not None)
    assert first.reason == "personalised", "config share 0: nobody is in the control group"
    db = open_db(tmp_path / STORE_FILE)
    db.table("settings").insert({"shop_name": "Laden", "currency": "EUR", "locale": "de_DE", "generic_share": 1.0})
    db.close()
    later = [d for d in (step() for _ in range(30)) if d is not None]
    assert later and later[0].reason == "ab_control" and later[0].segment is None


def test_minor_gets_generic_picks(shelf) -> None:
    _controller, step, _ = shelf([CHILD] * 4)
    decision = next(d for d in (step() for _ in range(4)) if d is not None)
    assert decision.segment is None and decision.reason == "minor"
    assert decision.items[0] == "SKU-g1", "generic picks follow the global vector"


@pytest.mark.parametrize(("blend", "third"), [(True, "SKU-m2"), (False, "SKU-g1")])
def test_an_unsure_gender_hedges_the_picks_unless_blending_is_off(shelf, blend: bool, third: str) -> None:
    unsure = Demographic(p_female=0.55, age=30, confidence=0.9)
    _controller, step, _ = shelf([unsure] * 4, recommend={"top_n": 3, "blend_segments": blend})
    decision = next(d for d in (step() for _ in range(4)) if d is not None)
    assert decision.segment_label == "female/25-34", "events record the most likely segment either way"
    # Expected score with 45% male: m2 (0.1*0.55 + 0.9*0.45 = 0.46) comes third. For "female" alone the men's
    # items score 0 and w3 is a near-duplicate of w1 (at most two of those), so g1 (0.3) comes third.
    assert decision.items == ("SKU-w1", "SKU-w2", third)


def test_decision_is_revised_when_the_estimate_changes(shelf) -> None:
    _controller, step, _ = shelf([WOMAN] * 3 + [MAN] * 12, max_revisions=1)
    decisions = [d for d in (step() for _ in range(15)) if d is not None]
    assert [d.segment_label.split("/")[0] for d in decisions] == ["female", "male"]
    assert decisions[1].items[0] == "SKU-m1"
    assert decisions[0].visit_id == decisions[1].visit_id


def test_a_new_shopper_is_a_new_visit(shelf) -> None:
    _controller, step, _ = shelf([WOMAN] * 3 + [None] * 12 + [MAN] * 3)
    decisions = [d for d in (step() for _ in range(18)) if d is not None]
    assert [d.visit_id for d in decisions] == [1, 2]


def test_pause_identify_and_reload_commands(shelf, tmp_path: Path) -> None:
    controller, step, _ = shelf([WOMAN] * 10)
    results: dict[str, dict] = {}

    def call(name: str, body: dict) -> None:
        results[name] = controller.command(name, body)

    t = threading.Thread(target=call, args=("pause", {"paused": True}))
    t.start()
    while t.is_alive():
        step()
    assert results["pause"] == {"ok": True, "paused": True}
    frames_before = controller.stats.frames
    assert all(step() is None for _ in range(5)), "a paused camera decides nothing"
    assert controller.stats.frames == frames_before, "a paused camera reads no frame at all"
    assert controller.screen.snapshot()[1]["mode"] == "notice"
    controller.set_paused(False)
    step()
    assert controller.stats.frames == frames_before + 1, "resuming reopens the camera"
    controller.set_paused(True)

    t = threading.Thread(target=call, args=("identify", {"slot": "S3", "seconds": 1}))
    t.start()
    while t.is_alive():
        step()
    assert results["identify"]["ok"] and ("identify", ("S3",)) in controller.indicator.calls

    t = threading.Thread(target=call, args=("identify", {"slot": "nope"}))
    t.start()
    while t.is_alive():
        step()
    assert not results["identify"]["ok"] and "nope" in results["identify"]["error"]
    with pytest.raises(KeyError):
        controller.command("format-disk", {})


def test_store_changes_are_picked_up_without_restart(shelf, tmp_path: Path) -> None:
    _controller, step, _now = shelf([WOMAN] * 3 + [None] * 20 + [WOMAN] * 3)
    first = next(d for d in (step() for _ in range(10)) if d is not None)
    assert first.items[0] == "SKU-w1"
    make_store(tmp_path / STORE_FILE, {"w1": 0})  # sold out, staff updated the admin page
    later = [d for d in (step() for _ in range(30)) if d is not None]
    assert later and later[0].items[0] == "SKU-w2"


def test_a_fresh_shelf_without_factor_file_ranks_with_its_catalogue_prior(tmp_path: Path) -> None:
    """Staff-entered products have no item id: the prior ranks them by sku, in memory, and a factor
    file installed later that does not know them leaves them ranked by the prior (never dropped)."""
    from device.shelf import FactorRankers

    db = open_db(tmp_path / STORE_FILE)
    db.table("products").insert_multiple(
        [
            {"sku": "W", "name": "Women Floral Kurta", "gender": "female", "price": 99900, "stock": 3, "slot": "A1"},
            {"sku": "M", "name": "Men Formal Shirt", "gender": "male", "price": 99900, "stock": 3, "slot": "A2"},
        ]
    )
    db.close()
    store = StoreView(tmp_path / STORE_FILE)
    store.refresh(force=True)
    assert set(store.candidates()) == {"W", "M"}
    rankers = FactorRankers(tmp_path / "factors.npz", store)
    assert rankers.describe()["in_memory_prior"] is True
    from smartshelf.core.types import Segment

    assert rankers.ranker().rank(Segment.parse("female/25-34"), n=1, candidates=["W", "M"])[0].item_id == "W"
    assert rankers.ranker().rank(Segment.parse("male/25-34"), n=1, candidates=["W", "M"])[0].item_id == "M"
    assert not list(tmp_path.glob("*.npz")), "the prior lives in memory only"
    make_factors(tmp_path / "factors.npz")  # a trained file is installed: switch without restart
    assert rankers.maybe_reload() is True
    described = rankers.describe()
    assert described["in_memory_prior"] is False
    assert described["coverage"]["prior"] == 2 and described["coverage"]["factor_file"] == 0
    assert set(rankers.ranker().model.item_ids) == {"W", "M"}
    assert rankers.ranker().rank(Segment.parse("male/25-34"), n=1, candidates=["W", "M"])[0].item_id == "M"


def test_a_failing_step_does_not_stop_the_loop(shelf) -> None:
    controller, _step, _ = shelf([WOMAN] * 3)
    calls = {"n": 0}
    real_detect = controller.detector.detect

    def flaky(frame: np.ndarray) -> list[Face]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient interpreter failure")
        return real_detect(frame)

    controller.detector.detect = flaky  # type: ignore[method-assign]
    stop = threading.Event()
    seen: list = []

    def on_step(decision) -> None:
        seen.append(decision)
        if len(seen) >= 6:
            stop.set()

    controller.config = controller.config.replace(camera=type(controller.config.camera)(fps=100.0))
    controller.run(stop, on_step=on_step)
    assert controller.stats.errors == 1
    assert len(seen) >= 6


def test_two_streams_detect_on_the_view_and_crop_from_the_full_frame(tmp_path: Path) -> None:
    """A Capture: the detector sees the small view, age/gender the full frame with the box scaled to it."""
    from smartshelf.core.types import Capture

    view = np.zeros((48, 64, 3), np.uint8)
    full = np.zeros((192, 256, 3), np.uint8)
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    class TwoStreamCamera(ScriptedCamera):
        def read(self) -> Capture:  # type: ignore[override]
            return Capture(view=view, full=full)

    class Faces(ScriptedFaces):
        def detect(self, frame: np.ndarray) -> list[Face]:
            seen.append(("detect", frame.shape))
            self.current = WOMAN
            return [Face((10, 8, 20, 24), 0.9, ((12.0, 14.0), (24.0, 14.0), (18.0, 20.0), (18.0, 26.0)))]

        def estimate(self, frame: np.ndarray, face: Face) -> Demographic:
            seen.append((frame.shape, face.box, face.keypoints[0]))
            return WOMAN

    class Refiner:
        def refine(self, frame: np.ndarray, face: Face) -> Face:
            seen.append(("refine", frame.shape, face.box))
            return Face((41, 33, 78, 94), 0.95, ((50.0, 57.0),))

        def close(self) -> None:
            pass

    make_factors(tmp_path / "factors.npz")
    make_store(tmp_path / STORE_FILE)
    config = Config(shelf=ShelfConfig(data_dir=tmp_path), visit=VisitConfig(min_frames=1, min_face_px=8))
    for refiner in (None, Refiner()):
        seen.clear()
        faces = Faces([])
        controller = ShelfController(
            config, camera=ReconnectingCamera(TwoStreamCamera(), clock=lambda: 0.0), presence=AlwaysPresent(),
            detector=faces, age_gender=faces, rankers=FactorRankers(config.factors_path),
            store=StoreView(tmp_path / STORE_FILE), indicator=RecordingIndicator(), screen=KioskScreen("test"),
            events=None, clock=lambda: 0.0, rng=random.Random(1), refiner=refiner,
        )
        decision = controller.step()
        assert seen[0] == ("detect", (48, 64, 3))
        if refiner is None:
            assert seen[1] == ((192, 256, 3), (40, 32, 80, 96), (48.0, 56.0)), "box and keypoints x4 in the full frame"
        else:
            assert seen[1] == ("refine", (192, 256, 3), (40, 32, 80, 96)), "the scaled face, refined on the full frame"
            assert seen[2] == ((192, 256, 3), (41, 33, 78, 94), (50.0, 57.0)), "the refined face is the one cropped"
        assert decision is not None and decision.segment_label == "female/25-34"


def test_a_face_the_full_frame_does_not_confirm_is_not_judged(tmp_path: Path) -> None:
    """Two streams with a refiner: the largest face the full frame confirms is the one judged; a frame
    whose faces are all unconfirmed (shadows, boxes) counts as a frame without a face."""
    from smartshelf.core.types import Capture

    view = np.zeros((48, 64, 3), np.uint8)
    full = np.zeros((192, 256, 3), np.uint8)
    shadow = Face((2, 2, 30, 30), 0.6)
    shopper = Face((40, 10, 16, 18), 0.9, ((44.0, 14.0),))
    faces_now: list[Face] = []
    cropped: list[tuple[int, int, int, int]] = []

    class TwoStreamCamera(ScriptedCamera):
        def read(self) -> Capture:  # type: ignore[override]
            return Capture(view=view, full=full)

    class Faces(ScriptedFaces):
        def detect(self, frame: np.ndarray) -> list[Face]:
            self.current = WOMAN
            return list(faces_now)

        def estimate(self, frame: np.ndarray, face: Face) -> Demographic:
            cropped.append(face.box)
            return WOMAN

    class Refiner:
        def refine(self, frame: np.ndarray, face: Face) -> Face | None:
            return None if face.box == shadow.scaled(4.0).box else face

        def close(self) -> None:
            pass

    make_factors(tmp_path / "factors.npz")
    make_store(tmp_path / STORE_FILE)
    config = Config(shelf=ShelfConfig(data_dir=tmp_path), visit=VisitConfig(min_frames=1, min_face_px=8))
    faces = Faces([])
    controller = ShelfController(
        config, camera=ReconnectingCamera(TwoStreamCamera(), clock=lambda: 0.0), presence=AlwaysPresent(),
        detector=faces, age_gender=faces, rankers=FactorRankers(config.factors_path),
        store=StoreView(tmp_path / STORE_FILE), indicator=RecordingIndicator(), screen=KioskScreen("test"),
        events=None, clock=lambda: 0.0, rng=random.Random(1), refiner=Refiner(),
    )
    faces_now[:] = [shadow]
    assert controller.step() is None and controller.stats.faces == 0 and cropped == []
    assert controller.visit is None, "no visit starts on a false face"
    faces_now[:] = [shadow, shopper]
    decision = controller.step()
    assert cropped == [shopper.scaled(4.0).box], "the shopper behind the false face is the one cropped"
    assert decision is not None and decision.segment_label == "female/25-34" and controller.stats.faces == 1


def test_the_idle_screen_shows_the_shelfs_best_sellers_in_stock(shelf, tmp_path: Path) -> None:
    """Nobody in front: the generic picks (no pairs) rather than an empty page; a sold-out product
    leaves the idle screen at the next reload, and the screen goes back to them after a visit."""
    controller, step, now = shelf([WOMAN] * 4 + [None] * 20)
    mode, items = (controller.screen.snapshot()[1][k] for k in ("mode", "items"))
    assert mode == "idle" and [i["sku"] for i in items] == ["SKU-g1", "SKU-w3"]  # the global vector's top 2
    assert all("pairs" not in i and i["slot"] and i["price"] == 1000 for i in items)

    make_store(tmp_path / STORE_FILE, {"g1": 0})  # g1 sells out
    now[0] += 2.0
    step()
    assert "SKU-g1" not in [i["sku"] for i in controller.screen.snapshot()[1]["items"]]
    modes = []
    for _ in range(24):
        step()
        modes.append(controller.screen.snapshot()[1]["mode"])
    assert "picks" in modes, "the shopper got picks"
    state = controller.screen.snapshot()[1]
    assert state["mode"] == "idle" and state["items"], "back to the best sellers after the shopper left"
