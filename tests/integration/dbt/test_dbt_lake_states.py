"""dbt over lakes in unusual states, with DUFF_LAKE given as a *relative* path.

One sequence per module (each dbt call takes seconds): an empty lake builds and exports empty
marts; source freshness runs over the local Parquet; a partial `--select` run exports nothing;
a build whose tests fail exports nothing, so the API keeps the last complete build; docs
generate."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import RAW_SCHEMA, REPO, SERVED_FILES, DbtProject, Order, RawLake

pytestmark = pytest.mark.slow  # minutes of dbt builds: scheduled first under xdist


def build_dirs(lake: Path) -> list[Path]:
    root = lake / "marts" / "builds"
    return sorted(p for p in root.iterdir()) if root.exists() else []


@pytest.fixture(scope="module")
def states(dbt_project_factory, tmp_path_factory):
    base = tmp_path_factory.mktemp("dbt_states")
    lake_abs = base / "lake"
    relative = os.path.relpath(lake_abs, REPO)
    assert not os.path.isabs(relative)
    project: DbtProject = dbt_project_factory("dbt_states_work", lake=relative)
    out: dict = {"lake": lake_abs}

    # Given an empty lake (nothing landed yet)
    out["empty"] = project.run("build")
    out["after_empty"] = build_dirs(lake_abs)

    # Given one landing stamped now
    lake = RawLake(lake_abs)
    now = dt.datetime.now(dt.UTC).replace(microsecond=123456)
    may = dt.date(2024, 5, 1)
    lake.land(
        [
            Order(1, 5, "Lenny", 200, "Duff", "1.25", 4, "0.330", "Retail", "delivered", may),
            Order(2, 6, "Carl", 201, "Duff Dry", "2.00", 1, "0.500", "B2B", "created", may),
        ],
        now,
    )
    out["landed_at"] = now
    out["freshness"] = project.run("source", "freshness", check=False)
    out["partial"] = project.run("run", "--select", "fact_orders")
    out["after_partial"] = build_dirs(lake_abs)

    # Given a CSV landed by the real ingestion CLI next to the test's own files: order 2
    # re-sent with a new status, channel and date, and a new order 3
    csv_file = base / "resend.csv"
    csv_file.write_text(
        "order_id,client_id,client_name,product_id,product_description,product_price,"
        "product_ccf,product_volume,point_of_sale_channel,status,order_date\n"
        "2,6,Carl Carlson,201,Duff Dry,2.00,1,0.500,online,DELIVERED,2024-05-09\n"
        "3,5,Lenny,200,Duff,1.25,2,0.330,b2b,created,2024-05-09\n"
    )
    ingest = subprocess.run(
        [sys.executable, "-m", "ingestion", str(csv_file), "--json"],
        cwd=REPO, env={**os.environ, "DUFF_LAKE": str(lake_abs)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    out["manifest"] = json.loads(ingest.stdout)
    out["good"] = project.run("build")
    out["after_good"] = build_dirs(lake_abs)

    # Given a raw file that breaks a key test (a null order_id)
    bad = {name: [None] for name in RAW_SCHEMA.names}
    bad.update(
        client_id=[7], client_name=["Lenny"], product_id=[200], product_description=["Duff"],
        point_of_sale_channel=["Retail"], status=["created"], source_file=["/x.csv"],
        ingest_id=["20990101T000000000000Z-bad"], source_line=[2],
        landed_at=[now + dt.timedelta(seconds=1)],
    )  # fmt: skip
    folder = lake_abs / "raw" / "orders" / "pa_date=2024-05-03"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pydict(bad, schema=RAW_SCHEMA), folder / "bad-0.parquet")
    out["failing"] = project.run("build", check=False)
    out["after_failing"] = build_dirs(lake_abs)
    (folder / "bad-0.parquet").unlink()

    out["docs"] = project.run("docs", "generate")
    out["work"] = project.work
    return out


def test_an_empty_lake_builds_and_exports_empty_marts(states):
    # Then the build succeeds and exports one complete build with no orders
    assert states["empty"].returncode == 0
    assert "no raw orders under" in states["empty"].output
    (only,) = states["after_empty"]
    assert {p.name for p in only.iterdir()} == SERVED_FILES
    assert pq.read_table(only / "mart_orders").num_rows == 0
    info = pq.read_table(only / "_SUCCESS.parquet").to_pylist()
    assert len(info) == 1 and info[0]["data_as_of"] is None
    # channels and statuses are listed with zeros even with no orders
    channels = pq.read_table(only / "mart_channel_sales").to_pylist()
    assert sorted(c["channel"] for c in channels) == ["B2B", "Online", "Retail"]
    assert all(c["orders"] == 0 for c in channels)


def test_relative_lake_path_keeps_all_state_under_the_lake(states):
    # Then the warehouse and the exports live under the (relative) DUFF_LAKE, nowhere else
    lake = states["lake"]
    assert (lake / "warehouse" / "duff.duckdb").exists()
    assert not (REPO / "lake" / "marts" / "builds").exists() or all(
        d not in build_dirs(REPO / "lake") for d in states["after_good"]
    )


def test_source_freshness_reads_the_local_parquet(states):
    # Given a file landed just now; Then freshness passes against the raw Parquet
    run = states["freshness"]
    assert run.returncode == 0, run.output[-3000:]
    assert "PASS freshness of raw.orders" in run.output


def test_a_partial_run_exports_nothing(states):
    assert "not rebuilt by this invocation" in states["partial"].output
    assert states["after_partial"] == states["after_empty"]


def test_a_good_build_after_the_empty_one_is_exported(states):
    new = [d for d in states["after_good"] if d not in states["after_empty"]]
    assert len(new) == 1
    rows = pq.read_table(new[0] / "mart_orders").to_pylist()  # in order_id order
    got = [
        (r["order_id"], r["client_id"], r["units"], str(r["total_amount"]), r["channel"],
         r["status"], r["pa_date"].isoformat())
        for r in rows
    ]  # fmt: skip
    # order 2 shows once, as the real ingestion re-sent it; order 3 is the CLI's new order
    assert got == [
        (1, 5, 4, "5.00", "Retail", "delivered", "2024-05-01"),
        (2, 6, 1, "2.00", "Online", "delivered", "2024-05-09"),
        (3, 5, 2, "2.50", "B2B", "created", "2024-05-09"),
    ]
    clients = {
        r["client_id"]: r["client_name"]
        for r in pq.read_table(new[0] / "mart_client_sales").to_pylist()
    }
    assert clients == {5: "Lenny", 6: "Carl Carlson"}
    info = pq.read_table(new[0] / "_SUCCESS.parquet").to_pylist()[0]
    manifest_landed = dt.datetime.fromisoformat(
        states["manifest"]["landed_at"].replace("Z", "+00:00")
    )
    assert states["manifest"]["status"] == "landed" and states["manifest"]["valid"] == 2
    assert info["data_as_of"] == manifest_landed.replace(tzinfo=None)


def test_a_failing_build_exports_nothing(states):
    # Given a landed row that breaks a not_null key test; When built; Then dbt fails and no
    # new build directory appears (the API keeps serving the last complete one)
    run = states["failing"]
    assert run.returncode != 0
    assert "not exporting the served marts" in run.output
    assert states["after_failing"] == states["after_good"]


def test_docs_generate_writes_a_catalog_of_every_model(states):
    catalog = json.loads((states["work"] / "target" / "catalog.json").read_text())
    names = {node["metadata"]["name"] for node in catalog["nodes"].values()}
    assert {"fact_orders", "dim_clients", "mart_orders", "mart_build_info"} <= names


def test_a_lake_path_with_a_single_quote_is_refused_with_the_reason(dbt_project_factory):
    # Given a lake directory whose path holds a single quote (it would end SQL literals)
    project = dbt_project_factory("dbt_quote_work")
    project.lake = project.work / "o'brien" / "lake"
    # When a model over the lake is compiled
    done = project.run("compile", "--select", "stg_raw__orders", check=False)
    # Then dbt stops before any SQL runs, saying which variable and why
    assert done.returncode != 0
    assert f"DUFF_LAKE={project.lake} holds a single quote" in done.output, done.output[-2000:]
