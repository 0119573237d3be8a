"""Pure visit logic: combine per-frame estimates into one per shopper, gate it, decide when to revise.

No I/O and no clock of its own: every function takes ``now`` so tests drive it with plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from smartshelf.core.config import VisitConfig
from smartshelf.core.types import Demographic, Segment

#: Faces this wide (pixels) or wider get full weight; smaller faces count less.
FULL_WEIGHT_FACE_PX = 120
#: An estimate this many seconds old counts half as much as a fresh one.
RECENCY_HALF_LIFE_S = 1.5
#: A face moving faster than this (face widths per second) is someone walking, not standing at the shelf:
#: its estimates count less (motion blur, turned head) and the visit is less sure until they stop.
STEADY_SPEED = 1.0
#: Speed is measured over this much time.
SPEED_WINDOW_S = 0.3


@dataclass(frozen=True, slots=True)
class Observation:
    estimate: Demographic
    face_px: int
    time: float
    centre: tuple[float, float] | None = None  # face centre in the frame (pixels)
    speed: float = 0.0  # face widths per second over the last SPEED_WINDOW_S (set by Visit.add)

    @property
    def steadiness(self) -> float:
        """1 for a shopper standing still, falling towards 0 the faster the face moves."""
        return 1.0 / (1.0 + max(0.0, self.speed - STEADY_SPEED))

    @property
    def weight(self) -> float:
        size = min(1.0, self.face_px / FULL_WEIGHT_FACE_PX)
        return max(self.estimate.confidence, 0.05) * size * self.steadiness


@dataclass(frozen=True, slots=True)
class Gate:
    """The gated outcome: a segment to personalise for, or None with the reason why not."""

    segment: Segment | None
    reason: str  # personalised | low_confidence | minor | ab_control
    estimate: Demographic

    @property
    def label(self) -> str:
        return str(self.segment) if self.segment is not None else "generic"


def combine(observations: list[Observation], min_frames: int, *, now: float | None = None) -> Demographic:
    """Weighted (confidence x face size x steadiness x recency) mean of the estimates, with a combined
    confidence.

    The confidence is the weighted mean per-frame confidence, lowered when frames disagree on
    gender, when there are fewer frames than ``min_frames`` and while the shopper is walking rather
    than standing (mean steadiness). With ``now``, older estimates fade with a half-life of
    RECENCY_HALF_LIFE_S.
    """
    if not observations:
        raise ValueError("combine() needs at least one observation")
    if now is None:
        weights = [o.weight for o in observations]
    else:
        weights = [o.weight * 0.5 ** (max(0.0, now - o.time) / RECENCY_HALF_LIFE_S) for o in observations]
    unsteady = [w / o.steadiness for w, o in zip(weights, observations)]  # the same without steadiness
    steadiness = sum(weights) / sum(unsteady)
    total = sum(weights)
    p_female = sum(w * o.estimate.p_female for w, o in zip(weights, observations)) / total
    age = sum(w * o.estimate.age for w, o in zip(weights, observations)) / total
    age_var = sum(w * ((o.estimate.age - age) ** 2 + o.estimate.age_std**2) for w, o in zip(weights, observations))
    age_std = math.sqrt(age_var / total)
    mean_conf = sum(w * o.estimate.confidence for w, o in zip(weights, observations)) / total
    p_spread = math.sqrt(sum(w * (o.estimate.p_female - p_female) ** 2 for w, o in zip(weights, observations)) / total)
    agreement = max(0.0, 1.0 - p_spread)
    coverage = min(1.0, len(observations) / max(1, min_frames))
    confidence = mean_conf * agreement * coverage * steadiness
    return Demographic(p_female=p_female, age=age, confidence=confidence, age_std=age_std)


def gate(estimate: Demographic, cfg: VisitConfig, *, control: bool = False) -> Gate:
    """Minors and low-confidence estimates get non-personalised picks (and are recorded as such)."""
    if estimate.confidence < cfg.min_confidence:
        return Gate(None, "low_confidence", estimate)
    if estimate.age < cfg.min_age:
        return Gate(None, "minor", estimate)
    if control:
        return Gate(None, "ab_control", estimate)
    return Gate(estimate.segment, "personalised", estimate)


@dataclass
class Visit:
    """One shopper in front of the shelf."""

    id: int
    started: float
    control: bool = False
    observations: list[Observation] = field(default_factory=list)
    last_seen: float = 0.0
    decisions: int = 0
    decided_label: str | None = None
    observations_at_decision: int = 0

    def add(self, observation: Observation) -> None:
        if observation.centre is not None:
            # Speed over the last SPEED_WINDOW_S, not frame to frame: the detector's box jitters by a few
            # pixels every frame, which at 30 fps would look like walking; a walk adds up, jitter does not.
            earlier = [
                o
                for o in self.observations
                if o.centre is not None and 0 < observation.time - o.time <= SPEED_WINDOW_S
            ]
            if earlier:
                ref = earlier[0]
                moved = math.dist(ref.centre, observation.centre) / max(observation.face_px, 1)  # type: ignore[arg-type]
                observation = replace(observation, speed=moved / (observation.time - ref.time))
                if len(self.observations) == 1:  # the visit's first face had nothing to measure against
                    self.observations[0] = replace(self.observations[0], speed=observation.speed)
        self.observations.append(observation)
        self.last_seen = observation.time
        # A visit can last minutes; recent frames describe the shopper best.
        if len(self.observations) > 60:
            del self.observations[:-60]
            self.observations_at_decision = min(self.observations_at_decision, 60)

    def should_decide(
        self, gate_label: str, cfg: VisitConfig, gate_reason: str = "personalised", now: float | None = None
    ) -> bool:
        """First decision after ``min_frames`` (a low-confidence one only once ``decide_within_s`` of
        the visit has passed); later only a changed segment, with fresh evidence, at most
        ``max_revisions`` times, and never a downgrade to generic for low confidence alone."""
        if len(self.observations) < cfg.min_frames:
            return False
        if self.decisions == 0:
            if gate_reason == "low_confidence" and now is not None:
                return now - self.started >= cfg.decide_within_s
            return True
        if gate_label == self.decided_label or self.decisions > cfg.max_revisions:
            return False
        if gate_reason == "low_confidence":
            return False  # conflicting frames mid-visit: keep what is shown rather than flip to generic
        return len(self.observations) - self.observations_at_decision >= cfg.min_frames

    def decided(self, gate_label: str) -> None:
        self.decisions += 1
        self.decided_label = gate_label
        self.observations_at_decision = len(self.observations)

    def gone(self, now: float, cfg: VisitConfig) -> bool:
        return now - self.last_seen > cfg.leave_after_s
