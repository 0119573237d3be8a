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
    assert "the-secret" not in token and token.startswith("v2:")
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


# Written by the pre-AES-GCM code (HMAC-CTR + HMAC tag, git 9b393b9) with key bytes(range(32)).
LEGACY_V1 = "v1:Vy_YW_wQRM1kIGXeKpNWDJOrhY4L3f_nmfknSHDPrkvXaKNQJaS2Nb9372GKgkuzGW55Yqe0a9ojTK86HUzyDH5IS4DxOZNR"


def test_a_secret_written_by_the_old_code_still_opens_and_upgrades() -> None:
    box = SecretBox(bytes(range(32)))
    assert SecretBox.is_legacy(LEGACY_V1)
    assert box.decrypt(LEGACY_V1, context="term_legacy") == "whsec_legacy-secret-0123"
    with pytest.raises(KeyFileError, match="does not open"):
        box.decrypt(LEGACY_V1, context="term_other")
    upgraded = box.upgrade(LEGACY_V1, context="term_legacy")
    assert upgraded.startswith("v2:") and not SecretBox.is_legacy(upgraded)
    assert box.decrypt(upgraded, context="term_legacy") == "whsec_legacy-secret-0123"


def test_v2_is_aes_gcm_with_the_terminal_id_as_associated_data() -> None:
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = bytes(range(32))
    token = SecretBox(key).encrypt("s3cret", context="term_9")
    blob = base64.urlsafe_b64decode(token[3:])
    aes = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"smartshelf/terminal-secret/aes-gcm-v2").derive(key)
    assert AESGCM(aes).decrypt(blob[:12], blob[12:], b"term_9") == b"s3cret"


@pytest.mark.parametrize("token", ["v3:AAAA", "v2:!!!", "v2:AAAA", "v1:AAAA", "nothing", "v2:" + "A" * 5000])
def test_malformed_stored_secrets_are_one_clear_error(token: str) -> None:
    with pytest.raises(KeyFileError, match="term_1"):
        SecretBox(bytes(32)).decrypt(token, context="term_1")
