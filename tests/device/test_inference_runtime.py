"""Manifest verification, runtime import fallback, quantization helpers, output decoding."""

from __future__ import annotations

import builtins
import json
import math

import numpy as np
import pytest

from device.inference.age_gender import AGE_BINS, demographic_from_logits
from device.inference.runtime import dequantize, load_interpreter, quantize, sha256_of, verify_model
from smartshelf.core.errors import HardwareUnavailable, ModelError


def _write(tmp_path, payload: bytes = b"model-bytes", listed: bool = True):
    model = tmp_path / "m.tflite"
    model.write_bytes(payload)
    entries = []
    if listed:
        entries.append(
            {
                "name": "m",
                "file": "m.tflite",
                "sha256": sha256_of(model),
                "input_shape": [1, 8, 8, 3],
                "dtype": "int8",
                "licence": "test",
                "source": "test",
            }
        )
    (tmp_path / "manifest.json").write_text(json.dumps({"models": entries}))
    return model


def test_verify_model_accepts_listed_file(tmp_path):
    model = _write(tmp_path)
    assert verify_model(model)["name"] == "m"


def test_verify_model_rejects_tampered_file(tmp_path):
    model = _write(tmp_path)
    data = bytearray(model.read_bytes())
    data[3] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="m.tflite"):
        verify_model(model)


def test_verify_model_rejects_missing_and_unlisted(tmp_path):
    with pytest.raises(ModelError, match="nothere.tflite"):
        verify_model(tmp_path / "nothere.tflite")
    model = _write(tmp_path, listed=False)
    with pytest.raises(ModelError, match="not listed"):
        verify_model(model)


def test_verify_model_rejects_bad_manifest(tmp_path):
    model = _write(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="manifest"):
        verify_model(model)
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [{"file": "m.tflite"}]}))
    with pytest.raises(ModelError, match="lacks"):
        verify_model(model)
    with pytest.raises(ModelError, match="not found"):
        verify_model(model, manifest_path=tmp_path / "other.json")


def test_load_interpreter_without_runtime_names_the_fix(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith(("ai_edge_litert", "tflite_runtime")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(HardwareUnavailable, match="pip install ai-edge-litert"):
        load_interpreter(tmp_path / "m.tflite")


def test_load_interpreter_rejects_garbage(tmp_path):
    pytest.importorskip("ai_edge_litert")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="bad.tflite"):
        load_interpreter(bad)


def test_quantize_roundtrip_int8():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = quantize(np.array([-100.0, 0.0, 1.0, 200.0]), detail)
    assert q.dtype == np.int8
    assert list(q) == [-128, -3, -1, 127]  # clipped at both ends
    assert np.allclose(dequantize(q, detail), [-62.5, 0.0, 1.0, 65.0])
    f = {"dtype": np.float32, "quantization": (0.0, 0)}
    assert quantize(np.array([1.5]), f).dtype == np.float32
    assert dequantize(np.array([1.5], np.float32), f)[0] == 1.5


def test_demographic_from_logits():
    age = np.full(AGE_BINS, -50.0)
    age[30] = 50.0
    d = demographic_from_logits(np.array([4.0, -4.0]), age)
    assert d.p_female > 0.99 and abs(d.age - 30) < 1e-3 and d.age_std < 0.1
    assert d.confidence > 0.95
    flat = demographic_from_logits(np.array([0.0, 0.0]), np.zeros(AGE_BINS))
    assert flat.p_female == pytest.approx(0.5)
    assert flat.age == pytest.approx(50.0)
    assert flat.age_std == pytest.approx(math.sqrt((AGE_BINS**2 - 1) / 12), rel=1e-6)
    assert flat.confidence == 0.0
