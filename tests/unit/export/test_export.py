"""``python -m export``: a clean, complete build of every served mart is published whole;
anything else publishes nothing and says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import duckdb
import pyarrow.parquet as pq
import pytest

from api.declarations import from_json, from_project
from export.__main__ import (
    EXIT_BUSY,
    ROOT,
    NothingToExport,
    WarehouseBusy,
    check_results,
    export,
)
from tests.support.duckdb_lock import held
from tests.support.fake_marts import make_orders, write_build

INVOCATION = "3f1c2b9e-0000-4000-8000-00000000abcd"
MARTS = from_project(ROOT)


def results(which="build", *, status="success", skip=(), invocation=INVOCATION):
    names = [m.name for m in MARTS] + ["mart_build_info", "fact_orders"]
    return {
        "metadata": {"invocation_id": invocation},
        "args": {"which": which},
        "results": [
            {"unique_id": f"model.duff.{n}", "status": status} for n in names if n not in skip
        ],
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_build(tmp_path_factory.mktemp("src"), make_orders(500, clients=30, seed=5))


@pytest.fixture
def warehouse(tmp_path, source):
    """A lake whose DuckDB warehouse holds every served mart (from the fake marts) and a
    mart_build_info of INVOCATION, plus dbt's run_results.json of that build."""
    lake = tmp_path / "lake"
    (lake / "warehouse").mkdir(parents=True)
    con = duckdb.connect(str(lake / "warehouse" / "duff.duckdb"))
    for mart in MARTS:
        con.execute(f"create table {mart.name} as select * from '{source}/{mart.name}/*.parquet'")
    con.execute(
        "create table mart_build_info as select ?::varchar as build_id,"
        " timestamp '2024-04-01 12:00:00' as built_at,"
        " timestamp '2024-04-01 11:00:00' as data_as_of",
        [INVOCATION],
    )
    con.close()
    target = tmp_path / "target"
    target.mkdir()
    (target / "run_results.json").write_text(json.dumps(results()))
    return lake, target, source


def test_a_clean_build_is_published_whole_in_served_order(warehouse):
    lake, target, _source = warehouse
    out = export(lake, target)
    assert out.name.endswith("_" + INVOCATION) and out.parent == lake / "marts" / "builds"
    files = sorted(p.name for p in out.iterdir())
    copies = [name for m in MARTS for name in m.sorted_copies()]
    wholes = [f"{name}.parquet" for name in copies]
    assert files == sorted([*copies, *wholes, "_served.json", "_SUCCESS.parquet"])
    assert "mart_orders__by_client_id" in files  # for /clients/{client_id}/orders
    by_client = pq.read_table(out / "mart_orders__by_client_id").to_pylist()
    keys = [(r["client_id"], r["order_id"]) for r in by_client]
    assert keys == sorted(keys) and len(keys) == 500
    assert from_json((out / "_served.json").read_text()) == MARTS
    ids = pq.read_table(out / "mart_orders").column("order_id").to_pylist()
    assert ids == sorted(ids) and len(ids) == 500
    spend = pq.read_table(out / "mart_client_sales").column("total_spend").to_pylist()
    assert spend == sorted(spend, reverse=True)
    assert pq.read_table(out / "_SUCCESS.parquet").to_pylist()[0]["build_id"] == INVOCATION
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left
    # the same invocation is not exported twice
    with pytest.raises(NothingToExport, match="already exported"):
        export(lake, target)


