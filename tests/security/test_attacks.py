"""Issue 16's eight attacks, each tried the way it was found; every one must now fail.

1 per-terminal dedup and the reserved ``stripe:`` prefix; 2 revocable sessions; 3 scoped tokens;
4 a missing store.json; 5 the device's control channel; 6 the login limiter; 7 an image
decompression bomb; 8 inputs that returned 500.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from admin_web.terminals import signing
from admin_web.terminals.views import get_ledger
from tests.security.helpers import csrf_of, login, make_app, snapshot, start_device_server

TERMINAL_URL = "/api/v1/terminal/events"


@pytest.fixture
def logged_in(client: Any) -> Any:
    assert login(client).status_code == 302
    return client


@pytest.fixture
def products(app: Any) -> Any:
    repo = app.extensions["smartshelf.repository"]
    for sku, stock in (("A", 5), ("B", 1)):
        repo.create_product({"sku": sku, "name": f"Product {sku}", "price": 250, "currency": "EUR", "stock": stock})
    return repo


def _sale(eid: str, sku: str = "A", qty: int = 1) -> bytes:
    return json.dumps({"id": eid, "type": "sale", "lines": [{"sku": sku, "qty": qty}], "amount": 250,
                       "currency": "EUR", "time": "2026-11-26T10:00:00Z"}).encode()


def _send(client: Any, terminal: Any, body: bytes) -> Any:
    return client.post(TERMINAL_URL, data=body, headers={
        "Content-Type": "application/json", "X-Terminal-Id": terminal.terminal_id,
        "X-Signature": signing.sign(terminal.secret, int(time.time()), body)})


def _stock(app: Any, sku: str) -> int:
    return app.extensions["smartshelf.repository"].get_product(sku)["stock"]


# -- 1: one terminal swallowing another's sales -------------------------------------------------------
def test_1_two_tills_numbering_from_one_both_get_their_sales(app: Any, client: Any, products: Any) -> None:
    with app.app_context():
        t1, t2 = get_ledger().pair("Till 1"), get_ledger().pair("Till 2")
    assert _send(client, t1, _sale("000123-X")).get_json() == {"status": "applied"}
    answer = _send(client, t2, _sale("000123-X"))
    assert answer.get_json() == {"status": "applied"}, "T2's sale with T1's receipt number was swallowed"
    assert _stock(app, "A") == 3


def test_1_a_generic_terminal_cannot_preempt_a_stripe_payment(app: Any, client: Any, products: Any) -> None:
    with app.app_context():
        till = get_ledger().pair("Till 1")
    before = snapshot(Path(app.config["DATA_DIR"]))
    answer = _send(client, till, _sale("stripe:pi_3Nabc"))
    assert answer.status_code == 422
    assert snapshot(Path(app.config["DATA_DIR"])) == before


# -- 2: sessions that cannot be revoked ---------------------------------------------------------------
def _saved_cookie(client: Any) -> str:
    cookie = client.get_cookie("smartshelf_session")
    assert cookie is not None
    return cookie.value


def _with_cookie(app: Any, value: str) -> Any:
    other = app.test_client()
    other.set_cookie("smartshelf_session", value)
    return other


def test_2_a_cookie_saved_before_logout_no_longer_opens_pages(app: Any, client: Any) -> None:
    assert login(client).status_code == 302
    saved = _saved_cookie(client)
    assert _with_cookie(app, saved).get("/products/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert _with_cookie(app, saved).get("/products/").status_code == 302


def test_2_set_password_from_the_cli_revokes_every_session(app: Any, client: Any) -> None:
    from admin_web.accounts import AccountStore

    assert login(client).status_code == 302
    saved = _saved_cookie(client)
    AccountStore(app.config["DATA_DIR"]).set_password("admin", "a brand new password")  # what the CLI does
    assert _with_cookie(app, saved).get("/products/").status_code == 302
    assert client.get("/products/").status_code == 302


def test_2_the_cookie_does_not_slide_and_the_session_has_an_absolute_end(app: Any, client: Any) -> None:
    login_response = login(client)
    assert "Set-Cookie" in login_response.headers
    page = client.get("/products/")
    assert page.status_code == 200 and "Set-Cookie" not in page.headers  # no re-issued cookie
    accounts = app.extensions["smartshelf.accounts"]
    record = accounts.list_sessions()[0]
    assert record["expires_at"] - record["created_at"] == pytest.approx(12 * 3600)
    later = record["expires_at"] + 1
    sid = None
    with client.session_transaction() as sess:
        sid = sess["sid"]
    assert accounts.session_user(sid, now=later) is None  # past its end it is dead, used or not
    assert accounts.session_user(sid, now=record["expires_at"] - 1) is not None


def test_2_change_own_password_page_and_sign_out_everywhere(app: Any, client: Any) -> None:
    assert login(client).status_code == 302
    phone = app.test_client()
    assert login(phone).status_code == 302
    page = client.get("/account/")
    assert page.status_code == 200 and b"logged in as <strong>admin</strong>" in page.data
    assert page.data.count(b"Sign out</button>") == 2  # both sessions listed
    wrong = client.post("/account/password", data={"csrf_token": csrf_of(client), "current_password": "nope",
                                                   "new_password": "another password", "confirm_password": "another password"})
    assert wrong.status_code == 400 and b"current password is wrong" in wrong.data
    ok = client.post("/account/password", data={
        "csrf_token": csrf_of(client), "current_password": "correct horse battery",
        "new_password": "another password", "confirm_password": "another password"})
    assert ok.status_code == 302
    assert client.get("/products/").status_code == 200  # this browser stays in
    assert phone.get("/products/").status_code == 302  # the lost phone is out
    client.post("/account/sessions/revoke-all", data={"csrf_token": csrf_of(client)})
    assert client.get("/products/").status_code == 302
    assert app.extensions["smartshelf.accounts"].list_sessions() == []


# -- 3: an API token is a full admin --------------------------------------------------------------------
def test_3_a_default_token_cannot_pair_read_secrets_change_privacy_or_the_camera(app: Any, client: Any,
                                                                                   products: Any) -> None:
    from admin_web.accounts import DEFAULT_SCOPES

    token = app.extensions["smartshelf.accounts"].create_token("pos")
    assert app.extensions["smartshelf.accounts"].token_info(token)["scopes"] == list(DEFAULT_SCOPES)
    bearer = {"Authorization": f"Bearer {token}"}
    before = snapshot(Path(app.config["DATA_DIR"]))
    refused = [
        client.post("/terminals/pair", data={"name": "Evil till", "provider": "generic"}, headers=bearer),
        client.get("/terminals/", headers=bearer),
        client.post("/privacy/operator", data={"operator": "Evil Corp"}, headers=bearer),
        client.post("/privacy/pause", data={"paused": "0"}, headers=bearer),
        client.delete("/api/v1/products/A", headers=bearer),
        client.post("/api/v1/products", json={"sku": "X", "name": "x", "price": 1, "stock": 1}, headers=bearer),
        client.get("/account/", headers=bearer),
        client.post("/account/tokens", data={"name": "more", "scopes": ["products:write"]}, headers=bearer),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert snapshot(Path(app.config["DATA_DIR"])) == before
    # what a POS sync needs still works
    assert client.get("/api/v1/products", headers=bearer).status_code == 200
    set_stock = client.put("/api/v1/products/A/stock", json={"stock": 9}, headers=bearer)
    assert set_stock.status_code == 200 and set_stock.get_json()["stock"] == 9


def test_3_tokens_are_created_with_scopes_listed_and_revoked_from_the_page(app: Any, logged_in: Any) -> None:
    created = logged_in.post("/account/tokens", data={"csrf_token": csrf_of(logged_in), "name": "catalogue",
                                                      "scopes": ["products:read", "products:write"]})
    assert created.status_code == 200
    token = created.data.split(b"<pre>")[1].split(b"</pre>")[0].decode()
    assert b"products:read, products:write" in created.data  # shown at creation, in the list
    bearer = {"Authorization": f"Bearer {token}"}
    assert logged_in.post("/api/v1/products", json={"sku": "N1", "name": "n", "price": 1, "stock": 1},
                          headers=bearer).status_code == 201
    assert logged_in.put("/api/v1/products/N1/stock", json={"add": 1}, headers=bearer).status_code == 403
    account = logged_in.get("/account/").data
    assert b'href="/account/tokens/catalogue/revoke"' in account  # the list links to a confirmation
    confirm = logged_in.get("/account/tokens/catalogue/revoke")
    assert confirm.status_code == 200 and b"Revoke the token" in confirm.data and b"Cancel" in confirm.data
    assert logged_in.get("/api/v1/products", headers=bearer).status_code == 200  # asking changes nothing
    assert logged_in.get("/account/tokens/nope/revoke").status_code == 404
    logged_in.post("/account/tokens/catalogue/revoke", data={"csrf_token": csrf_of(logged_in)})
    assert logged_in.get("/api/v1/products", headers=bearer).status_code == 401  # on the next request


# -- 4: a missing store.json ------------------------------------------------------------------------------
def test_4_a_missing_store_with_a_backup_refuses_to_start_and_keeps_the_backup(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    from smartshelf.core.errors import StorageError

    data = tmp_path / "data"
    app = make_app(data)
    repo = app.extensions["smartshelf.repository"]
    for i in range(151):
        repo.create_product({"sku": f"P{i:03d}", "name": f"Product {i}", "price": 100, "stock": 3})
    good_backup = (data / "store.json.bak").read_bytes()
    (data / "store.json").unlink()
    with caplog.at_level(logging.ERROR), pytest.raises(StorageError, match=r"store.json is missing.*store.json.bak"):
        make_app(data)
    assert any(r.levelno == logging.ERROR and "store.json.bak" in r.getMessage() for r in caplog.records)
    # and the running app, whose file vanished under it, refuses to write rather than replace the backup
    with pytest.raises(StorageError, match="missing"):
        repo.create_product({"sku": "NEW", "name": "New", "price": 1, "stock": 1})
    assert (data / "store.json.bak").read_bytes() == good_backup
    assert json.loads(good_backup)["products"].__len__() >= 150


@pytest.mark.parametrize("evidence", ["events/2026-11-26.json", "ledger.sqlite", "images/a.png"])
def test_4_other_evidence_of_earlier_data_also_refuses(tmp_path: Path, evidence: str) -> None:
    from smartshelf.core.errors import StorageError

    data = tmp_path / "data"
    (data / evidence).parent.mkdir(parents=True, exist_ok=True)
    (data / evidence).write_bytes(b"x")
    with pytest.raises(StorageError, match=evidence.split("/")[0]):
        make_app(data)


def test_4_a_fresh_install_with_only_a_password_starts_empty_and_writes_its_store(tmp_path: Path) -> None:
    app = make_app(tmp_path / "fresh")
    assert app.extensions["smartshelf.repository"].count_products() == 0
    # the empty store is on disk from the first start: a device event later is no reason to refuse a restart
    assert json.loads((tmp_path / "fresh" / "store.json").read_bytes()) == {"meta": {"1": {"ledger_seq": 0}}}
    (tmp_path / "fresh" / "events").mkdir()
    (tmp_path / "fresh" / "events" / "2026-11-26.json").write_text("{}")
    assert make_app(tmp_path / "fresh").extensions["smartshelf.repository"].count_products() == 0


# -- 5: the device's loopback control endpoint ------------------------------------------------------------
@pytest.fixture
def device(tmp_path: Path) -> Any:
    server = start_device_server(tmp_path)
    yield server
    server.close()


def _raw(server: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=5)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{server.httpd.server_address[1]}", "Content-Length": str(len(body)),
                **(headers or {})}
        for key, value in sent.items():
            if value is not None:
                conn.putheader(key, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_5_a_text_plain_post_without_the_secret_cannot_resume_the_camera(device: Any) -> None:
    status, _ = _raw(device, "POST", "/control/pause", b'{"paused": false}', {"Content-Type": "text/plain"})
    assert status == 403
    status, _ = _raw(device, "POST", "/control/pause", b'{"paused": false}',
                     {"Content-Type": "text/plain", "X-Smartshelf-Control": device.secret_value})
    assert status == 400  # with the secret, still JSON only
    assert device.commands == []


def test_5_foreign_host_headers_are_refused(device: Any) -> None:
    port = device.httpd.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", f"127.0.0.1.nip.io:{port}", ""):
        status, _ = _raw(device, "GET", "/state", headers={"Host": host})
        assert status in (400, 421), host
    assert _raw(device, "GET", "/state", headers={"Host": f"localhost:{port}"})[0] == 200


def test_5_the_admin_drives_the_device_and_rotation_revokes_the_old_secret(device: Any) -> None:
    from admin_web.device_client import DeviceClient
    from admin_web.errors import DeviceUnavailable
    from smartshelf.core.control import rotate

    client = DeviceClient(device.url, data_dir=device.data_dir)
    assert client.pause(True) == {"ok": True}
    client.reload()
    assert device.commands == [("pause", {"paused": True}), ("reload", {})]
    old = device.secret_value
    rotate(device.data_dir)
    headers = {"Content-Type": "application/json", "X-Smartshelf-Control": old}
    assert _raw(device, "POST", "/control/pause", b'{"paused": false}', headers)[0] == 403
    assert client.pause(False) == {"ok": True}  # the admin reads the new secret
    with pytest.raises(DeviceUnavailable, match="403"):
        DeviceClient(device.url).pause(False)  # no secret at all
    assert device.commands[-1] == ("pause", {"paused": False}) and len(device.commands) == 3


# -- 6: the login limiter -------------------------------------------------------------------------------------
def test_6_forty_parallel_wrong_guesses_are_forty_counted_failures(app: Any) -> None:
    limiter = app.extensions["smartshelf.login_limiter"]
    results: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(40)

    def guess() -> None:
        client = app.test_client()
        page = client.get("/login")
        token = page.data.split(b'name="csrf_token" value="')[1].split(b'"')[0].decode()
        barrier.wait()
        response = client.post("/login", data={"username": "admin", "password": "wrong guess 123",
                                               "csrf_token": token})
        with lock:
            results.append(response.status_code)

    limiter.clock = lambda: 10**9
    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 40
    assert results.count(401) == app.config["LOGIN_MAX_FAILURES"]  # only that many reached a password check
    assert results.count(429) == 40 - app.config["LOGIN_MAX_FAILURES"]


def test_6_ten_addresses_cannot_each_guess_the_same_account(app: Any) -> None:
    app.extensions["smartshelf.login_limiter"].clock = lambda: 5000.0  # no backoff expires meanwhile
    checked = 0
    for i in range(10):
        client = app.test_client()
        for _ in range(5):
            if login(client, password="wrong guess 123", REMOTE_ADDR=f"127.0.0.{i + 2}").status_code == 401:
                checked += 1
    assert checked == app.config["LOGIN_MAX_FAILURES"]  # not 50


def test_6_behind_a_proxy_the_client_address_is_the_forwarded_one_and_the_cookie_secure(tmp_path: Path) -> None:
    app = make_app(tmp_path / "d", PROXY_HOPS=1)
    now = [0.0]
    app.extensions["smartshelf.login_limiter"].clock = lambda: now[0]
    attacker, owner = app.test_client(), app.test_client()
    for _ in range(8):  # the proxy's own address is the same for everyone
        login(attacker, user="someone", password="wrong guess 123", REMOTE_ADDR="10.0.0.1")
    # forwarded from a different client: the attacker's address is throttled, the owner is not
    forwarded = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "192.168.1.20", "HTTP_X_FORWARDED_PROTO": "https"}
    page = owner.get("/login", environ_base=forwarded)
    token = page.data.split(b'name="csrf_token" value="')[1].split(b'"')[0].decode()
    ok = owner.post("/login", data={"username": "admin", "password": "correct horse battery", "csrf_token": token},
                    environ_base=forwarded)
    assert ok.status_code == 302
    assert "Secure" in ok.headers["Set-Cookie"]


# -- 7: an image decompression bomb -------------------------------------------------------------------------------
def _png_of_size(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG header claiming ``width`` x ``height`` (no pixel data needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_7_a_16000_square_png_is_refused_from_its_header_before_decoding(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from admin_web import images
    from smartshelf.core.errors import ImageError

    loaded: list[tuple[int, int]] = []
    real_load = Image.Image.load

    def spy_load(self: Any) -> Any:
        loaded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", spy_load)
    with pytest.raises(ImageError, match="256000000 pixels|16000x16000"):
        images.save_image(tmp_path, "A1", _png_of_size(16000, 16000), max_bytes=5 * 1024 * 1024)
    assert loaded == []  # no pixel of the bomb was decoded
    assert not (tmp_path / "images").exists()


def test_7_the_upload_form_answers_with_the_reason(app: Any, logged_in: Any, products: Any) -> None:
    before = snapshot(Path(app.config["DATA_DIR"]))
    response = logged_in.post("/products/A/edit", data={
        "csrf_token": csrf_of(logged_in), "sku": "A", "name": "Product A", "price": "2.50", "currency": "EUR",
        "stock": "5", "image": (io.BytesIO(_png_of_size(16000, 16000)), "bomb.png")},
        content_type="multipart/form-data")
    assert response.status_code in (400, 422) and b"256000000 pixels" in response.data
    assert snapshot(Path(app.config["DATA_DIR"])) == before


# -- 8: requests that returned 500 --------------------------------------------------------------------------------
def test_8_deeply_nested_json_is_a_400_on_the_api_and_a_422_on_the_terminal(app: Any, client: Any,
                                                                          products: Any) -> None:
    token = app.extensions["smartshelf.accounts"].create_token("t", ["products:write", "products:read"])
    deep = b"[" * 5000 + b"]" * 5000  # far past json's recursion limit, well under the body limits
    before = snapshot(Path(app.config["DATA_DIR"]))
    api = client.post("/api/v1/products", data=deep, headers={"Authorization": f"Bearer {token}",
                                                               "Content-Type": "application/json"})
    assert api.status_code == 400 and "nests" in api.get_json()["message"]
    with app.app_context():
        till = get_ledger().pair("Till")
    before = snapshot(Path(app.config["DATA_DIR"]))
    terminal = _send(client, till, deep)
    assert terminal.status_code == 422
    assert snapshot(Path(app.config["DATA_DIR"])) == before


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z"])
def test_8_out_of_range_timestamps_are_422(app: Any, client: Any, products: Any, when: str) -> None:
    with app.app_context():
        till = get_ledger().pair("Till")
    body = json.dumps({"id": "e1", "type": "sale", "lines": [{"sku": "A", "qty": 1}], "amount": 1,
                       "currency": "EUR", "time": when}).encode()
    before = snapshot(Path(app.config["DATA_DIR"]))
    assert _send(client, till, body).status_code == 422
    assert snapshot(Path(app.config["DATA_DIR"])) == before


@pytest.mark.parametrize("header", ["t=\u00b2\u00b3,v1=ab", "t=1,v1=\u00e9\u00e9", "t=99999999999999999999,v1=00",
                                    "=,=,=", "t=1," + "v1=0," * 400, "\x00"])
def test_8_malformed_signature_headers_are_401(app: Any, client: Any, header: str) -> None:
    with app.app_context():
        till = get_ledger().pair("Till")
    response = client.post(TERMINAL_URL, data=_sale("e1"), headers={
        "Content-Type": "application/json", "X-Terminal-Id": till.terminal_id, "X-Signature": header})
    assert response.status_code == 401


@pytest.mark.parametrize("value", [10**30, -(10**30), "9" * 5000, 1e308])
def test_8_oversized_integers_are_422(app: Any, client: Any, value: Any) -> None:
    token = app.extensions["smartshelf.accounts"].create_token("t", ["products:write"])
    body = json.dumps({"sku": "BIG", "name": "Big", "price": 1, "stock": value})
    response = client.post("/api/v1/products", data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code == 422 and response.get_json()["field"] == "stock"


@pytest.mark.parametrize(("key", "value"), [("stock", "7"), ("price", None), ("name", 3)])
def test_8_a_hand_edited_wrong_type_in_store_json_is_one_line_at_start(tmp_path: Path, key: str, value: Any) -> None:
    from smartshelf.core.errors import StorageError

    data = tmp_path / "data"
    app = make_app(data)
    app.extensions["smartshelf.repository"].create_product({"sku": "A1", "name": "A", "price": 1, "stock": 1})
    raw = json.loads((data / "store.json").read_text())
    raw["products"]["1"][key] = value
    (data / "store.json").write_text(json.dumps(raw))
    with pytest.raises(StorageError) as caught:
        make_app(data)
    message = str(caught.value)
    assert "\n" not in message and "store.json" in message and f"products[1].{key}" in message


def test_8_the_admin_command_prints_that_line_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smartshelf.cli import main

    data = tmp_path / "data"
    make_app(data).extensions["smartshelf.repository"].create_product({"sku": "A1", "name": "A", "price": 1, "stock": 1})
    raw = json.loads((data / "store.json").read_text())
    raw["products"]["1"]["stock"] = "seven"
    (data / "store.json").write_text(json.dumps(raw))
    assert main(["admin", "serve", "--data-dir", str(data), "--check"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any("products[1].stock" in line and "store.json" in line for line in err), err


# -- revocation: a login, a token, a terminal and the device channel each stop on the next request -----------
def test_a_revoked_terminal_is_refused_on_its_next_event(app: Any, logged_in: Any, products: Any) -> None:
    with app.app_context():
        till = get_ledger().pair("Till 9")
    assert _send(logged_in, till, _sale("r-1")).get_json() == {"status": "applied"}
    page = logged_in.post(f"/terminals/{till.terminal_id}/revoke", data={"csrf_token": csrf_of(logged_in)})
    assert page.status_code == 200
    before = snapshot(Path(app.config["DATA_DIR"]))
    assert _send(logged_in, till, _sale("r-2")).status_code == 401
    assert snapshot(Path(app.config["DATA_DIR"])) == before
