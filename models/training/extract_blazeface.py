"""Extract the BlazeFace face-detection models from the mediapipe 0.10.21 wheel into ``models/``.

    python -m models.training.extract_blazeface            # fetch the wheel with pip into a temp dir
    python -m models.training.extract_blazeface --wheel mediapipe-0.10.21-...whl

The two ``.tflite`` files are copied as shipped (float, Apache-2.0), a licence notice is written to
``models/LICENSES/mediapipe-blazeface.txt`` and ``models/manifest.json`` is updated with their sha256.
Run at development time only; the device never downloads anything.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from models.training.manifest_tools import update_manifest

logger = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.21"
MODELS_DIR = Path(__file__).resolve().parents[1]

#: member inside the wheel -> (file name in models/, manifest name, input shape)
MEMBERS = {
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": (
        "face_detection_short_range.tflite",
        "blazeface_short_range",
        [1, 128, 128, 3],
    ),
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite": (
        "face_detection_full_range.tflite",
        "blazeface_full_range",
        [1, 192, 192, 3],
    ),
}

NOTICE = f"""BlazeFace face detection models (face_detection_short_range.tflite, face_detection_full_range.tflite)

Extracted unchanged from the mediapipe {MEDIAPIPE_VERSION} Python wheel
(mediapipe/modules/face_detection/face_detection_short_range.tflite and
mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite).
face_detection_full_range.tflite is the file shipped as face_detection_full_range_sparse.tflite.

Copyright 2019-2025 The MediaPipe Authors.
Source: https://github.com/google-ai-edge/mediapipe
Model card: "BlazeFace (Short Range)" / "BlazeFace (Full Range)", MediaPipe model cards.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use these files except in
compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
implied. See the License for the specific language governing permissions and limitations under the
License.
"""


def download_wheel(dest: Path) -> Path:
    """Fetch the mediapipe wheel for this platform with pip (development machines only)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "-d",
        str(dest),
        f"mediapipe=={MEDIAPIPE_VERSION}",
    ]
    logger.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not leave a mediapipe wheel in {dest}")
    return wheels[0]


def extract(wheel: Path, models_dir: Path = MODELS_DIR) -> list[Path]:
    """Copy the BlazeFace members of ``wheel`` into ``models_dir`` and update the manifest."""
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member, (file_name, name, shape) in MEMBERS.items():
            if member not in names:
                raise KeyError(f"{wheel} has no member {member}")
            target = models_dir / file_name
            target.write_bytes(zf.read(member))
            written.append(target)
            update_manifest(
                models_dir / "manifest.json",
                name=name,
                path=target,
                input_shape=shape,
                dtype="float32",
                licence="Apache-2.0 (models/LICENSES/mediapipe-blazeface.txt)",
                source=f"mediapipe=={MEDIAPIPE_VERSION} wheel, {member}",
            )
            logger.info("wrote %s (%d bytes)", target, target.stat().st_size)
    licences = models_dir / "LICENSES"
    licences.mkdir(exist_ok=True)
    (licences / "mediapipe-blazeface.txt").write_text(NOTICE, encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--wheel", type=Path, help="a mediapipe wheel already on disk (else pip downloads it)"
    )
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.wheel is not None:
        extract(args.wheel, args.models_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            extract(download_wheel(Path(tmp)), args.models_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
