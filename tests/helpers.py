"""Helpers tests import by name (``from tests.helpers import ...``); fixtures stay in conftest.py.

Importing ``conftest`` by name picks whichever conftest.py pytest put first on ``sys.path`` (the arm64
stage's ``pytest tests/core tests/device tests/models`` got tests/models/conftest.py), so nothing is
imported from a conftest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "utkface_crop"


def face_photos(n: int, every: int) -> list[Any]:
    """``n`` UTKFace crops (RGB arrays), every ``every``-th in name order; skips the test without the data."""
    import cv2

    if not FACES.is_dir():
        pytest.skip(f"face data not found at {FACES}")
    paths = sorted(FACES.glob("*_*_*_*.jpg"))[::every][:n]
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


ADMIN_USER = "admin"
ADMIN_PASSWORD = "correct horse battery"


def csrf_token_of(client: Any) -> str:
    """The CSRF token of the client's session (created like the server does if missing)."""
    with client.session_transaction() as sess:
        token = sess.get("_csrf")
        if not token:
            token = sess["_csrf"] = "test-csrf-token-0123456789abcdef"
    return str(token)


class AuthActions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def login(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD, *, next: str = "") -> Any:
        page = self._client.get("/login")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page.data)
        token = match.group(1).decode() if match else csrf_token_of(self._client)
        return self._client.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": token,
                "next": next,
            },
        )

    def logout(self) -> Any:
        return self._client.post("/logout", data={"csrf_token": csrf_token_of(self._client)})


def write_device_events(data_dir: Path, events: list[dict[str, Any]]) -> None:
    """Write decision events the way the device does (its own EventLog into events.sqlite3)."""
    from device.events import EventLog

    log = EventLog(Path(data_dir), clock_synced=lambda: True, retention_days=3650)
    for event in events:
        log.record(event)
    log.close()


def poll_json(base: str, paths: tuple[str, ...], done: Any, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """GET each of ``paths`` under ``base`` (JSON answers) every 0.2 s until ``done(answers)`` holds or
    ``timeout`` seconds pass; returns the last answers (a path not answered yet maps to ``{}``)."""
    import json
    import time
    import urllib.request

    answers: dict[str, dict[str, Any]] = {path: {} for path in paths}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in paths:
            try:
                with urllib.request.urlopen(base + path, timeout=2) as resp:
                    answers[path] = json.loads(resp.read())
            except OSError:
                pass
        if done(answers):
            break
        time.sleep(0.2)
    return answers


def make_ca_and_server_cert(folder: Path, name: str = "store") -> tuple[Path, Path, Path]:
    """A store CA and a server certificate it signed for 127.0.0.1 / localhost (EC P-256, one day),
    as PEM files in ``folder``: ``(ca.crt, server.crt, server.key)``, made with ``cryptography``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths
