"""The JSON API against the OpenAPI description it serves (``/api/v1/openapi.json``).

* The description and the Flask routes are in step: every ``/api/v1/`` route and method (the signed
  terminal webhooks aside, fuzzed in test_fuzz_http.py) is described, nothing else is, and each
  operation's ``x-scope`` is the scope the view demands of a token.
* schemathesis generates requests from the description, valid and invalid (positive and negative
  data generation): no 5xx, responses match their documented status codes, content types and
  schemas, and a refused request changes nothing in the data dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings
from schemathesis import DataGenerationMethod
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.helpers import FUZZ_EXAMPLES, FUZZ_SETTINGS, make_app, record, snapshot

WEBHOOKS = ("/api/v1/terminal/",)
STATE: dict[str, Any] = {}


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_the_description_is_served_and_in_step_with_the_routes(app: Any, client: Any) -> None:
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.is_json
    spec = served.get_json()
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item if method in ("get", "post", "put", "delete", "patch")}
    routed = {(_openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and not rule.rule.startswith(WEBHOOKS)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert described == routed
    for rule in app.url_map.iter_rules():
        if (_openapi_path(rule.rule), "GET") not in routed and not any(
                (_openapi_path(rule.rule), m) in routed for m in rule.methods):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = spec["paths"][_openapi_path(rule.rule)][method.lower()]
            scope = getattr(app.view_functions[rule.endpoint], "_smartshelf_scope", None)
            assert operation.get("x-scope") == scope, (method, rule.rule)


@pytest.fixture
def api_schema(tmp_path: Path) -> Any:
    data = tmp_path / "data"
    app = make_app(data)
    repo = app.extensions["smartshelf.repository"]
    repo.create_product({"sku": "A", "name": "Product A", "price": 250, "stock": 3, "slot": "A1"})
    STATE.update(data=data, token=app.extensions["smartshelf.accounts"].create_token(
        "schemathesis", ["products:read", "products:write", "stock:write", "settings:read", "settings:write"]))
    raw = app.test_client().get("/api/v1/openapi.json").get_data()
    return schemathesis.from_dict(json.loads(raw), app=app,
                                  data_generation_methods=[DataGenerationMethod.positive,
                                                           DataGenerationMethod.negative])


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(FUZZ_SETTINGS, max_examples=max(10, FUZZ_EXAMPLES // 2))  # per operation, valid and invalid
def test_api_conforms_to_its_description_and_never_fails(case: Any) -> None:
    data: Path = STATE["data"]
    before = snapshot(data)
    response = case.call_wsgi(headers={"Authorization": f"Bearer {STATE['token']}"})
    record("JSON API (schemathesis)", f"{case.method} {case.path}", response.status_code)
    case.validate_response(response, checks=(not_a_server_error, status_code_conformance,
                                              content_type_conformance, response_schema_conformance))
    if response.status_code >= 400:
        assert snapshot(data) == before, (case.method, case.formatted_path, case.body, response.status_code)
