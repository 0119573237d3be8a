"""Small frozen dataclasses shared by the whole pipeline. Pure: no I/O, no hardware."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: A camera frame: H x W x 3, uint8, RGB order.
Frame = npt.NDArray[np.uint8]

#: Age brackets used everywhere (segments, events, reports). Lower bounds in years.
AGE_BRACKETS: tuple[str, ...] = ("0-12", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
BRACKET_LOWER: tuple[int, ...] = (0, 13, 18, 25, 35, 45, 55, 65)


class Gender(str, enum.Enum):
    FEMALE = "female"
    MALE = "male"


GENDERS: tuple[Gender, ...] = (Gender.FEMALE, Gender.MALE)


def age_bracket(age: float) -> str:
    """Bracket label of an age in years (negative ages are treated as 0)."""
    index = 0
    for i, lower in enumerate(BRACKET_LOWER):
        if age >= lower:
            index = i
    return AGE_BRACKETS[index]


def bracket_index(label: str) -> int:
    """Position of a bracket label in AGE_BRACKETS; ValueError names the label if unknown."""
    try:
        return AGE_BRACKETS.index(label)
    except ValueError:
        raise ValueError(f"unknown age bracket {label!r}; expected one of {', '.join(AGE_BRACKETS)}") from None


def bracket_midpoint(label: str) -> float:
    """A representative age for a bracket (used when only the bracket is known)."""
    i = bracket_index(label)
    upper = BRACKET_LOWER[i + 1] - 1 if i + 1 < len(BRACKET_LOWER) else 75
    return (BRACKET_LOWER[i] + upper) / 2.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A demographic segment: gender x age bracket. ``str(seg)`` is ``"female/25-34"``."""

    gender: Gender
    bracket: str

    def __post_init__(self) -> None:
        bracket_index(self.bracket)

    def __str__(self) -> str:
        return f"{self.gender.value}/{self.bracket}"

    @classmethod
    def parse(cls, text: str) -> Segment:
        try:
            gender, bracket = text.split("/", 1)
            return cls(Gender(gender), bracket)
        except ValueError:
            raise ValueError(f"bad segment {text!r}; expected e.g. 'female/25-34'") from None

    @classmethod
    def of(cls, gender: Gender | str, age: float) -> Segment:
        return cls(Gender(gender), age_bracket(age))


def all_segments() -> list[Segment]:
    return [Segment(g, b) for g in GENDERS for b in AGE_BRACKETS]


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face in frame pixel coordinates.

    ``box`` is (x, y, w, h); ``keypoints`` are (x, y) pairs in BlazeFace order:
    right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion
    (right/left from the subject's point of view), possibly empty for detectors without landmarks.
    """

    box: tuple[int, int, int, int]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    def scaled(self, factor: float) -> Face:
        """The same face in a frame ``factor`` times larger (box and keypoints)."""
        if factor == 1.0:
            return self
        x, y, w, h = self.box
        box = (round(x * factor), round(y * factor), round(w * factor), round(h * factor))
        return Face(box, self.score, tuple((px * factor, py * factor) for px, py in self.keypoints))


@dataclass(frozen=True, slots=True)
class Capture:
    """One moment from the camera in two sizes: ``view`` for the detector and ``full`` for the face crop.

    picamera2 delivers both from one sensor (the ``lores`` and ``main`` streams); a replayed or OpenCV
    source delivers ``full`` and a downscaled ``view``. ``full`` is None when there is one stream only.
    Both show the same field of view, so a box in ``view`` maps to ``full`` by ``scale``.
    """

    view: Frame
    full: Frame | None = None

    @property
    def scale(self) -> float:
        """``full`` pixels per ``view`` pixel (1.0 with one stream)."""
        if self.full is None:
            return 1.0
        return self.full.shape[1] / self.view.shape[1]

    @property
    def crop_frame(self) -> Frame:
        """The frame faces are cropped from: ``full`` when there is one, else ``view``."""
        return self.view if self.full is None else self.full


@dataclass(frozen=True, slots=True)
class Demographic:
    """One estimate of one face: gender probability, age in years, and a confidence in [0, 1]."""

    p_female: float
    age: float
    confidence: float
    age_std: float = 0.0

    @property
    def gender(self) -> Gender:
        return Gender.FEMALE if self.p_female >= 0.5 else Gender.MALE

    @property
    def age_bracket(self) -> str:
        return age_bracket(self.age)

    @property
    def segment(self) -> Segment:
        return Segment(self.gender, self.age_bracket)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A ranked product pick. ``item_id`` is the factor-file id; ``sku``/``slot`` come from the inventory."""

    item_id: str
    score: float
    sku: str | None = None
    slot: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the shelf decided for one visit at one moment (also the anonymous event that is logged)."""

    time: float
    visit_id: int
    segment: Segment | None  # None: non-personalised ("generic") picks
    confidence: float
    reason: str  # "personalised", "low_confidence", "minor", "ab_control", "no_face"...
    items: tuple[str, ...]  # skus, best first
    slots: tuple[str, ...]  # slots lit, same order
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def segment_label(self) -> str:
        return str(self.segment) if self.segment is not None else "generic"
