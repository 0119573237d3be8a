"""The shelf's decision loop: ``ShelfController.step()`` runs one frame through the pipeline.

camera -> presence -> face detector -> age/gender -> visit aggregation -> gate -> ranker
-> LEDs + screen -> anonymous event. ``step()`` returns the Decision it made, or None. All parts are
injected (Protocols), so tests drive it with fakes and a fake clock; ``run(stop)`` is a thin loop.
Admin commands (identify, pause, reload) arrive on a queue and run on the loop's own thread.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from device.display.leds import Indicator
from device.display.screen import Screen
from device.events import EventLog, event_from_decision
from device.inference import AgeGender, FaceDetector, FaceRefiner
from device.inventory import Product, StoreView
from device.recommend.mixture import segment_mixture
from device.recommend.ranker import Ranker
from device.sensors.camera import ReconnectingCamera
from device.sensors.presence import PresenceSensor
from device.visit import Gate, Observation, Visit, combine, gate
from smartshelf.core.config import Config
from smartshelf.core.types import Capture, Decision, Face, Recommendation

logger = logging.getLogger(__name__)


class RankerSource(Protocol):
    """Gives the current ranker (the factor file may be replaced while running)."""

    def ranker(self) -> Ranker: ...

    def maybe_reload(self) -> bool: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class LoopStats:
    frames: int = 0
    faces: int = 0
    decisions: int = 0
    errors: int = 0
    last_decision_at: float | None = None
    fps: float = 0.0
    _window: list[float] = field(default_factory=list)

    def tick(self, now: float) -> None:
        self.frames += 1
        self._window.append(now)
        if len(self._window) > 30:
            del self._window[0]
        if len(self._window) >= 2 and self._window[-1] > self._window[0]:
            self.fps = (len(self._window) - 1) / (self._window[-1] - self._window[0])


#: Faces of one frame checked on the full frame, largest first (one refiner inference each).
CONFIRM_AT_MOST = 2


def first_confirmed(faces: Sequence[Face], refine: Callable[[Face], Face | None]) -> tuple[Face, Face] | None:
    """The first of the first ``CONFIRM_AT_MOST`` faces that ``refine`` confirms (returns a face for),
    with what it returned; None when it confirms none (they were false detections)."""
    for face in faces[:CONFIRM_AT_MOST]:
        refined = refine(face)
        if refined is not None:
            return face, refined
        logger.debug("a face at %s was not confirmed on the full frame", face.box)
    return None

_COMMAND_KEYS = {"identify": {"slot", "seconds"}, "pause": {"paused"}, "reload": set()}
_MAX_IDENTIFY_S = 60.0


def validate_command(name: str, body: Any) -> dict[str, Any]:
    """Check a control command's body strictly (ValueError/TypeError name the key); nothing else reaches the loop."""
    if not isinstance(body, dict):
        raise TypeError(f"{name}: the body must be a JSON object")
    unknown = sorted(set(body) - _COMMAND_KEYS[name])
    if unknown:
        raise ValueError(f"{name}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_COMMAND_KEYS[name])) or 'none'}")
    if name == "identify":
        slot = body.get("slot")
        if not isinstance(slot, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", slot):
            raise ValueError(f"identify: slot = {str(slot)[:40]!r} is not a slot id such as A1")
        seconds = body.get("seconds", 5)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= _MAX_IDENTIFY_S:
            raise ValueError(f"identify: seconds = {str(seconds)[:40]} must be a number in (0, {_MAX_IDENTIFY_S:g}]")
    elif name == "pause" and not isinstance(body.get("paused", True), bool):
        raise ValueError(f"pause: paused = {str(body.get('paused'))[:40]!r} must be true or false")
    return body


class ShelfController:
    def __init__(
        self,
        config: Config,
        *,
        camera: ReconnectingCamera,
        presence: PresenceSensor,
        detector: FaceDetector,
        age_gender: AgeGender,
        rankers: RankerSource,
        store: StoreView,
        indicator: Indicator,
        screen: Screen,
        events: EventLog | None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        refiner: FaceRefiner | None = None,
    ) -> None:
        self.config = config
        self.refiner = refiner
        self.camera = camera
        self.presence = presence
        self.detector = detector
        self.age_gender = age_gender
        self.rankers = rankers
        self.store = store
        self.indicator = indicator
        self.screen = screen
        self.events = events
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.stats = LoopStats()
        self.visit: Visit | None = None
        self.paused = False
        self.current: Decision | None = None
        self._visit_counter = 0
        self._commands: queue.Queue[tuple[str, dict[str, Any], queue.Queue[dict[str, Any]]]] = queue.Queue()
        self._next_reload = 0.0
        self.store.refresh(force=True)
        self.indicator.set_slots(self.store.slot_pins)
        self.indicator.idle()
        self.screen.idle(self.best_sellers())

    # ------------------------------------------------------------------ admin commands
    def command(self, name: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Thread-safe: queue a command for the loop thread and wait for its answer."""
        if name not in ("identify", "pause", "reload"):
            raise KeyError(f"unknown command {name!r}; expected identify, pause or reload")
        body = validate_command(name, body)
        reply: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        self._commands.put((name, body, reply))
        try:
            return reply.get(timeout=timeout)
        except queue.Empty:
            return {"ok": False, "error": "the device loop did not answer in time"}

    def _run_commands(self) -> None:
        while True:
            try:
                name, body, reply = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                reply.put(self._apply_command(name, body))
            except Exception as exc:  # noqa: BLE001 - report any failure back to the caller
                logger.warning("command %s failed: %s", name, exc)
                reply.put({"ok": False, "error": str(exc)})

    def _apply_command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name == "identify":
            slot = str(body.get("slot") or "")
            seconds = float(body.get("seconds", 5))  # bounded by validate_command
            if slot not in self.store.slot_pins:
                raise ValueError(f"unknown slot {slot!r}; known slots: {', '.join(sorted(self.store.slot_pins))}")
            self.indicator.identify(slot, seconds)
            return {"ok": True, "slot": slot}
        if name == "pause":
            self.set_paused(body.get("paused", True) is True)
            return {"ok": True, "paused": self.paused}
        self.reload(force=True)
        return {"ok": True}

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        logger.info("camera %s by staff", "paused" if paused else "resumed")
        self._end_visit()
        if paused:
            self.camera.close()  # really off: no frame is read until staff resume it
            self.screen.notice("The camera of this shelf is paused.")
        else:
            self.screen.idle(self.best_sellers())

    def reload(self, *, force: bool = False) -> None:
        changed = self.store.refresh(force=force)
        if changed:
            self.indicator.set_slots(self.store.slot_pins)
        changed = self.rankers.maybe_reload() or changed
        if changed and self.visit is None and not self.paused:
            self.screen.idle(self.best_sellers())  # stock or prices changed under the idle screen

    def best_sellers(self) -> list[dict[str, Any]]:
        """What the idle screen shows: the shelf's most popular products in stock (the generic picks,
        without pairs). Empty when nothing can be ranked; a failure is logged, never raised."""
        candidates = self.store.candidates()
        if not candidates:
            return []
        try:
            picks = self.rankers.ranker().rank(
                None, n=self.config.recommend.top_n, candidates=list(candidates),
                diversity=self.config.recommend.diversity)
        except Exception:  # the idle screen must not stop the shelf
            logger.warning("cannot rank best sellers for the idle screen", exc_info=True)
            return []
        return [candidates[r.item_id].screen_fields() for r in picks if r.item_id in candidates]

    # ------------------------------------------------------------------ the loop
    def step(self) -> Decision | None:
        self._run_commands()
        now = self.clock()
        if now >= self._next_reload:
            self.reload()
            self._next_reload = now + 1.0
        if self.paused:
            return None
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        frame = self.camera.read()
        timings["capture"] = (time.perf_counter() - t0) * 1000
        if frame is not None:
            self.stats.tick(now)
        if frame is None:
            if self.visit is not None and self.visit.gone(now, self.config.visit):
                self._end_visit()
            return None
        capture = frame if isinstance(frame, Capture) else Capture(frame)
        if not self.presence.present(capture.view, now):
            if self.visit is not None and self.visit.gone(now, self.config.visit):
                self._end_visit()
            return None
        return self._process(capture, now, timings, t0)

    def _process(self, capture: Capture, now: float, timings: dict[str, float], t0: float) -> Decision | None:
        t = time.perf_counter()
        # Detection and the visit's face sizes are in view pixels; the crop comes from the full frame.
        faces = [f for f in self.detector.detect(capture.view) if f.box[2] >= self.config.visit.min_face_px]
        timings["detect"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        found = self._first_face(faces, capture)
        if found is None:
            if self.visit is not None and self.visit.gone(now, self.config.visit):
                self._end_visit()
            return None
        self.stats.faces += 1
        face, crop_face = found
        estimate = self.age_gender.estimate(capture.crop_frame, crop_face)
        timings["classify"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        if self.visit is None or self.visit.gone(now, self.config.visit):
            self._end_visit()
            self._visit_counter += 1
            share = self.store.generic_share
            control = self.rng.random() < (self.config.recommend.generic_share if share is None else share)
            self.visit = Visit(self._visit_counter, started=now, control=control)
            logger.debug("visit %d started", self._visit_counter)
        visit = self.visit
        x, y, w, h = face.box
        visit.add(Observation(estimate, w, now, centre=(x + w / 2, y + h / 2)))
        estimate = combine(visit.observations, self.config.visit.min_frames, now=now)
        outcome = gate(estimate, self.config.visit, control=visit.control)
        timings["aggregate"] = (time.perf_counter() - t) * 1000
        if not visit.should_decide(outcome.label, self.config.visit, outcome.reason, now):
            return None
        return self._decide(visit, outcome, timings, t0)

    def _first_face(self, faces: list[Face], capture: Capture) -> tuple[Face, Face] | None:
        """The face to judge (in view pixels) and the face to crop (in the crop frame's pixels).

        With two streams and a refiner, the largest face the full frame confirms (:func:`first_confirmed`:
        a face the refiner does not find again was a false detection); else the largest face, scaled to
        the crop frame."""
        full, refiner = capture.full, self.refiner
        if full is None or refiner is None:
            return (faces[0], faces[0].scaled(capture.scale)) if faces else None
        return first_confirmed(faces, lambda face: refiner.refine(full, face.scaled(capture.scale)))

    def _decide(self, visit: Visit, outcome: Gate, timings: dict[str, float], t0: float) -> Decision:
        t = time.perf_counter()
        candidates = self.store.candidates()
        products: list[Product] = []
        screen_items: list[dict[str, Any]] = []
        if candidates:
            ranker = self.rankers.ranker()
            picks = ranker.rank(
                outcome.segment,
                n=self.config.recommend.top_n,
                candidates=list(candidates),
                diversity=self.config.recommend.diversity,
                mixture=self._mixture(outcome),
            )
            products = [candidates[r.item_id] for r in picks]
            screen_items = [self._screen_item(p, ranker, candidates, picks) for p in products]
        timings["recommend"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        slots = tuple(dict.fromkeys(p.slot for p in products if p.slot is not None))
        if products:
            self.indicator.show(slots)
            self.screen.show(
                {
                    "segment": outcome.label,
                    "personalised": outcome.segment is not None,
                    "items": screen_items,
                }
            )
        timings["display"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        reason = outcome.reason if products else "no_stock"
        decision = Decision(
            time=self.wall_clock(),
            visit_id=visit.id,
            segment=outcome.segment,
            confidence=outcome.estimate.confidence,
            reason=reason,
            items=tuple(p.sku for p in products),
            slots=slots,
            timings_ms=timings,
        )
        visit.decided(outcome.label)
        self.current = decision
        self.stats.decisions += 1
        self.stats.last_decision_at = decision.time
        if self.events is not None:
            variant = "control" if visit.control else "personalised"
            self.events.record(event_from_decision(decision, variant))
        logger.debug(
            "decision visit=%d segment=%s conf=%.2f items=%s timings=%s",
            visit.id, decision.segment_label, decision.confidence, decision.items,
            {k: round(v, 2) for k, v in timings.items()},
        )
        return decision

    def _mixture(self, outcome: Gate) -> dict[str, float] | None:
        """The segments this personalised estimate may belong to, weighted (None: rank for the segment)."""
        if outcome.segment is None or not self.config.recommend.blend_segments:
            return None
        e = outcome.estimate
        mixture = segment_mixture(e.p_female, e.age, e.age_std, min_age=self.config.visit.min_age)
        logger.debug("segment mixture %s", {k: round(v, 2) for k, v in mixture.items()})
        return mixture

    def _screen_item(
        self, product: Product, ranker: Ranker, candidates: dict[str, Product], picks: list[Recommendation]
    ) -> dict[str, Any]:
        item = product.screen_fields()
        pairs_n = self.config.recommend.pairs_n
        if pairs_n:
            picked = {r.item_id for r in picks}
            others = [i for i in candidates if i not in picked]
            item["pairs"] = [
                {"sku": candidates[r.item_id].sku, "name": candidates[r.item_id].name, "slot": candidates[r.item_id].slot}
                for r in ranker.pairs_with(product.sku, n=pairs_n, candidates=others)
            ]
        return item

    def _end_visit(self) -> None:
        if self.visit is None:
            return
        logger.debug("visit %d ended after %d decision(s)", self.visit.id, self.visit.decisions)
        shown = self.visit.decisions > 0
        self.visit = None
        self.current = None
        if shown:
            self.indicator.idle()
            if not self.paused:
                self.screen.idle(self.best_sellers())

    def run(self, stop: threading.Event, *, on_step: Callable[[Decision | None], None] | None = None) -> None:
        """Step until ``stop`` is set, paced to camera.fps; a failing step is logged and the loop goes on."""
        period = 1.0 / self.config.camera.fps
        while not stop.is_set():
            started = time.monotonic()
            decision: Decision | None = None
            try:
                decision = self.step()
            except Exception:
                self.stats.errors += 1
                logger.exception("step failed; continuing")
            if on_step is not None:
                on_step(decision)
            stop.wait(max(0.0, period - (time.monotonic() - started)))


__all__ = ["LoopStats", "RankerSource", "ShelfController"]
