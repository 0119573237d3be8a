"""Terminal secrets at rest: encrypted with the data dir's 0600 key file; tampering is detected."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from admin_web.terminals.errors import KeyFileError
from admin_web.terminals.keys import SecretBox, key_path, load_key


def test_round_trip_and_no_plaintext(tmp_path: Path) -> None:
    box = SecretBox(load_key(tmp_path, create=True))
    token = box.encrypt("the-secret", context="term_1")
    assert "the-secret" not in token and token.startswith("v1:")
    assert box.decrypt(token, context="term_1") == "the-secret"
    assert box.encrypt("the-secret", context="term_1") != token  # fresh nonce each time
    assert stat.S_IMODE(key_path(tmp_path).stat().st_mode) == 0o600


def test_wrong_context_or_key_or_tamper_fails(tmp_path: Path) -> None:
    box = SecretBox(load_key(tmp_path, create=True))
    token = box.encrypt("the-secret", context="term_1")
    with pytest.raises(KeyFileError, match="does not open"):
        box.decrypt(token, context="term_2")
    with pytest.raises(KeyFileError, match="does not open"):
        SecretBox(b"\x01" * 32).decrypt(token, context="term_1")
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    with pytest.raises(KeyFileError):
        box.decrypt(flipped, context="term_1")


def test_key_file_is_stable_and_checked(tmp_path: Path) -> None:
    first = load_key(tmp_path, create=True)
    assert load_key(tmp_path, create=False) == first
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "other", create=False)
    key_path(tmp_path).write_text("zz")
    with pytest.raises(KeyFileError, match="hex"):
        load_key(tmp_path, create=False)


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    load_key(tmp_path, create=True)
    key_path(tmp_path).chmod(0o644)
    load_key(tmp_path, create=False)
    assert stat.S_IMODE(key_path(tmp_path).stat().st_mode) == 0o600