def test_each_relation_is_cut_into_ordered_parts_of_part_rows(warehouse):
    lake, target, _source = warehouse
    out = export(lake, target, part_rows=64)
    parts = sorted((out / "mart_orders__by_client_id").iterdir())
    assert [p.name for p in parts] == [f"part_{i:06d}.parquet" for i in range(8)]  # 500 rows
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    assert sizes == [64] * 7 + [500 - 7 * 64]
    keys = [(r["client_id"], r["order_id"]) for p in parts for r in pq.read_table(p).to_pylist()]
    assert keys == sorted(keys) and len(set(keys)) == 500  # consecutive runs, in name order
    whole = pq.read_table(out / "mart_orders__by_client_id.parquet").to_pylist()
    assert [(r["client_id"], r["order_id"]) for r in whole] == keys  # the same rows, one file
    spend = [
        r["total_spend"]
        for p in sorted((out / "mart_client_sales").iterdir())
        for r in pq.read_table(p).to_pylist()
    ]
    assert spend == sorted(spend, reverse=True) and len(spend) == 30
    # decimals of up to 18 digits stored as integers, as DuckDB's own COPY stores them
    schema = pq.ParquetFile(parts[0]).schema
    assert schema.column(schema.names.index("unit_price")).physical_type in ("INT32", "INT64")


def test_a_crash_mid_export_leaves_no_build_directory(warehouse, monkeypatch):
    lake, target, _ = warehouse
    import export.__main__ as step

    def boom(_marts):
        raise OSError("disk full")

    monkeypatch.setattr(step, "to_json", boom)  # after the marts, before _SUCCESS
    with pytest.raises(OSError, match="disk full"):
        export(lake, target)
    assert list((lake / "marts" / "builds").iterdir()) == []


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (results("test"), "not run or build"),
        ({**results(), "args": {"which": "build", "target": "athena"}}, "the 'athena' target"),
        (results(status="error"), "this build had problems"),
        (results(skip=("mart_orders",)), "not rebuilt by this invocation: mart_orders"),
        (results(skip=("mart_build_info",)), "not rebuilt by this invocation: mart_build_info"),
    ],
)
def test_a_partial_or_failed_invocation_exports_nothing(run, reason):
    with pytest.raises(NothingToExport, match=reason):
        check_results(run, MARTS)


def test_a_stale_build_info_is_not_published(warehouse):
    lake, target, _ = warehouse
    (target / "run_results.json").write_text(json.dumps(results(invocation="other-build")))
    with pytest.raises(NothingToExport, match="mart_build_info is not this build's"):
        export(lake, target)
    assert [p for p in (lake / "marts" / "builds").iterdir()] == []


def test_the_results_of_a_build_of_another_lake_export_nothing(tmp_path):
    # Given dbt's results of a clean build (target/ is the repository's, whatever DUFF_LAKE
    # is) and a lake dbt never built
    lake, target = tmp_path / "other_lake", tmp_path / "target"
    target.mkdir()
    (target / "run_results.json").write_text(json.dumps(results()))
    # Then there is nothing to export, said as such (not an error), and nothing is written
    with pytest.raises(NothingToExport, match=r"no warehouse at .*another lake"):
        export(lake, target)
    assert list((lake / "marts" / "builds").iterdir()) == []


def test_a_warehouse_held_by_dbt_is_busy_and_exports_nothing(warehouse):
    # Given another process (dbt) holding the warehouse's write lock
    lake, target, _ = warehouse
    with held(lake / "warehouse" / "duff.duckdb"):
        # When the export runs, Then it says busy (exit 75 on the command line), leaving nothing
        with pytest.raises(WarehouseBusy, match="Could not set lock"):
            export(lake, target)
        assert list((lake / "marts" / "builds").iterdir()) == []
        env = {**os.environ, "DUFF_LAKE": str(lake), "DUFF_DBT_TARGET": "local"}
        done = subprocess.run(
            [sys.executable, "-m", "export", "--target-path", str(target)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == EXIT_BUSY, done
        assert "in use by another process" in done.stdout
    # and once the lock is gone, the same results export
    assert export(lake, target).name.endswith(INVOCATION)


def test_two_exports_at_once_publish_one_build(warehouse):
    lake, target, _ = warehouse
    outcomes = []

    def one():
        try:
            outcomes.append(export(lake, target).name)
        except NothingToExport as why:
            outcomes.append(str(why))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    builds = [p.name for p in (lake / "marts" / "builds").iterdir()]
    assert len(builds) == 1 and builds[0].endswith(INVOCATION)
    assert sorted(outcomes) == sorted([builds[0], f"build {INVOCATION} is already exported"])
