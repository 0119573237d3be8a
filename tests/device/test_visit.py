"""Visit aggregation, gating and revision rules (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from device.visit import Observation, Visit, combine, gate
from smartshelf.core.config import VisitConfig
from smartshelf.core.types import Demographic, Gender

CFG = VisitConfig(min_frames=3, min_confidence=0.5, min_age=18, leave_after_s=2.0, max_revisions=1)


def obs(p_female: float, age: float, conf: float = 0.9, px: int = 120, t: float = 0.0) -> Observation:
    return Observation(Demographic(p_female=p_female, age=age, confidence=conf), px, t)


def test_combine_weights_confident_large_faces_more() -> None:
    big_sure = obs(0.95, 30, conf=0.95, px=160)
    small_unsure = obs(0.05, 60, conf=0.2, px=40)
    est = combine([big_sure, small_unsure], min_frames=1)
    assert est.gender is Gender.FEMALE
    assert 30 < est.age < 40


def test_combine_lowers_confidence_when_frames_disagree_or_are_few() -> None:
    agree = combine([obs(0.9, 30), obs(0.9, 31), obs(0.9, 29)], min_frames=3)
    disagree = combine([obs(0.95, 30), obs(0.05, 30), obs(0.95, 30)], min_frames=3)
    few = combine([obs(0.9, 30)], min_frames=3)
    assert agree.confidence > disagree.confidence
    assert agree.confidence > few.confidence
    assert few.confidence == pytest.approx(agree.confidence / 3, rel=0.05)


def test_combine_needs_observations() -> None:
    with pytest.raises(ValueError):
        combine([], min_frames=1)


def test_gate_minor_low_confidence_control_and_personalised() -> None:
    adult = Demographic(p_female=0.1, age=40, confidence=0.8)
    assert gate(adult, CFG).label == "male/35-44"
    assert gate(adult, CFG).reason == "personalised"
    assert gate(Demographic(0.1, 15, 0.9), CFG).segment is None
    assert gate(Demographic(0.1, 15, 0.9), CFG).reason == "minor"
    assert gate(Demographic(0.1, 40, 0.3), CFG).reason == "low_confidence"
    assert gate(adult, CFG, control=True).reason == "ab_control"
    assert gate(adult, CFG, control=True).label == "generic"


def test_visit_decides_after_min_frames_and_revises_at_most_max_revisions() -> None:
    visit = Visit(1, started=0.0)
    for t in range(2):
        visit.add(obs(0.9, 30, t=t))
    assert not visit.should_decide("female/25-34", CFG)
    visit.add(obs(0.9, 30, t=2))
    assert visit.should_decide("female/25-34", CFG)
    visit.decided("female/25-34")
    # Same segment: no new decision.
    visit.add(obs(0.9, 30, t=3))
    assert not visit.should_decide("female/25-34", CFG)
    # A different segment needs min_frames of fresh evidence.
    assert not visit.should_decide("female/35-44", CFG)
    visit.add(obs(0.9, 40, t=4))
    visit.add(obs(0.9, 40, t=5))
    assert visit.should_decide("female/35-44", CFG)
    visit.decided("female/35-44")
    for t in range(6, 12):
        visit.add(obs(0.9, 50, t=t))
    assert not visit.should_decide("female/45-54", CFG), "max_revisions = 1 reached"


def test_recent_estimates_count_more() -> None:
    old_woman = [obs(0.95, 30, t=0.0) for _ in range(3)]
    new_man = [obs(0.05, 30, t=3.0) for _ in range(3)]
    assert combine(old_woman + new_man, 3).p_female == pytest.approx(0.5)
    assert combine(old_woman + new_man, 3, now=3.0).gender is Gender.MALE


def test_low_confidence_never_downgrades_a_shown_decision() -> None:
    visit = Visit(1, started=0.0)
    for t in range(3):
        visit.add(obs(0.9, 30, t=t))
    visit.decided("female/25-34")
    for t in range(3, 9):
        visit.add(obs(0.5, 30, t=t))
    assert not visit.should_decide("generic", CFG, "low_confidence")
    assert visit.should_decide("generic", CFG, "minor"), "a minor always falls back to generic picks"


def test_a_low_confidence_first_decision_waits_for_decide_within() -> None:
    cfg = VisitConfig(min_frames=3, min_confidence=0.5, decide_within_s=1.0)
    visit = Visit(1, started=10.0)
    for t in (10.0, 10.1, 10.2):
        visit.add(obs(0.6, 30, conf=0.2, t=t))
    assert not visit.should_decide("generic", cfg, "low_confidence", now=10.2)
    assert visit.should_decide("female/25-34", cfg, "personalised", now=10.2), "confident: decide at once"
    assert visit.should_decide("generic", cfg, "minor", now=10.2), "a minor gets generic picks at once"
    assert visit.should_decide("generic", cfg, "low_confidence", now=11.0)


def test_visit_gone_after_leave_time() -> None:
    visit = Visit(1, started=0.0)
    visit.add(obs(0.9, 30, t=10.0))
    assert not visit.gone(11.9, CFG)
    assert visit.gone(12.1, CFG)


def _walk(visit: Visit, p_female: float, xs: list[float], t0: float, fps: float = 10.0) -> None:
    for i, x in enumerate(xs):
        est = Demographic(p_female=p_female, age=30, confidence=0.8)
        visit.add(Observation(est, 80, t0 + i / fps, centre=(x, 200.0)))


def test_speed_is_face_widths_per_second_between_a_visits_faces() -> None:
    visit = Visit(1, started=0.0)
    _walk(visit, 0.9, [100, 122, 144], t0=0.0)  # 22 px per frame at 10 fps, 80 px faces
    assert visit.observations[1].speed == pytest.approx(22 / 80 * 10)
    assert visit.observations[0].speed == visit.observations[1].speed  # the first face had no reference
    assert visit.observations[2].speed == pytest.approx(44 / 80 * 10 / 2)  # over the 0.3 s window
    assert visit.observations[2].steadiness < 0.5
    still = Visit(2, started=0.0)
    _walk(still, 0.9, [300, 302, 299], t0=0.0)
    assert all(o.steadiness == 1.0 for o in still.observations)


def test_a_walking_shopper_is_less_certain_and_counts_less_than_a_standing_one() -> None:
    walking, standing = Visit(1, started=0.0), Visit(2, started=0.0)
    _walk(walking, 0.9, [100, 125, 150, 175], t0=0.0)
    _walk(standing, 0.9, [300, 301, 300, 302], t0=0.0)
    assert combine(walking.observations, 3).confidence < 0.5 * combine(standing.observations, 3).confidence
    # Six frames walking in (estimates say male), then three standing (female): the standing frames
    # decide; counted as if everybody stood still, the walking frames would outvote them.
    visit = Visit(3, started=0.0)
    _walk(visit, 0.1, [100, 125, 150, 175, 200, 225, 250, 275], t0=0.0)
    _walk(visit, 0.9, [300, 301, 300, 302, 301], t0=0.8)
    assert visit.observations[0].steadiness < 0.5, "the first face takes the speed measured from the second"
    assert combine(visit.observations, 3, now=1.2).gender is Gender.FEMALE
    as_if_still = [replace(o, speed=0.0) for o in visit.observations]
    assert combine(as_if_still, 3, now=1.2).gender is Gender.MALE
