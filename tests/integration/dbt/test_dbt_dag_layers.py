"""The DAG follows the folders: staging -> intermediate -> core -> aggregates -> served.

`dbt parse` writes manifest.json; every model's parents must sit in its own layer or an
earlier one, so no model reads a later layer (docs/warehouse.md, "Layers"). A model outside
the five folders has no layer and fails too, so a new folder must be placed on purpose."""

from __future__ import annotations

import json

import pytest

# The folders, in build order; a model may read its own layer and the ones before it.
LAYERS = (
    ("staging", "models/staging/"),
    ("intermediate", "models/intermediate/"),
    ("core", "models/marts/core/"),
    ("aggregates", "models/marts/aggregates/"),
    ("served", "models/marts/served/"),
)


def layer_of(path: str) -> int | None:
    for rank, (_, folder) in enumerate(LAYERS):
        if path.startswith(folder):
            return rank
    return None


def layer_violations(manifest: dict) -> list[str]:
    """One line per model that refs a later layer, or that sits outside every layer."""
    nodes = manifest["nodes"]
    problems = []
    for node in nodes.values():
        if node["resource_type"] != "model":
            continue
        rank = layer_of(node["original_file_path"])
        if rank is None:
            problems.append(f"{node['name']}: {node['original_file_path']} is in no layer")
            continue
        for parent_id in node["depends_on"]["nodes"]:
            parent = nodes.get(parent_id)
            if parent is None or parent["resource_type"] != "model":
                continue  # sources and seeds feed any layer
            parent_rank = layer_of(parent["original_file_path"])
            if parent_rank is None or parent_rank > rank:
                problems.append(
                    f"{node['name']} ({LAYERS[rank][0]}) reads {parent['name']} "
                    f"({LAYERS[parent_rank][0] if parent_rank is not None else 'no layer'})"
                )
    return sorted(problems)


def model(name: str, path: str, parents: list[str]) -> tuple[str, dict]:
    return f"model.duff.{name}", {
        "resource_type": "model",
        "name": name,
        "original_file_path": path,
        "depends_on": {"nodes": [f"model.duff.{p}" for p in parents]},
    }


def test_the_check_catches_a_model_that_reads_a_later_layer():
    # Given the DAG issue 14 started from: an intermediate model reading the fact, and a
    # rollup reading a served mart
    manifest = {
        "nodes": dict(
            [
                model("stg_raw__orders", "models/staging/raw/stg_raw__orders.sql", []),
                model("fact_orders", "models/marts/core/fact_orders.sql", ["stg_raw__orders"]),
                model(
                    "int_orders__changed_days",
                    "models/intermediate/int_orders__changed_days.sql",
                    ["fact_orders"],
                ),
                model("mart_orders", "models/marts/served/mart_orders.sql", ["fact_orders"]),
                model("agg_sales__daily", "models/marts/aggregates/agg.sql", ["mart_orders"]),
                model("stray", "models/other/stray.sql", []),
            ]
        )
    }
    # When the check reads it, then it names both backward refs and the model in no layer
    assert layer_violations(manifest) == [
        "agg_sales__daily (aggregates) reads mart_orders (served)",
        "int_orders__changed_days (intermediate) reads fact_orders (core)",
        "stray: models/other/stray.sql is in no layer",
    ]


@pytest.fixture(scope="module")
def manifest(dbt_project_factory) -> dict:
    project = dbt_project_factory("dbt_dag")
    project.run("parse")
    return json.loads((project.work / "target" / "manifest.json").read_text())


def test_no_model_reads_a_later_layer(manifest):
    # Given the project as it is, when its parsed DAG is checked, then every ref points back
    assert layer_violations(manifest) == []
    # and the check saw the whole project: every layer holds models
    ranks = {
        layer_of(n["original_file_path"])
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
    }
    assert ranks == set(range(len(LAYERS)))


def test_models_say_their_order_with_refs(manifest):
    # A `-- depends_on:` comment is for a ref hidden inside a macro; a model's own order is
    # said by the refs it reads. mart_build_info is the one exception: it must be built after
    # every other served mart (and their tests) without reading them (docs/warehouse.md).
    commented = sorted(
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and "-- depends_on:" in n["raw_code"]
    )
    assert commented == ["mart_build_info"]
