"""The committed models: manifest, tamper check, detector and age/gender on real faces."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device.inference import (
    DETECTOR_FILES,
    AgeGender,
    FaceDetector,
    create_age_gender,
    create_detector,
)
from device.inference.runtime import sha256_of, verify_model
from smartshelf.core.errors import ConfigError, ModelError
from smartshelf.core.types import Demographic, Face

pytest.importorskip("ai_edge_litert")

AGE_GENDER_FILES = ("age_gender_int8.tflite", "age_gender_float32.tflite")


def _manifest(models_dir):
    return json.loads((models_dir / "manifest.json").read_text())["models"]


def test_manifest_lists_every_committed_model_with_its_hash(models_dir):
    entries = {e["file"]: e for e in _manifest(models_dir)}
    on_disk = {p.name for p in models_dir.glob("*.tflite")}
    assert set(DETECTOR_FILES.values()) | {"age_gender_int8.tflite"} <= on_disk
    assert on_disk == set(entries), "every .tflite must be in the manifest and vice versa"
    for name, entry in entries.items():
        assert sha256_of(models_dir / name) == entry["sha256"], name
        assert entry["licence"] and entry["source"]
    assert (models_dir / "age_gender_int8.tflite").stat().st_size < 1_000_000


@pytest.mark.parametrize("name", ["face_detection_short_range.tflite", "age_gender_int8.tflite"])
def test_tampered_copy_is_refused(models_dir, tmp_path, name):
    shutil.copy(models_dir / name, tmp_path / name)
    shutil.copy(models_dir / "manifest.json", tmp_path / "manifest.json")
    assert verify_model(tmp_path / name)["file"] == name  # the intact copy is accepted
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=name):
        verify_model(tmp_path / name)
    factory = create_detector if name.startswith("face") else create_age_gender
    with pytest.raises(ModelError, match=name):
        if factory is create_detector:
            create_detector("short_range", models_dir=tmp_path)
        else:
            create_age_gender(name, models_dir=tmp_path)


def test_factories_reject_unknown_variant_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="medium_range"):
        create_detector("medium_range")
    with pytest.raises(ModelError, match="nope.tflite"):
        create_age_gender("nope.tflite")


def test_blank_and_noise_frames_have_no_face():
    rng = np.random.default_rng(0)
    with create_detector("short_range") as det:
        assert isinstance(det, FaceDetector)
        assert det.detect(np.zeros((480, 640, 3), np.uint8)) == []
        assert det.detect(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) == []
        assert det.detect(np.full((3, 3, 3), 200, np.uint8)) == []


def test_close_is_safe_twice_and_blocks_use():
    det = create_detector("short_range")
    det.close()
    det.close()
    with pytest.raises(ModelError, match="closed"):
        det.detect(np.zeros((64, 64, 3), np.uint8))
    ag = create_age_gender()
    ag.close()
    ag.close()
    with pytest.raises(ModelError, match="closed"):
        ag.estimate_crop(np.zeros((ag.input_size, ag.input_size, 3), np.uint8))


def test_detector_finds_the_face_in_200px_crops(face_images):
    with create_detector("short_range") as det:
        found = [det.detect(img) for img in face_images]
    missed = sum(not f for f in found)
    assert missed <= len(face_images) // 20, f"missed {missed} of {len(face_images)} faces"
    for faces, img in zip(found, face_images):
        if not faces:
            continue
        f = faces[0]
        _, y, w, h = f.box
        assert 0.35 * img.shape[1] < w <= img.shape[1] and 0.35 * img.shape[0] < h <= img.shape[0]
        assert len(f.keypoints) == 6
        (rx, ry), (lx, _) = f.keypoints[:2]
        assert rx < lx, "keypoint 0 is the subject's right eye (image left)"
        assert y < ry < y + h / 2 + 10  # eyes in the upper half of the box


@pytest.mark.parametrize("shape", [(480, 640), (720, 400)])
def test_detector_maps_boxes_back_to_frame_pixels(face_images, shape):
    img = face_images[0]
    frame = np.full(shape + (3,), 100, np.uint8)
    oy, ox = shape[0] - 230, shape[1] - 250
    frame[oy : oy + 200, ox : ox + 200] = img
    with create_detector("short_range") as ref_det, create_detector("short_range") as det:
        ref = ref_det.detect(img)[0]
        got = det.detect(frame)
    assert got, "face not found when pasted into a larger frame"
    g = got[0]
    # the face is smaller in model pixels in the larger frame: allow ~10% of the face size
    tol = 0.1 * ref.box[2] + 2
    assert abs(g.box[0] - (ref.box[0] + ox)) <= tol and abs(g.box[1] - (ref.box[1] + oy)) <= tol
    assert abs(g.box[2] - ref.box[2]) <= tol
    assert abs(g.keypoints[0][0] - (ref.keypoints[0][0] + ox)) <= tol


def test_full_range_detector_finds_faces_in_a_frame(face_images):
    rng = np.random.default_rng(1)
    with create_detector("full_range") as det:
        hits = 0
        for img in face_images[:10]:
            frame = rng.integers(60, 140, (480, 640, 3), dtype=np.uint8)
            frame[140:340, 220:420] = img
            faces = det.detect(frame)
            hits += bool(faces) and abs(faces[0].box[0] + faces[0].box[2] / 2 - 320) < 40
    assert hits >= 8


@pytest.mark.parametrize("file", AGE_GENDER_FILES)
def test_age_gender_on_real_faces(models_dir, face_samples, face_images, file):
    if not (models_dir / file).exists():
        pytest.skip(f"{file} not committed")
    with create_detector("short_range") as det, create_age_gender(file) as model:
        assert isinstance(model, AgeGender)
        results = []
        for img in face_images:
            faces = det.detect(img)
            face = faces[0] if faces else Face(box=(0, 0, img.shape[1], img.shape[0]), score=0.0)
            d = model.estimate(img, face)
            assert isinstance(d, Demographic)
            assert 0.0 <= d.p_female <= 1.0 and 0.0 <= d.confidence <= 1.0 and 0 <= d.age <= 100
            results.append(d)
    y_f = np.array([s.female for s in face_samples])
    y_age = np.array([s.age for s in face_samples])
    acc = np.mean([(d.p_female >= 0.5) == bool(f) for d, f in zip(results, y_f)])
    mae = np.mean([abs(d.age - a) for d, a in zip(results, y_age)])
    # loose bounds on 40 faces: a broken model (wrong channel order, scaling, label swap) fails them
    assert acc >= 0.75, f"gender accuracy {acc:.2f}"
    assert mae <= 12.0, f"age MAE {mae:.1f}"


def test_int8_and_float_agree(models_dir, face_images):
    if not (models_dir / "age_gender_float32.tflite").exists():
        pytest.skip("float model not committed")
    with (
        create_detector() as det,
        create_age_gender() as q,
        create_age_gender("age_gender_float32.tflite") as f,
    ):
        same, diffs = 0, []
        for img in face_images:
            faces = det.detect(img)
            if not faces:
                continue
            crop_q = q.estimate(img, faces[0])
            crop_f = f.estimate(img, faces[0])
            same += (crop_q.p_female >= 0.5) == (crop_f.p_female >= 0.5)
            diffs.append(abs(crop_q.age - crop_f.age))
    assert same >= 0.9 * len(diffs)
    assert np.mean(diffs) < 2.5


def test_estimate_crop_rejects_wrong_shape():
    from smartshelf.core.errors import ImageError

    with create_age_gender() as model, pytest.raises(ImageError, match="uint8"):
        model.estimate_crop(np.zeros((10, 10, 3), np.uint8))


def test_flip_average_is_mirror_symmetric(face_images):
    with create_detector() as det, create_age_gender() as model:
        face = det.detect(face_images[1])[0]
        from device.inference.align import align_face

        crop = align_face(face_images[1], face, model.input_size)
        a = model.estimate_crop(crop)
        b = model.estimate_crop(np.ascontiguousarray(crop[:, ::-1]))
        assert a.p_female == pytest.approx(b.p_female, abs=1e-6)
        assert a.age == pytest.approx(b.age, abs=1e-6)
        model.flip_average = False
        single = model.estimate_crop(crop)
        assert abs(single.age - a.age) < 10  # same model, one view instead of two
