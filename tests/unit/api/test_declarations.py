"""Served-mart declarations: read from the models' yml, checked, and carried as JSON."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from api.declarations import (
    DeclarationError,
    check,
    from_json,
    from_project,
    parse_model,
    to_json,
)
from api.routes import BUILTINS, Router

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
        ({"routes": [route(order_by=["nope"])]}, "order_by 'nope': 'nope' is not a column"),
        ({"routes": [route(order_by=["x_id up"])]}, "order_by 'x_id up': the direction is asc"),
        ({"routes": [route(path="/xs/{kind}")]}, "path parameter 'kind' must be a bigint column"),
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


def contract_routes() -> list[str]:
    """The paths of CONTRACT.md section 4's route table, without their query strings."""
    text = (ROOT / "CONTRACT.md").read_text(encoding="utf-8")
    return [m.split("?")[0] for m in re.findall(r"^\| `GET (\S+)` \|", text, re.M)]


def test_the_project_declares_every_contract_route_once():
    # Given the contract's routes (those the API serves itself aside), each declared once;
    # a mart the contract does not list may add more routes
    marts = from_project(ROOT)
    declared = [r.path for m in marts for r in m.routes]
    builtin = {e.path for e in BUILTINS}
    wanted = [path for path in contract_routes() if path not in builtin]
    assert len(wanted) == 11 and builtin <= set(contract_routes())
    assert sorted(path for path in declared if path in wanted) == sorted(wanted)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        # the same path twice
        ("/xs/{x_id}", "/xs/{x_id}", "route /xs/{x_id} is already served by mart_a"),
        # another parameter name at the same place: one request, two routes
        (
            "/xs/{x_id}",
            "/xs/{y_id}",
            "route /xs/{y_id} would answer requests of /xs/{x_id}, served by mart_a",
        ),
        # a literal segment against a parameter, both patterns
        (
            "/xs/{x_id}/ys",
            "/xs/{y_id}/{x_id}",
            "route /xs/{y_id}/{x_id} would answer requests of /xs/{x_id}/ys",
        ),
        # a path without parameters naming an id the pattern serves: it would hide client 5
        ("/xs/{x_id}", "/xs/5", "route /xs/5 would answer requests of /xs/{x_id}"),
        # the API's own routes, and the dashboard's files
        ("/ys", "/health", "route /health is already served by the API itself"),
        ("/ys", "/static/{x_id}", "route /static/{x_id}: /static/ is the dashboard's files"),
    ],
)
def test_two_routes_that_can_answer_one_request_are_refused(first, second, message):
    a, b = model(routes=[route(path=first)]), model(routes=[route(path=second, operation="ys")])
    a["name"], b["name"] = "mart_a", "mart_b"
    for spec in (a, b):
        spec["columns"].append({"name": "y_id", "data_type": "bigint"})
    with pytest.raises(DeclarationError, match="served mart mart_b: " + re.escape(message)):
        check([parse_model(a), parse_model(b)])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/xs/{x_id}", "/xs/{x_id}/ys"),  # not as many segments
        ("/xs/{x_id}", "/ys/{x_id}"),  # a literal segment differs
        ("/xs/{x_id}", "/xs/top"),  # matched first, and no id (a bigint) is "top"
    ],
)
def test_routes_no_request_can_confuse_are_accepted(first, second):
    a, b = model(routes=[route(path=first)]), model(routes=[route(path=second, operation="ys")])
    a["name"], b["name"] = "mart_a", "mart_b"
    marts = [parse_model(a), parse_model(b)]
    check(marts)
    # and the router finds each route by its own requests
    router = Router(marts)
    assert router.match(first.replace("{x_id}", "5"))[0].path == first
    assert router.match(second.replace("{x_id}", "5"))[0].path == second


def test_an_operation_used_twice_is_refused_with_its_owner():
    a, b = model(routes=[route(path="/xs")]), model(routes=[route(path="/ys")])
    a["name"], b["name"] = "mart_a", "mart_b"
    with pytest.raises(
        DeclarationError, match="mart_b: /ys: operation 'xs' is already used by mart_a"
    ):
        check([parse_model(a), parse_model(b)])


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
