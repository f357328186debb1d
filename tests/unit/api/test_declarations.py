"""Served-mart declarations: read from the models' yml, checked, and carried as JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.declarations import DeclarationError, from_json, from_project, parse_model, to_json

ROOT = Path(__file__).resolve().parents[3]


def model(**serve):
    return {
        "name": "mart_x",
        "columns": [
            {"name": "x_id", "data_type": "bigint", "data_tests": ["not_null"]},
            {"name": "amount", "data_type": "decimal(38, 2)"},
            {
                "name": "kind",
                "data_type": "varchar",
                "data_tests": [{"accepted_values": {"arguments": {"values": ["a", "B"]}}}],
            },
        ],
        "config": {"meta": {"serve": serve}},
    }


def route(**extra):
    return {"path": "/xs", "operation": "xs", "summary": "Xs", "order_by": ["x_id"], **extra}


def test_a_declaration_reads_types_scales_and_accepted_values():
    mart = parse_model(model(routes=[route(paged=True, filters=["kind"])]))
    assert [(c.name, c.kind, c.scale) for c in mart.columns] == [
        ("x_id", "int", 0),
        ("amount", "decimal", 2),
        ("kind", "text", 0),
    ]
    assert mart.column("kind").values == ("a", "B")
    assert mart.column("x_id").not_null and not mart.column("amount").not_null
    assert mart.schema == "MartX" and mart.routes[0].filters[0].params == ("kind",)
    assert from_json(to_json([mart])) == [mart]


@pytest.mark.parametrize(
    ("serve", "message"),
    [
        ({"routes": [route(order_by=["nope"])]}, "order_by 'nope'"),
        ({"routes": [route(path="/xs/")]}, "route path '/xs/'"),
        ({"routes": [route(filters=["nope"])]}, "filter on unknown column 'nope'"),
        ({"routes": [route(order_by=[], paged=True)]}, "a paged route needs order_by"),
        ({"routes": [route(operation="Bad-Name")]}, "operation 'Bad-Name'"),
        ({"routes": [route(path="/xs/{other_id}")]}, "path parameter 'other_id'"),
        ({"routes": []}, "serve.routes is empty"),
        ({"routes": [route()], "nest": {"o": {"f": "nope"}}}, "nest o: no column 'nope'"),
        ({"routes": [route()], "rename": {"nope": "x"}}, "no column 'nope'"),
        ({"routes": [route()], "json_arrays": ["nope"]}, "no column 'nope'"),
    ],
)
def test_a_malformed_declaration_is_refused_with_the_model_and_the_reason(serve, message):
    with pytest.raises(DeclarationError, match="served mart mart_x: .*" + message):
        parse_model(model(**serve))


def test_the_project_declares_every_contract_route_once():
    marts = from_project(ROOT)
    paths = sorted(r.path for m in marts for r in m.routes)
    assert paths == sorted(
        [
            "/clients",
            "/clients/{client_id}",
            "/clients/{client_id}/orders",
            "/orders",
            "/products",
            "/sales/by-channel",
            "/sales/by-product-channel",
            "/status-summary",
            "/sales/daily",
            "/quality/files",
            "/quality/rejects",
        ]
    )


def test_every_enum_filter_of_the_project_knows_its_values():
    # Given the project's declarations (a filter on a column without accepted values would
    # take any text and match nothing: /orders?channel=nope must be 400, not an empty 200)
    marts = {m.name: m for m in from_project(ROOT)}
    orders = marts["mart_orders"]
    # Then the batch-scoped tests count as the column's rule too
    assert orders.column("status").values == ("created", "delivered", "broken")
    assert orders.column("channel").values == ("Retail", "Online", "B2B")
    assert orders.column("order_id").not_null


@pytest.mark.parametrize(
    "test,values",
    [
        ({"accepted_values": {"arguments": {"values": ["a", "b"]}}}, ("a", "b")),
        ({"accepted_values_in_batch": {"arguments": {"values": ["a"]}}}, ("a",)),
        ("unique", ()),
    ],
)
def test_accepted_values_are_read_from_either_test(test, values):
    spec = model(routes=[route()])
    spec["columns"][2]["data_tests"] = [test]
    assert parse_model(spec).column("kind").values == values


def test_the_api_exposure_lists_every_served_mart():
    # dbt reads exposures only from yml: this keeps the lineage honest as marts are added
    doc = yaml.safe_load((ROOT / "models/marts/served/_served__exposures.yml").read_text())
    (exposure,) = [e for e in doc["exposures"] if e["name"] == "duff_api"]
    listed = {d.removeprefix("ref('").removesuffix("')") for d in exposure["depends_on"]}
    assert listed == {m.name for m in from_project(ROOT)} | {"mart_build_info"}
