"""On-device inference: BlazeFace face detection and int8 age/gender estimation (TFLite).

Importing this package never imports the TFLite runtime; the factories below do, once per model.
Every model file is checked against ``models/manifest.json`` (sha256) before it is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from device.inference.runtime import MODELS_DIR, verify_model
from smartshelf.core.types import Demographic, Face, Frame

if TYPE_CHECKING:
    from device.inference.age_gender import AgeGenderModel
    from device.inference.detector import BlazeFaceDetector, CascadeDetector, FaceSearch, LandmarkRefiner

__all__ = [
    "DETECTOR_FILES",
    "MODELS_DIR",
    "AgeGender",
    "FaceDetector",
    "FaceRefiner",
    "create_age_gender",
    "create_detector",
    "create_refiner",
    "detector_files",
]

#: BlazeFace variant -> model file in the models directory.
DETECTOR_FILES: dict[str, str] = {
    "short_range": "face_detection_short_range.tflite",
    "full_range": "face_detection_full_range.tflite",
}
#: Detector variants that use more than one model file.
CASCADE_PARTS: tuple[str, ...] = ("short_range", "full_range")


def detector_files(variant: str, *, search: bool = False) -> tuple[str, ...]:
    """The model files a detector variant loads (``cascade``: both BlazeFace models; ``search`` adds
    short range)."""
    files = tuple(DETECTOR_FILES[v] for v in CASCADE_PARTS) if variant == "cascade" else (DETECTOR_FILES[variant],)
    if search and DETECTOR_FILES["short_range"] not in files:
        files = (*files, DETECTOR_FILES["short_range"])
    return files


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in a frame; largest face first."""

    def detect(self, frame: Frame) -> list[Face]: ...

    def close(self) -> None: ...


@runtime_checkable
class FaceRefiner(Protocol):
    """Places a face (scaled from the detection view) precisely in the full-resolution frame, or
    returns None when the full frame shows no face there (the view's detection was false)."""

    def refine(self, full: Frame, face: Face) -> Face | None: ...

    def close(self) -> None: ...


@runtime_checkable
class AgeGender(Protocol):
    """Estimates gender probability, age and confidence of one detected face."""

    def estimate(self, frame: Frame, face: Face) -> Demographic: ...

    def close(self) -> None: ...


def create_detector(
    variant: str = "short_range",
    *,
    models_dir: Path | None = None,
    score_threshold: float = 0.5,
    num_threads: int = 2,
    search: bool = False,
) -> BlazeFaceDetector | CascadeDetector | FaceSearch:
    """A verified BlazeFace detector (in a 640x480 view from a Pi camera: ``short_range`` for faces of
    ~80 px and more, within ~1 m; ``full_range`` down to ~48-60 px, ~1.3-1.7 m; ``cascade``: short range,
    then full range on frames where it finds nothing; figures from ``tools.visit_eval range``). ``search``: wrapped in
    a :class:`~device.inference.detector.FaceSearch` (its own short-range model looks around the faces
    it follows and on two tiles of the view per frame)."""
    from device.inference.detector import BlazeFaceDetector, CascadeDetector, FaceSearch
    from smartshelf.core.errors import ConfigError

    options: dict[str, Any] = {"models_dir": models_dir, "score_threshold": score_threshold, "num_threads": num_threads}
    if search:
        inner, short = _open_both(variant, "short_range", options)
        assert isinstance(short, BlazeFaceDetector)
        short.fallback_pad = 0.0  # one inference per look
        return FaceSearch(inner, short)
    if variant == "cascade":
        short, full = _open_both("short_range", "full_range", options)
        assert isinstance(short, BlazeFaceDetector) and isinstance(full, BlazeFaceDetector)
        short.fallback_pad = 0.0  # a miss goes to full range at once, not to a padded second try
        return CascadeDetector(short, full)
    if variant not in DETECTOR_FILES:
        raise ConfigError(
            f"unknown face detector variant {variant!r}; expected one of {sorted(DETECTOR_FILES) + ['cascade']}"
        )
    path = Path(models_dir or MODELS_DIR) / DETECTOR_FILES[variant]
    verify_model(path)
    return BlazeFaceDetector(
        path,
        variant=variant,  # type: ignore[arg-type]
        score_threshold=score_threshold,
        num_threads=num_threads,
    )


def _open_both(first: str, second: str, options: dict[str, Any]) -> tuple[Any, Any]:
    """Two detectors; the first is closed again when the second cannot be opened."""
    one = create_detector(first, **options)
    try:
        return one, create_detector(second, **options)
    except BaseException:
        one.close()
        raise


def create_refiner(
    *, models_dir: Path | None = None, score_threshold: float = 0.5, num_threads: int = 2
) -> LandmarkRefiner:
    """A :class:`~device.inference.detector.LandmarkRefiner` on its own short-range BlazeFace."""
    from device.inference.detector import BlazeFaceDetector, LandmarkRefiner

    detector = create_detector(
        "short_range", models_dir=models_dir, score_threshold=score_threshold, num_threads=num_threads
    )
    assert isinstance(detector, BlazeFaceDetector)
    return LandmarkRefiner(detector)


def create_age_gender(
    model: str = "age_gender_int8.tflite",
    *,
    models_dir: Path | None = None,
    num_threads: int = 2,
    flip_average: bool = True,
) -> AgeGenderModel:
    """A verified age/gender model (the int8 model by default); see :class:`AgeGenderModel`."""
    from device.inference.age_gender import AgeGenderModel

    path = Path(models_dir or MODELS_DIR) / model
    verify_model(path)
    return AgeGenderModel(path, num_threads=num_threads, flip_average=flip_average)
