"""JSON API /api/v1/products: CRUD, paging and errors (400/404/409/422) with JSON bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smartshelf.core.storage import open_db

PRODUCT = {"sku": "TEE-1", "name": "Cotton tee", "price": 49900, "stock": 7, "brand": "Acme", "gender": "unisex"}


@pytest.fixture
def api(app: Any, client: Any) -> Any:
    from admin_web.accounts import AccountStore

    token = AccountStore(app.config["DATA_DIR"]).create_token("tests", ["products:read", "products:write", "stock:write", "settings:read", "settings:write"])
    headers = {"Authorization": f"Bearer {token}"}

    class Api:
        def get(self, path: str) -> Any:
            return client.get(path, headers=headers)

        def post(self, path: str, body: Any) -> Any:
            return client.post(path, headers=headers, json=body)

        def put(self, path: str, body: Any) -> Any:
            return client.put(path, headers=headers, json=body)

        def delete(self, path: str) -> Any:
            return client.delete(path, headers=headers)

        def raw(self, method: str, path: str, data: bytes) -> Any:
            return client.open(path, method=method, headers={**headers, "Content-Type": "application/json"},
                               data=data)

    return Api()


def test_create_get_update_delete(api: Any, app: Any) -> None:
    created = api.post("/api/v1/products", PRODUCT)
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/api/v1/products/TEE-1")
    doc = created.json
    assert doc["currency"] == "INR" and doc["low_stock"] == 2 and doc["slot"] is None and doc["image"] is None
    assert api.get("/api/v1/products/TEE-1").json["name"] == "Cotton tee"

    updated = api.put("/api/v1/products/TEE-1", {"stock": 3, "slot": "A1"})
    assert updated.status_code == 200 and updated.json["stock"] == 3 and updated.json["name"] == "Cotton tee"
    # a GET document can be PUT back unchanged (read-only fields are ignored)
    assert api.put("/api/v1/products/TEE-1", api.get("/api/v1/products/TEE-1").json).status_code == 200

    stored = open_db(app.config["DATA_DIR"] + "/store.json").table("products").all()
    assert [(p["sku"], p["stock"], p["slot"]) for p in stored] == [("TEE-1", 3, "A1")]

    assert api.delete("/api/v1/products/TEE-1").status_code == 204
    assert api.get("/api/v1/products/TEE-1").status_code == 404


def test_paging(api: Any) -> None:
    for i in range(7):
        assert api.post("/api/v1/products", {**PRODUCT, "sku": f"P{i:02d}"}).status_code == 201
    page = api.get("/api/v1/products?page=2&per_page=3").json
    assert page["total"] == 7 and page["pages"] == 3 and page["page"] == 2 and page["per_page"] == 3
    assert [p["sku"] for p in page["items"]] == ["P03", "P04", "P05"]
    assert [p["sku"] for p in api.get("/api/v1/products?page=3&per_page=3").json["items"]] == ["P06"]
    assert api.get("/api/v1/products?page=9&per_page=3").json["items"] == []
    bad = api.get("/api/v1/products?per_page=0")
    assert bad.status_code == 422 and bad.json["field"] == "per_page"
    assert api.get("/api/v1/products?page=x").json["field"] == "page"


def test_duplicate_sku_is_409(api: Any) -> None:
    assert api.post("/api/v1/products", PRODUCT).status_code == 201
    dup = api.post("/api/v1/products", {**PRODUCT, "name": "Other"})
    assert dup.status_code == 409 and dup.json["error"] == "conflict" and "TEE-1" in dup.json["message"]
    assert api.get("/api/v1/products/TEE-1").json["name"] == "Cotton tee"


@pytest.mark.parametrize(("body", "field"), [
    ({k: v for k, v in PRODUCT.items() if k != "name"}, "name"),
    ({k: v for k, v in PRODUCT.items() if k != "sku"}, "sku"),
    ({k: v for k, v in PRODUCT.items() if k != "price"}, "price"),
    ({k: v for k, v in PRODUCT.items() if k != "stock"}, "stock"),
    ({**PRODUCT, "price": 12.5}, "price"),
    ({**PRODUCT, "price": -1}, "price"),
    ({**PRODUCT, "price": "100"}, None),  # a digit string is accepted as an int
    ({**PRODUCT, "stock": True}, "stock"),
    ({**PRODUCT, "gender": "robot"}, "gender"),
    ({**PRODUCT, "currency": "rupees"}, "currency"),
    ({**PRODUCT, "sku": "has space"}, "sku"),
    ({**PRODUCT, "slot": "A 1"}, "slot"),
    ({**PRODUCT, "low_stock": -2}, "low_stock"),
    ({**PRODUCT, "colour": "red"}, "colour"),
    ({**PRODUCT, "name": "x" * 201}, "name"),
])
def test_validation_is_422_naming_the_field(api: Any, body: dict[str, Any], field: str | None) -> None:
    response = api.post("/api/v1/products", body)
    if field is None:
        assert response.status_code == 201
        return
    assert response.status_code == 422, response.json
    assert response.json["error"] == "validation" and response.json["field"] == field
    assert api.get("/api/v1/products").json["total"] == 0


def test_malformed_json_is_400(api: Any) -> None:
    response = api.raw("POST", "/api/v1/products", b'{"sku": "A",')
    assert response.status_code == 400 and response.json["error"] == "bad_request"
    assert api.raw("POST", "/api/v1/products", b"[1, 2]").status_code == 400
    api.post("/api/v1/products", PRODUCT)
    assert api.raw("PUT", "/api/v1/products/TEE-1", b"not json").status_code == 400


def test_update_errors(api: Any) -> None:
    assert api.put("/api/v1/products/NOPE", {"stock": 1}).status_code == 404
    assert api.delete("/api/v1/products/NOPE").json["error"] == "not_found"
    api.post("/api/v1/products", PRODUCT)
    renamed = api.put("/api/v1/products/TEE-1", {"sku": "OTHER"})
    assert renamed.status_code == 422 and renamed.json["field"] == "sku"


def test_one_product_per_slot_and_moves_are_asked_first(api: Any, app: Any) -> None:
    api.post("/api/v1/products", {**PRODUCT, "slot": "B2"})
    before = open_db(app.config["DATA_DIR"] + "/store.json").table("products").all()
    clash = api.post("/api/v1/products", {**PRODUCT, "sku": "TEE-2", "slot": "B2"})
    assert clash.status_code == 409 and clash.json["error"] == "slot_taken" and clash.json["field"] == "slot"
    assert clash.json["displaced"] == {"sku": "TEE-1", "name": "Cotton tee", "slot": "B2"}
    assert "TEE-1" in clash.json["message"] and "\n" not in clash.json["message"]
    assert open_db(app.config["DATA_DIR"] + "/store.json").table("products").all() == before, "nothing changed"
    moved = api.post("/api/v1/products", {**PRODUCT, "sku": "TEE-2", "slot": "B2", "move": True})
    assert moved.status_code == 201 and moved.json["slot"] == "B2"
    assert moved.json["moved"]["displaced"]["sku"] == "TEE-1"
    assert api.get("/api/v1/products/TEE-1").json["slot"] is None
    # moving a product out of its own slot is asked too
    leave = api.put("/api/v1/products/TEE-2", {"slot": "C1"})
    assert leave.status_code == 409 and leave.json["moved_from"] == "B2" and leave.json["displaced"] is None
    assert api.put("/api/v1/products/TEE-2?move=1", {"slot": "C1"}).json["moved"]["moved_from"] == "B2"


def test_staff_input_read_in_the_shops_format_and_every_error_reported(api: Any, app: Any) -> None:
    assert api.put("/api/v1/settings", {"currency": "EUR", "locale": "de_DE"}).status_code == 200
    for n, (text, minor) in enumerate((("12,50", 1250), ("12.50", 1250), ("1.234,56", 123456))):
        created = api.post("/api/v1/products", {"sku": f"P{n}", "name": "x", "price": text, "stock": 1})
        assert created.status_code == 201 and created.json["price"] == minor, created.json
        assert created.json["currency"] == "EUR", "the shop's currency is the default"
    assert api.post("/api/v1/products", {"sku": "INT", "name": "x", "price": 1250, "stock": 1}).json["price"] == 1250
    bad = api.post("/api/v1/products", {"sku": "BAD", "name": "x", "price": "zwölf", "stock": -3,
                                        "currency": "XYZ"})
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json["errors"]}
    assert fields == {"price", "stock", "currency"}, bad.json
    assert any("'XYZ'" in e["message"] for e in bad.json["errors"])
    assert api.get("/api/v1/products/BAD").status_code == 404
    huge = api.post("/api/v1/products", {"sku": "HUGE", "name": "x", "price": 1, "stock": 10**7})
    assert huge.status_code == 422 and huge.json["field"] == "stock"
    refused = api.put("/api/v1/settings", {"currency": "XYZ", "generic_share": 0.9})
    assert refused.status_code == 422 and {e["field"] for e in refused.json["errors"]} == {"currency", "generic_share"}
    assert api.get("/api/v1/settings").json["currency"] == "EUR"


def test_slots_are_checked_against_the_shelfs_slots(api: Any, app: Any) -> None:
    from admin_web.repository import InventoryRepository

    InventoryRepository(app.config["DATA_DIR"]).set_slot({"slot": "A1", "pin": 5})
    wrong = api.post("/api/v1/products", {**PRODUCT, "slot": "Z9"})
    assert wrong.status_code == 422 and wrong.json["field"] == "slot" and "Z9" in wrong.json["message"]
    assert api.post("/api/v1/products", {**PRODUCT, "slot": "A1"}).status_code == 201


def test_api_with_session_login(client: Any, auth: Any, csrf: Any) -> None:
    auth.login()
    response = client.post("/api/v1/products", data=json.dumps(PRODUCT),
                           headers={"Content-Type": "application/json", "X-CSRF-Token": csrf()})
    assert response.status_code == 201
    assert client.get("/api/v1/products").json["total"] == 1
