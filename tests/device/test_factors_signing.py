"""Signed factor files: Ed25519 inside the .npz, verified by the shelf against the configured key."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from device.recommend.factors import FactorModel, FactorWatcher
from device.recommend.signing import SignatureError, key_id, load_public_key
from smartshelf.core.config import parse_config
from smartshelf.core.errors import ConfigError, ModelError
from tools.factor_signing import generate_key, load_private_key, save_signed, sign_file
from tools.recommender.synthetic import make_model


def model(method: str, n: int = 6) -> FactorModel:
    rng = np.random.default_rng(len(method))
    return make_model(rng.normal(size=(n, 3)), segment_vectors={"female/25-34": [1, 0, 0]},
                      metadata={"method": method})


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_key(tmp_path / "keys" / "signing.key")


def bump(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_keygen_writes_a_private_key_only_its_owner_reads(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert private.stat().st_mode & 0o077 == 0
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(SignatureError, match="already exists"):
        generate_key(private)


def test_signed_file_loads_with_the_key_and_without_one(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    path = save_signed(model("a"), load_private_key(private), tmp_path / "f.npz")
    pub = load_public_key(public)
    loaded = FactorModel.load(path, public_key=pub)
    assert loaded.signed_by == key_id(pub) and loaded.metadata["method"] == "a"
    # A shelf that does not require signatures reads the same file (older software too: extra arrays).
    assert FactorModel.load(path).signed_by is None


def test_unsigned_forged_and_foreign_files_are_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    pub = load_public_key(public)
    unsigned = model("a").save(tmp_path / "unsigned.npz")
    with pytest.raises(SignatureError, match="unsigned.npz is not signed"):
        FactorModel.load(unsigned, public_key=pub)
    # Another key's signature: named as such.
    other_private, _ = generate_key(tmp_path / "other.key")
    foreign = save_signed(model("a"), load_private_key(other_private), tmp_path / "foreign.npz")
    with pytest.raises(SignatureError, match="signed by key .* not by the configured key"):
        FactorModel.load(foreign, public_key=pub)
    # Content changed and checksum recomputed, signature kept (a forger without the key).
    signed = save_signed(model("a"), load_private_key(private), tmp_path / "signed.npz")
    with np.load(signed, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    tampered = model("b")
    forged = tampered.to_arrays()
    forged["signature"], forged["signature_key"] = arrays["signature"], arrays["signature_key"]
    with open(tmp_path / "forged.npz", "wb") as fh:
        np.savez(fh, **forged)
    with pytest.raises(SignatureError, match="does not verify"):
        FactorModel.load(tmp_path / "forged.npz", public_key=pub)
    assert issubclass(SignatureError, ModelError)


def test_watcher_keeps_the_signed_model_and_reports_the_refusal(
    tmp_path: Path, keys: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from device.shelf import FactorRankers

    private, public = keys
    path = save_signed(model("first"), load_private_key(private), tmp_path / "factors.npz")
    rankers = FactorRankers(path, public_key=load_public_key(public))
    assert rankers.ranker().model.metadata["method"] == "first"
    model("unsigned").save(path)
    bump(path, 1)
    with caplog.at_level(logging.ERROR):
        assert rankers.maybe_reload() is False
    assert rankers.ranker().model.metadata["method"] == "first"
    status = rankers.describe()
    assert status["signature_required"] and "is not signed" in status["rejected"]
    assert any("NOT reloading" in r.message for r in caplog.records)
    sign_file(path, private)
    bump(path, 2)
    assert rankers.maybe_reload() is True
    assert rankers.ranker().model.metadata["method"] == "unsigned"
    assert rankers.describe()["rejected"] is None and rankers.describe()["signed_by"]


def test_start_up_refuses_an_unsigned_file_when_a_key_is_configured(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    path = model("a").save(tmp_path / "f.npz")
    with pytest.raises(SignatureError):
        FactorWatcher(path, public_key=load_public_key(keys[1]))


def test_bad_public_key_files_are_named(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(SignatureError, match="nokey.pem does not exist"):
        load_public_key(tmp_path / "nokey.pem")
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(SignatureError, match="junk.pem is not a PEM public key"):
        load_public_key(tmp_path / "junk.pem")
    # the private key is not a public key
    with pytest.raises(SignatureError, match="signing.key is not a PEM public key"):
        load_public_key(keys[0])


def test_public_key_is_a_config_key(tmp_path: Path) -> None:
    config = parse_config({"recommend": {"public_key": str(tmp_path / "k.pub")}})
    assert config.recommend.public_key == tmp_path / "k.pub"
    assert parse_config({}).recommend.public_key is None
    with pytest.raises(ConfigError, match="recommend.public_key"):
        parse_config({"recommend": {"public_key": 3}})


def test_sign_and_keygen_commands(tmp_path: Path) -> None:
    from smartshelf.cli import main

    assert main(["factors", "keygen", "--out", str(tmp_path / "k")]) == 0
    path = model("a").save(tmp_path / "f.npz")
    assert main(["factors", "sign", str(path), "--key", str(tmp_path / "k"), "--out", str(tmp_path / "s.npz")]) == 0
    assert FactorModel.load(tmp_path / "s.npz", public_key=load_public_key(tmp_path / "k.pub")).signed_by
    assert main(["factors", "sign", str(path), "--key", str(tmp_path / "missing")]) == 1
