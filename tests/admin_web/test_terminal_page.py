"""The terminals admin page: pairing shows the secret once, revoke, CSRF, ledger, conversions, exports."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from admin_web.terminals import signing
from admin_web.terminals.views import get_ledger
from tests.helpers import ADMIN_PASSWORD, ADMIN_USER, AuthActions, write_device_events


def pair_on_page(client: Any, csrf: Any, name: str = "Till 7") -> tuple[str, str, bytes]:
    r = client.post("/terminals/pair", data={"name": name, "provider": "generic", "csrf_token": csrf()})
    assert r.status_code == 200
    tid = re.search(rb"<dt>Terminal id</dt><dd><code>([^<]+)</code>", r.data).group(1).decode()
    secret = re.search(rb"<dt>Secret</dt><dd><code>([^<]+)</code>", r.data).group(1).decode()
    return tid, secret, r.data


def test_pair_list_and_revoke(client: Any, auth: Any, csrf: Any, app: Any) -> None:
    auth.login()
    tid, secret, _ = pair_on_page(client, csrf)
    page = client.get("/terminals/").data
    assert tid.encode() in page and b"Till 7" in page and b"never" in page
    assert secret.encode() not in page  # shown once only
    with app.app_context():
        assert get_ledger().credentials(tid) == ("generic", secret)
    r = client.post(f"/terminals/{tid}/revoke", data={"csrf_token": csrf()})
    assert r.status_code == 200 and b"revoked" in r.data
    with app.app_context():
        assert not get_ledger().terminals()[0].active


def test_forms_need_csrf_and_login(client: Any, auth: Any, app: Any) -> None:
    r = client.post("/terminals/pair", data={"name": "x"})
    assert r.status_code in (302, 401)
    auth.login()
    r = client.post("/terminals/pair", data={"name": "x"})
    assert r.status_code == 400
    with app.app_context():
        assert get_ledger().terminals() == []


def test_pair_errors_are_shown(client: Any, auth: Any, csrf: Any) -> None:
    auth.login()
    r = client.post("/terminals/pair", data={"name": "Reader", "provider": "stripe", "csrf_token": csrf()})
    assert r.status_code == 400 and b"webhook signing secret" in r.data


def test_last_seen_ledger_conversions_and_exports(client: Any, auth: Any, csrf: Any, app: Any, data_dir: Path) -> None:
    repo = app.extensions["smartshelf.repository"]
    repo.create_product({"sku": "A", "name": "Scarf", "price": 900, "currency": "EUR", "stock": 10, "item_id": "myntra-1"})
    repo.create_product({"sku": "B", "name": "Belt", "price": 500, "currency": "EUR", "stock": 10})
    now = time.time()
    docs = [
        {"time": now - 120, "visit_id": 1, "segment": "female/25-34", "confidence": 0.9, "reason": "personalised",
         "variant": "personalised", "items": ["A"], "slots": ["A1"], "timings_ms": {}},
        {"time": now - 60, "visit_id": 2, "segment": "male/45-54", "confidence": 0.9, "reason": "ab_control",
         "variant": "control", "items": ["B"], "slots": ["B1"], "timings_ms": {}},
    ]
    write_device_events(data_dir, docs)
    auth.login()
    tid, secret, _ = pair_on_page(client, csrf)
    body = json.dumps({"id": "sale-1", "type": "sale", "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}],
                       "amount": 2300, "currency": "EUR",
                       "time": datetime.fromtimestamp(now, UTC).isoformat()}).encode()
    r = client.post("/api/v1/terminal/events", data=body, headers={
        "X-Terminal-Id": tid, "X-Signature": signing.sign(secret, int(now), body)})
    assert r.get_json() == {"status": "applied"}
    page = client.get("/terminals/").data.decode()
    assert "sale-1" in page and "2 × A" in page
    assert "never" not in page  # last seen is set
    assert "female/25-34" in page and "generic_share" in page and "Difference" in page
    assert "2 of 2 sale lines counted" in page
    inter = client.get("/terminals/export/interactions.csv")
    assert inter.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(inter.data.decode())))
    assert [(r["user"], r["item"], r["value"]) for r in rows] == [("female/25-34", "myntra-1", "2"), ("male/45-54", "B", "1")]
    users = list(csv.DictReader(io.StringIO(client.get("/terminals/export/users.csv").data.decode())))
    assert {u["user"] for u in users} == {"female/25-34", "male/45-54"}
    dashboard = client.get("/").data.decode()
    assert "Sales after the shelf showed a product" in dashboard and "male/45-54" in dashboard


def test_ab_share_is_read_from_the_config_file(tmp_path: Path, data_dir: Path) -> None:
    """The config is loaded once and reloaded when the file changes; a bad edit is reported."""
    from admin_web import create_app
    from admin_web.accounts import AccountStore

    config = tmp_path / "config.toml"
    config.write_text("[recommend]\ngeneric_share = 0.2\n")
    AccountStore(data_dir).set_password(ADMIN_USER, ADMIN_PASSWORD)
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "SMARTSHELF_CONFIG": str(config)})
    client = app.test_client()
    AuthActions(client).login()
    page = client.get("/terminals/").data.decode()
    assert "recommend.generic_share = 0.20" in page and "20 % of visits" in page
    config.write_text("[recommend]\ngeneric_share = 0.0\n")
    page = client.get("/terminals/").data.decode()
    assert "The comparison is off" in page
    config.write_text("[recommend]\ngeneric_share = 7\n")
    assert "could not be read" in client.get("/terminals/").data.decode()
