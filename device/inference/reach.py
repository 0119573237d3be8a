"""How far away this camera finds and personalises faces, from its resolution and field of view.

A face's BlazeFace box is about ``FACE_BOX_M`` wide (2.4 eye distances, ``align.EYE_TO_FACE``, of an
adult's 63 mm), so at distance d a camera of ``width`` pixels and horizontal field of view ``hfov``
shows it ``focal_px * FACE_BOX_M / d`` pixels wide, with ``focal_px = width / 2 / tan(hfov / 2)``
(Pi Camera Module v2 at 640x480: 80 px at 1 m, 53 px at 1.5 m, 40 px at 2 m).

The pixel limits below are measured, not assumed: ``python -m tools.visit_eval range --split test``
pastes test-split faces into 1280x960 frames at each size and runs the device's detectors on the 640x480
view and the int8 model on crops from the view and from the full frame (docs/vision-at-distance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smartshelf.core.config import CameraConfig

#: Width of a face's BlazeFace box in metres (2.4 x 63 mm eye distance).
FACE_BOX_M = 0.15
#: Smallest face (box width, detection-view pixels) each detector finds in at least 75% of frames (a
#: shopper who stands still for a second gives the visit ten frames; three faces are enough).
FIND_PX: dict[str, int] = {"short_range": 80, "full_range": 48, "cascade": 48}
#: The same with ``models.search`` (any detector): 95% found within 9 frames at 32 px (range table).
SEARCH_FIND_PX = 32
#: Smallest face (pixels in the frame the crop is taken from) where one frame's gender is right for
#: about 90% of faces of 13 and over: 64 px when the keypoints are found again on that frame
#: (``camera.refine``), 80 px when they come from the detector on that same frame (one stream).
PERSONALISE_CROP_PX = 80
PERSONALISE_REFINED_PX = 64


def focal_px(width: int, hfov_deg: float) -> float:
    """Focal length in pixels of a camera ``width`` pixels wide with horizontal field of view ``hfov_deg``."""
    if width <= 0 or not 0 < hfov_deg < 180:
        raise ValueError(f"need width > 0 and 0 < hfov_deg < 180, got {width}, {hfov_deg}")
    return width / 2.0 / math.tan(math.radians(hfov_deg) / 2.0)


def face_px_at(distance_m: float, width: int, hfov_deg: float) -> float:
    """Face box width in pixels at ``distance_m`` metres."""
    return focal_px(width, hfov_deg) * FACE_BOX_M / distance_m


def distance_for(face_px: float, width: int, hfov_deg: float) -> float:
    """Distance in metres at which a face is ``face_px`` pixels wide."""
    return focal_px(width, hfov_deg) * FACE_BOX_M / face_px


@dataclass(frozen=True, slots=True)
class Reach:
    """Where this camera finds faces and where it sees enough of them to personalise."""

    found_m: float
    personalised_m: float
    find_px: float  # detection-view pixels needed to find a face (detector limit or visit.min_face_px)
    crop_px_needed: float  # crop-frame pixels needed to personalise
    view: tuple[int, int]
    crop_width: int
    hfov_deg: float
    detector: str
    refined: bool
    search: bool = False

    def describe(self) -> str:
        two = ""
        if self.crop_width != self.view[0]:
            two = f", faces {'refined and ' if self.refined else ''}cropped from {self.crop_width} px wide frames"
        return (
            f"{self.detector}{'+search' if self.search else ''} detector on {self.view[0]}x{self.view[1]}{two}, "
            f"{self.hfov_deg:g} deg lens: faces found "
            f"up to {self.found_m:.1f} m, personalised up to {self.personalised_m:.1f} m"
        )

    def advice(self, want_m: float) -> str:
        steps = []
        if not self.search and self.find_px > SEARCH_FIND_PX:
            steps.append(f"models.search = true (finds faces of {SEARCH_FIND_PX} px, within a second: "
                         f"{distance_for(SEARCH_FIND_PX, self.view[0], self.hfov_deg):.1f} m here, "
                         "as far as visit.min_face_px allows)")
        if self.detector == "short_range":
            steps.append("models.detector = \"cascade\" (finds faces of 48 px: "
                         f"{distance_for(FIND_PX['cascade'], self.view[0], self.hfov_deg):.1f} m here)")
        needed_crop_width = math.ceil(PERSONALISE_REFINED_PX / face_px_at(want_m, 1, self.hfov_deg))
        if self.crop_width < needed_crop_width or not self.refined:
            steps.append(
                f"two streams with a full stream at least {needed_crop_width} px wide "
                "(camera.full_width/full_height, same aspect ratio) and camera.refine = true"
            )
        steps.append("a narrower lens (camera.hfov_deg) or mounting the camera nearer to where shoppers stand")
        return "; ".join(steps)


def camera_reach(camera: CameraConfig, detector: str, min_face_px: int, *, search: bool = False) -> Reach:
    """The distances for this camera config, detector (``models.search``: with the search) and
    ``visit.min_face_px``."""
    if detector not in FIND_PX:
        raise ValueError(f"unknown detector {detector!r}; expected one of {sorted(FIND_PX)}")
    find = float(max(SEARCH_FIND_PX if search else FIND_PX[detector], min_face_px))
    two_streams = camera.full_size is not None
    refined = two_streams and camera.refine
    # Scaling the view's keypoints up to the full frame gains nothing (the alignment follows them):
    # without refinement the crop is only as good as the view's.
    scale = camera.crop_width / camera.width if refined else 1.0
    crop_needed = float(PERSONALISE_REFINED_PX if refined else PERSONALISE_CROP_PX)
    personalise_view_px = max(find, crop_needed / scale)
    return Reach(
        found_m=distance_for(find, camera.width, camera.hfov_deg),
        personalised_m=distance_for(personalise_view_px, camera.width, camera.hfov_deg),
        find_px=find,
        crop_px_needed=crop_needed,
        view=(camera.width, camera.height),
        crop_width=camera.crop_width,
        hfov_deg=camera.hfov_deg,
        detector=detector,
        refined=refined,
        search=search,
    )
