"""The served OpenAPI document is valid and describes what the app answers."""

import json

import jsonschema
import pytest
from openapi_spec_validator import validate

from api.declarations import from_project
from api.routes import Router

ROUTES = Router(from_project(".")).endpoints


@pytest.fixture
def openapi_doc(api_get):
    resp = api_get("/openapi.json", key=None)
    assert resp.status == 200
    return json.loads(resp.body)


def test_document_is_valid_openapi_3(openapi_doc):
    validate(openapi_doc)


def test_every_route_is_documented_with_its_security(openapi_doc):
    assert set(openapi_doc["paths"]) == {r.path for r in ROUTES}
    for route in ROUTES:
        op = openapi_doc["paths"][route.path]["get"]
        assert ("security" in op and op["security"] == []) == (not route.auth)
        assert {p["name"] for p in op["parameters"] if p["in"] == "query"} == {
            p.name for p in route.query
        }


def _schema_for(doc, name):
    # resolve $refs within the document for jsonschema (OpenAPI 3.0 'nullable' mapped)
    def fix(node):
        if isinstance(node, dict):
            node = {k: fix(v) for k, v in node.items()}
            if node.pop("nullable", False) and "type" in node:
                node["type"] = [node["type"], "null"]
            if "$ref" in node:
                node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/$defs/")
            return node
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    defs = fix(doc["components"]["schemas"])
    return {"$ref": f"#/$defs/{name}", "$defs": defs}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.route is not None], ids=lambda r: r.name)
def test_responses_match_their_schemas(api_get, openapi_doc, route):
    path = route.path.replace("{client_id}", "13")
    resp = api_get(path)
    assert resp.status == 200
    jsonschema.validate(json.loads(resp.body), _schema_for(openapi_doc, route.response))
    bad = api_get(path, (("bogus", "1"),))
    jsonschema.validate(json.loads(bad.body), _schema_for(openapi_doc, "Error"))
