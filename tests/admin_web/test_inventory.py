"""Inventory pages: add/edit/delete/restock, alerts, image upload, CSV import/export."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from smartshelf.core.storage import open_db

MYNTRA = Path(__file__).resolve().parents[3] / "shared" / "data" / "myntra" / "myntra_products_catalog.csv"


@pytest.fixture
def logged_in(client: Any, auth: Any) -> Any:
    auth.login()
    return client


def _add(client: Any, csrf: Any, **fields: str) -> Any:
    form = {"sku": "S1", "name": "Silk scarf", "price": "1174.50", "currency": "INR", "stock": "5",
            "low_stock": "2", "csrf_token": csrf()}
    form.update(fields)
    return client.post("/products/new", data=form)


def _products(app: Any) -> list[dict[str, Any]]:
    return open_db(Path(app.config["DATA_DIR"]) / "store.json").table("products").all()


def test_add_edit_restock_delete(app: Any, logged_in: Any, csrf: Any) -> None:
    assert _add(logged_in, csrf).status_code == 302
    [p] = _products(app)
    assert p["price"] == 117450 and p["stock"] == 5 and p["currency"] == "INR"
    page = logged_in.get("/products/").data.decode()
    assert "Silk scarf" in page and "1,174.50 INR" in page

    edit = logged_in.post("/products/S1/edit", data={"csrf_token": csrf(), "name": "Silk scarf, red",
                                                     "price": "999", "currency": "INR", "stock": "4",
                                                     "low_stock": "1", "slot": "C3"})
    assert edit.status_code == 302
    [p] = _products(app)
    assert (p["name"], p["price"], p["stock"], p["slot"]) == ("Silk scarf, red", 99900, 4, "C3")

    assert logged_in.post("/products/S1/restock", data={"csrf_token": csrf(), "quantity": "6"}).status_code == 302
    assert _products(app)[0]["stock"] == 10
    bad = logged_in.post("/products/S1/restock", data={"csrf_token": csrf(), "quantity": "-3"})
    assert bad.status_code == 303 and _products(app)[0]["stock"] == 10

    assert logged_in.post("/products/S1/delete", data={"csrf_token": csrf()}).status_code == 302
    assert _products(app) == []
    assert logged_in.post("/products/S1/delete", data={"csrf_token": csrf()}).status_code == 404


def test_form_errors_are_shown_and_nothing_saved(app: Any, logged_in: Any, csrf: Any) -> None:
    response = _add(logged_in, csrf, price="12.345")
    assert response.status_code == 422 and b"price" in response.data and _products(app) == []
    assert _add(logged_in, csrf).status_code == 302
    dup = _add(logged_in, csrf, name="Other")
    assert dup.status_code == 422 and b"already exists" in dup.data
    assert len(_products(app)) == 1


def test_low_stock_and_discrepancy_alerts(app: Any, logged_in: Any, csrf: Any) -> None:
    _add(logged_in, csrf, sku="LOW", stock="1", low_stock="2")
    _add(logged_in, csrf, sku="OK", stock="9")
    page = logged_in.get("/products/").data.decode()
    assert 'id="low-stock-alert"' in page and "LOW" in page.split('id="low-stock-alert"')[1].split("</div>")[0]
    assert 'id="discrepancy-alert"' not in page
    # a sale recorded by a terminal can take stock below zero
    from admin_web.repository import InventoryRepository

    with InventoryRepository(app.config["DATA_DIR"]).transaction() as tx:
        tx.product("OK")["stock"] = -2
    page = logged_in.get("/products/").data.decode()
    alert = page.split('id="discrepancy-alert"')[1].split("</div>")[0]
    assert "OK" in alert and "(-2)" in alert
    only = logged_in.get("/products/?filter=alerts").data.decode()
    assert 'data-sku="LOW"' in only and 'data-sku="OK"' in only
    dashboard = logged_in.get("/").data.decode()
    assert 'id="stock-alerts"' in dashboard


def _png() -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.full((4, 4, 3), 200, dtype=np.uint8))
    assert ok
    return buf.tobytes()


PNG_1PX = _png()


def test_image_upload_checks_content(app: Any, logged_in: Any, csrf: Any) -> None:
    _add(logged_in, csrf)
    form = {"csrf_token": csrf(), "name": "Silk scarf", "price": "10", "currency": "INR", "stock": "1"}
    fake = logged_in.post("/products/S1/edit", data={**form, "image": (io.BytesIO(b"<?php evil ?>"), "x.png")},
                          content_type="multipart/form-data")
    assert fake.status_code == 422 and b"not a PNG" in fake.data
    broken = logged_in.post("/products/S1/edit",
                            data={**form, "image": (io.BytesIO(PNG_1PX[:30]), "x.png")},
                            content_type="multipart/form-data")
    assert broken.status_code == 422 and b"cannot be decoded" in broken.data
    assert _products(app)[0]["image"] is None
    assert _products(app)[0]["price"] == 117450  # a refused image saves nothing else either
    ok = logged_in.post("/products/S1/edit", data={**form, "image": (io.BytesIO(PNG_1PX), "whatever.jpg")},
                        content_type="multipart/form-data")
    assert ok.status_code == 302
    name = _products(app)[0]["image"]
    assert name.endswith(".png") and (Path(app.config["DATA_DIR"]) / "images" / name).read_bytes() == PNG_1PX
    served = logged_in.get(f"/products/image/{name}")
    assert served.status_code == 200 and served.mimetype == "image/png" and served.data == PNG_1PX
    assert logged_in.get("/products/image/..%2Fstore.json").status_code == 404


def test_image_size_limit(app: Any, logged_in: Any, csrf: Any) -> None:
    app.config["MAX_IMAGE_BYTES"] = 50
    _add(logged_in, csrf)
    big = logged_in.post("/products/S1/edit", data={"csrf_token": csrf(), "name": "S", "price": "1", "stock": "1",
                                                    "currency": "INR",
                                                    "image": (io.BytesIO(PNG_1PX + b"\0" * 100), "a.png")},
                         content_type="multipart/form-data")
    assert big.status_code == 422 and b"limit" in big.data


def _upload(client: Any, csrf: Any, text: str) -> Any:
    return client.post("/products/import", data={"csrf_token": csrf(), "file": (io.BytesIO(text.encode()), "p.csv")},
                       content_type="multipart/form-data")


def test_template_import_with_bad_rows_imports_nothing(app: Any, logged_in: Any, csrf: Any) -> None:
    text = (
        "sku,name,brand,gender,category,price,currency,stock,slot,item_id,low_stock\n"
        "A1,Good one,Acme,female,tops,1000,INR,3,A1,,2\n"
        "A2,,Acme,female,tops,1000,INR,3,,,\n"            # line 3: name missing
        "A3,Bad price,Acme,male,tops,ten,INR,3,,,\n"      # line 4: price not an int
        "A1,Duplicate,Acme,male,tops,5,INR,1,,,\n"        # line 5: duplicate sku
        "A5,Bad gender,Acme,robot,tops,5,INR,1,,,\n"      # line 6
    )
    response = _upload(logged_in, csrf, text)
    assert response.status_code == 422
    report = response.data.decode()
    assert "Nothing was imported" in report
    for expected in ("line 3, <code>name</code>", "line 4, <code>price</code>", "line 5, <code>sku</code>",
                     "line 6, <code>gender</code>"):
        assert expected in report, expected
    assert _products(app) == []


def test_template_round_trip_export_import(app: Any, logged_in: Any, csrf: Any) -> None:
    _add(logged_in, csrf, sku="R1", name="=cmd|' /C calc'!A0", slot="B1")
    _add(logged_in, csrf, sku="R2", name="Plain", stock="0")
    exported = logged_in.get("/products/export.csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.data.decode())))
    assert [r["sku"] for r in rows] == ["R1", "R2"]
    assert rows[0]["name"].startswith("'=")  # spreadsheet formula defused
    assert rows[0]["price"] == "1174.50", "prices as staff write them, in the shop's format"
    # change stock in the CSV and import it back: updates in place, one write
    text = exported.data.decode().replace(",1174.50,INR,0,,", ",1174.50,INR,8,,")
    response = _upload(logged_in, csrf, text)
    assert response.status_code == 200 and b"0 new, 2 updated" in response.data
    stocks = {p["sku"]: p["stock"] for p in _products(app)}
    assert stocks == {"R1": 5, "R2": 8}


def _set_shop(logged_in: Any, csrf: Any, **fields: str) -> Any:
    form = {"csrf_token": csrf(), "shop_name": "Laden", "currency": "EUR", "locale": "de_DE", "generic_share": "0,1"}
    form.update(fields)
    return logged_in.post("/settings/", data=form)


def test_shop_settings_page_sets_the_defaults(app: Any, logged_in: Any, csrf: Any) -> None:
    page = logged_in.get("/settings/").data.decode()
    assert '<label for="currency">' in page and 'id="currency"' in page
    bad = _set_shop(logged_in, csrf, currency="XYZ", generic_share="2")
    assert bad.status_code == 422
    text = bad.data.decode()
    assert "&#39;XYZ&#39; is not an ISO 4217 currency code" in text and "generic_share" in text
    assert _set_shop(logged_in, csrf).status_code == 302
    assert "1.234,50" in logged_in.get("/products/new").data.decode(), "the form shows the shop's format"
    assert _add(logged_in, csrf, price="12,50", currency="").status_code == 302
    [p] = _products(app)
    assert p["price"] == 1250 and p["currency"] == "EUR", "12,50 in a EUR shop is 12.50 EUR, not 1,250"
    edit = logged_in.get("/products/S1/edit").data.decode()
    assert 'value="12,50"' in edit


def test_form_reports_every_bad_field_and_saves_nothing(app: Any, logged_in: Any, csrf: Any) -> None:
    from admin_web.repository import InventoryRepository

    repo = InventoryRepository(app.config["DATA_DIR"])
    repo.set_slot({"slot": "A1", "pin": 5})
    response = _add(logged_in, csrf, slot="Z9", stock="-3", currency="XYZ", price="zwölf")
    assert response.status_code == 422
    text = response.data.decode()
    for field in ("slot: &#39;Z9&#39; is not a slot of this shelf", "stock: must be at least 0, got -3",
                  "currency: &#39;XYZ&#39;", "price: &#39;zwölf&#39; is not an amount"):
        assert field in text, field
    assert _products(app) == []


def test_slot_moves_say_what_they_displace_and_ask_first(app: Any, logged_in: Any, csrf: Any) -> None:
    from admin_web.repository import InventoryRepository

    repo = InventoryRepository(app.config["DATA_DIR"])
    for slot, pin in (("A1", 5), ("A2", 6)):
        repo.set_slot({"slot": slot, "pin": pin})
    _add(logged_in, csrf, sku="DRESS", name="Dress", slot="A1")
    _add(logged_in, csrf, sku="CAP", name="Cap", slot="A2")
    # slots page: put DRESS on A2 -> asked first, nothing changed
    ask = logged_in.post("/slots/A2/assign", data={"csrf_token": csrf(), "sku": "DRESS"})
    assert ask.status_code == 409
    text = ask.data.decode()
    assert "Slot A2 holds CAP (Cap)" in text and "DRESS would leave slot A1" in text
    assert {p["sku"]: p["slot"] for p in _products(app)} == {"DRESS": "A1", "CAP": "A2"}
    done = logged_in.post("/slots/A2/assign", data={"csrf_token": csrf(), "sku": "DRESS", "move": "1"},
                          follow_redirects=True)
    assert "CAP (Cap) was taken off slot A2" in done.data.decode()
    assert {p["sku"]: p["slot"] for p in _products(app)} == {"DRESS": "A2", "CAP": None}
    # product form: put CAP on A2 -> a confirmation step, then the move
    form = {"name": "Cap", "price": "10", "currency": "INR", "stock": "5", "slot": "A2", "csrf_token": csrf()}
    ask = logged_in.post("/products/CAP/edit", data=form)
    assert ask.status_code == 409 and "Slot A2 holds DRESS (Dress)" in ask.data.decode()
    assert 'name="move" value="1"' in ask.data.decode()
    assert {p["sku"]: p["slot"] for p in _products(app)} == {"DRESS": "A2", "CAP": None}
    assert logged_in.post("/products/CAP/edit", data={**form, "move": "1"}).status_code == 302
    assert {p["sku"]: p["slot"] for p in _products(app)} == {"DRESS": None, "CAP": "A2"}


def test_european_csv_with_semicolons_and_decimal_commas(app: Any, logged_in: Any, csrf: Any) -> None:
    assert _set_shop(logged_in, csrf).status_code == 302
    text = (
        "sku;name;gender;category;price;stock;slot\n"
        "K1;Sommerkleid;female;Kleider;39,90;4;\n"
        "K2;Leinenhemd;male;Hemden;1.049,00;2;\n"
        "K3;Mütze;;;12.50;1;\n"
    )
    response = _upload(logged_in, csrf, text)
    assert response.status_code == 200, response.data.decode()[-2000:]
    assert b"3 new, 0 updated" in response.data
    got = {p["sku"]: (p["price"], p["currency"]) for p in _products(app)}
    assert got == {"K1": (3990, "EUR"), "K2": (104900, "EUR"), "K3": (1250, "EUR")}
    exported = logged_in.get("/products/export.csv").data.decode()
    assert exported.splitlines()[0].startswith("sku;name;") and ";39,90;EUR;" in exported


def test_csv_reports_every_error_of_every_row(app: Any, logged_in: Any, csrf: Any) -> None:
    from admin_web.repository import InventoryRepository

    InventoryRepository(app.config["DATA_DIR"]).set_slot({"slot": "A1", "pin": 5})
    text = (
        "sku;name;price;currency;stock;slot\n"
        "B1;Bad all over;zwölf;XYZ;-3;Z9\n"
        "B2;;1,00;EUR;2000000;A1\n"
    )
    response = _upload(logged_in, csrf, text)
    assert response.status_code == 422
    report = response.data.decode()
    for expected in ("line 2, <code>price</code>", "line 2, <code>currency</code>", "line 2, <code>stock</code>",
                     "line 2, <code>slot</code>", "line 3, <code>name</code>", "line 3, <code>stock</code>"):
        assert expected in report, expected
    assert "Fix these 6 problem(s)" in report
    assert _products(app) == []


def test_unknown_csv_is_refused(logged_in: Any, csrf: Any) -> None:
    response = _upload(logged_in, csrf, "a,b\n1,2\n")
    assert response.status_code == 422 and b"not a product CSV" in response.data
    response = _upload(logged_in, csrf, "sku,name,price,stock,colour\nA,B,1,1,red\n")
    assert response.status_code == 422 and b"unknown column(s) colour" in response.data


def test_myntra_catalogue_import(app: Any, logged_in: Any, csrf: Any) -> None:
    if not MYNTRA.exists():
        pytest.skip(f"{MYNTRA} not available")
    with MYNTRA.open(encoding="utf-8") as fh:
        head = "".join(fh.readline() for _ in range(41))  # header + 40 products
    response = _upload(logged_in, csrf, head)
    assert response.status_code == 200 and b"40 new, 0 updated" in response.data
    products = {p["sku"]: p for p in _products(app)}
    first = products["10017413"]
    assert first["name"].startswith("DKNY Unisex Black & Grey") and first["brand"] == "DKNY"
    assert first["gender"] == "unisex" and first["price"] == 1174500 and first["currency"] == "INR"
    assert first["item_id"] == "10017413" and first["stock"] == 0
    assert products["10016283"]["gender"] == "female" and products["10015921"]["gender"] == "male"
    # re-import keeps the staff's stock and slot
    logged_in.post("/products/10017413/restock", data={"csrf_token": csrf(), "quantity": "4"})
    logged_in.post("/products/10017413/edit", data={"csrf_token": csrf(), "name": "renamed", "price": "1",
                                                    "currency": "INR", "stock": "4", "slot": "A1"})
    assert _upload(logged_in, csrf, head).status_code == 200
    again = {p["sku"]: p for p in _products(app)}["10017413"]
    assert again["stock"] == 4 and again["slot"] == "A1" and again["name"].startswith("DKNY")


def test_myntra_bad_rows_import_nothing(app: Any, logged_in: Any, csrf: Any) -> None:
    text = ("Product_ID,Product_Name,Product_Brand,Gender,Price,Num_Images,Description,Primary_Color,\n"
            "1,Good,Brand,Women,100,1,desc,Red,\n"
            "2,Bad price,Brand,Men,12.5,1,desc,Red,\n"
            "3,Bad gender,Brand,Aliens,100,1,desc,Red,\n")
    response = _upload(logged_in, csrf, text)
    assert response.status_code == 422
    assert b"line 3, <code>Price</code>" in response.data and b"line 4, <code>Gender</code>" in response.data
    assert _products(app) == []
