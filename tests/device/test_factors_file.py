"""Factor file on disk: round trip, every way a file can be bad, FactorWatcher keeping the last good model."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from device.recommend.factors import FactorModel, FactorWatcher, compute_checksum
from smartshelf.core.errors import ModelError
from smartshelf.core.types import Segment
from tools.recommender.synthetic import make_model


def model_a() -> FactorModel:
    rng = np.random.default_rng(0)
    return make_model(
        rng.normal(size=(12, 4)),
        segment_vectors={"female/25-34": [1, 0, 0, 0]},
        popularity=rng.random(12),
        metadata={"method": "a", "rank": 4},
    )


def model_b() -> FactorModel:
    return make_model(np.eye(3), item_ids=["x", "y", "z"], metadata={"method": "b"})


def write_raw(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_round_trip(tmp_path: Path) -> None:
    original = model_a()
    path = original.save(tmp_path / "f.npz")
    loaded = FactorModel.load(path)
    assert loaded.item_ids == original.item_ids and loaded.segment_ids == original.segment_ids
    np.testing.assert_array_equal(loaded.item_factors, original.item_factors)
    np.testing.assert_array_equal(loaded.segment_vectors, original.segment_vectors)
    np.testing.assert_array_equal(loaded.popularity, original.popularity)
    assert loaded.metadata == {"method": "a", "rank": 4}
    assert loaded.item_factors.dtype == np.float32 and not loaded.item_factors.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(loaded.item_unit, axis=1), 1.0, rtol=1e-5)
    with np.load(path, allow_pickle=False) as data:
        assert int(data["format_version"]) == 1
        assert str(data["checksum"][()]) == compute_checksum({k: data[k] for k in data.files})
    # Written atomically: no temp files left, readable by the other service user.
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]
    assert path.stat().st_mode & stat.S_IRGRP


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.npz does not exist"):
        FactorModel.load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path: Path) -> None:
    path = model_a().save(tmp_path / "f.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"f\.npz is corrupt"):
        FactorModel.load(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "g.npz"
    path.write_bytes(os.urandom(500))
    with pytest.raises(ModelError, match=r"g\.npz"):
        FactorModel.load(path)


def test_wrong_version(tmp_path: Path) -> None:
    arrays = model_a().to_arrays()
    arrays["format_version"] = np.array(2, dtype=np.int64)
    arrays["checksum"] = np.array(compute_checksum(arrays))
    write_raw(tmp_path / "v2.npz", arrays)
    with pytest.raises(ModelError, match=r"v2\.npz has format_version 2"):
        FactorModel.load(tmp_path / "v2.npz")


def test_checksum_mismatch(tmp_path: Path) -> None:
    arrays = model_a().to_arrays()
    tampered = arrays["item_factors"].copy()
    tampered[0, 0] += 1.0
    arrays["item_factors"] = tampered
    write_raw(tmp_path / "t.npz", arrays)
    with pytest.raises(ModelError, match=r"t\.npz failed its checksum"):
        FactorModel.load(tmp_path / "t.npz")


def test_renamed_item_fails_the_checksum(tmp_path: Path) -> None:
    arrays = model_a().to_arrays()
    ids = arrays["item_ids"].copy()
    ids[3] = "other"
    arrays["item_ids"] = ids
    write_raw(tmp_path / "r.npz", arrays)
    with pytest.raises(ModelError, match="checksum"):
        FactorModel.load(tmp_path / "r.npz")


def test_missing_array(tmp_path: Path) -> None:
    arrays = model_a().to_arrays()
    del arrays["popularity"]
    write_raw(tmp_path / "m.npz", arrays)
    with pytest.raises(ModelError, match="missing array.*popularity"):
        FactorModel.load(tmp_path / "m.npz")


def test_pickled_object_array_is_refused(tmp_path: Path) -> None:
    arrays = model_a().to_arrays()
    arrays["metadata"] = np.array([{"evil": 1}], dtype=object)
    write_raw(tmp_path / "p.npz", arrays)
    with pytest.raises(ModelError, match=r"p\.npz"):
        FactorModel.load(tmp_path / "p.npz")


def test_inconsistent_shapes_and_nan_are_refused(tmp_path: Path) -> None:
    arrays = model_a().to_arrays()
    arrays["popularity"] = arrays["popularity"][:5]
    arrays["checksum"] = np.array(compute_checksum(arrays))
    write_raw(tmp_path / "s.npz", arrays)
    with pytest.raises(ModelError, match=r"s\.npz: popularity has shape"):
        FactorModel.load(tmp_path / "s.npz")
    with pytest.raises(ModelError, match="NaN"):
        make_model([[np.nan, 1.0]])


def bump_mtime(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_watcher_reloads_and_keeps_the_last_good_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = model_a().save(tmp_path / "factors.npz")
    watcher = FactorWatcher(path)
    first = watcher.current
    assert watcher.maybe_reload() is False
    # A corrupt replacement: logged loudly, previous model kept, not retried until the file changes.
    path.write_bytes(b"not a zip file at all")
    bump_mtime(path, 1)
    with caplog.at_level(logging.ERROR):
        assert watcher.maybe_reload() is False
    assert watcher.current is first
    assert any("NOT reloading" in r.message and "factors.npz" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert watcher.maybe_reload() is False
    assert not caplog.records
    # A bad checksum: same.
    arrays = model_b().to_arrays()
    arrays["checksum"] = np.array("0" * 64)
    write_raw(path, arrays)
    bump_mtime(path, 2)
    assert watcher.maybe_reload() is False and watcher.current is first
    # The file disappears: keep the model.
    path.unlink()
    assert watcher.maybe_reload() is False and watcher.current is first
    # A good file: installed.
    model_b().save(path)
    bump_mtime(path, 3)
    assert watcher.maybe_reload() is True
    assert watcher.current.item_ids == ("x", "y", "z")


def test_watcher_start_up_fails_on_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "f.npz").write_bytes(b"junk")
    with pytest.raises(ModelError):
        FactorWatcher(tmp_path / "f.npz")


def test_the_device_ranker_follows_the_file(tmp_path: Path) -> None:
    from device.shelf import FactorRankers

    path = model_a().save(tmp_path / "f.npz")
    rankers = FactorRankers(path)
    assert rankers.ranker().rank(Segment.parse("female/25-34"), n=2)[0].item_id.startswith("item")
    model_b().save(path)
    bump_mtime(path, 1)
    assert rankers.maybe_reload()
    assert {r.item_id for r in rankers.ranker().rank(None, n=3)} == {"x", "y", "z"}


def test_checksum_is_a_stable_contract() -> None:
    """The admin writes and the device verifies: the checksum definition must not drift between versions,
    platforms or numpy string widths."""
    model = make_model(
        [[1.0, 0.5], [0.25, -1.0]],
        item_ids=["sku-1", "sku-2"],
        popularity=[0.1, 0.2],
        metadata={"method": "golden"},
    )
    arrays = model.to_arrays()
    assert str(arrays["checksum"]) == "4ca3789bc94b7ff0d4cdb57b336606a2062565312214057646543cb0b0539c87"
    wider = dict(
        arrays, item_ids=arrays["item_ids"].astype("<U40"), item_factors=arrays["item_factors"].astype(">f4")
    )
    assert compute_checksum(wider) == str(arrays["checksum"])
