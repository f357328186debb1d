"""Data quality from file to warehouse: deliveries landed by the real ingestion CLI (one with
rejected rows and an ignored column, one quarantined) show in the quality marts as their
manifests say, and the conservation tests fail when a stored rejected row or a landed
partition file goes missing, or raw rows of no landing appear."""

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

from .conftest import REPO, RawLake, failed_tests
from .conftest import warehouse_query as query

HEADER = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date,promo_code\n"
)
# line 2 valid; line 3 misses client_name; line 4 has an unknown status; line 5 repeats
# order 1; line 6 valid
ROWS = (
    "1,5,Lenny,200,Duff,1.25,2,0.330,Retail,created,2024-05-09,X1\n"
    "2,6,,200,Duff,1.25,1,0.330,Retail,created,2024-05-09,\n"
    "3,6,Carl,200,Duff,1.25,1,0.330,Retail,lost,2024-05-10,\n"
    "1,5,Lenny,200,Duff,1.25,2,0.330,Retail,created,2024-05-09,X1\n"
    "4,6,Carl,201,Duff Dry,2.00,3,0.500,B2B,delivered,2024-05-10,\n"
)
EXPECTED_REJECTS = [(3, "missing"), (4, "invalid"), (5, "duplicate")]


def ingest(path: Path, lake: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "ingestion", str(path), "--json"],
        cwd=REPO, env={**os.environ, "DUFF_LAKE": str(lake)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def quality(dbt_project_factory, tmp_path_factory):
    # Given a delivery with three rejected rows and an extra column, and a file that is
    # quarantined (no orders header), both landed by the ingestion CLI, then a build
    project = dbt_project_factory("dbt_quality")
    lake = RawLake(project.lake)
    work = tmp_path_factory.mktemp("quality_files")
    orders = work / "orders.csv"
    orders.write_text(HEADER + ROWS)
    refused = work / "notes.csv"
    refused.write_text("title,body\nhello,world\n")
    landed = ingest(orders, lake.root)
    quarantined = ingest(refused, lake.root)
    assert (landed["status"], quarantined["status"]) == ("landed", "quarantined")
    project.run("build")
    return project, lake, landed, quarantined


def test_one_row_per_delivery_as_its_manifest_says(quality):
    _, lake, landed, quarantined = quality
    rows = query(
        lake,
        "select ingest_id, source_file, status, rows_in, valid, rejected_missing, "
        "rejected_invalid, rejected_duplicate, ignored_columns, error "
        "from mart_quality_files order by landed_at",
    )
    assert [r[:8] for r in rows] == [
        (landed["ingest_id"], landed["source_file"], "landed", 5, 2, 1, 1, 1),
        (quarantined["ingest_id"], quarantined["source_file"], "quarantined", 0, 0, 0, 0, 0),
    ]
    assert json.loads(rows[0][8]) == ["promo_code"] and rows[0][9] is None
    assert json.loads(rows[1][8]) == [] and rows[1][9] == quarantined["error"]


def test_rejected_rows_keep_their_line_reason_and_values(quality):
    _, lake, landed, _ = quality
    rows = query(
        lake,
        "select ingest_id, source_line, reason, column_name, raw_values "
        "from mart_quality_rejects order by source_line",
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (landed["ingest_id"], line, reason) for line, reason in EXPECTED_REJECTS
    ]
    assert rows[0][3] == "client_name" and rows[1][3] == "status"
    assert json.loads(rows[1][4])[9] == "lost"
    by_reason = query(
        lake,
        "select reason, sum(rejected_rows), sum(files) from mart_quality_rejects_daily "
        "group by reason order by reason",
    )
    assert by_reason == [("duplicate", 1, 1), ("invalid", 1, 1), ("missing", 1, 1)]


def test_conservation_fails_when_a_landed_partition_file_is_lost(quality):
    project, lake, landed, _ = quality
    test = ("test", "--select", "assert_landed_rows_match_manifests")
    assert project.run(*test).returncode == 0
    # When the delivery's partition file of 2024-05-10 (order 4, one of its 2 valid rows) is
    # lost from the lake
    (path,) = (lake.root / "raw" / "orders" / "pa_date=2024-05-10").glob(
        f"{landed['ingest_id']}-*.parquet"
    )
    lost = path.with_name(path.name + ".lost")
    path.rename(lost)
    try:
        # Then the test fails on that delivery: 1 raw row stored for a manifest's 2
        result = project.run(*test, "--store-failures", check=False)
        assert result.returncode != 0
        assert "assert_landed_rows_match_manifests" in failed_tests(result.output)
        assert query(
            lake,
            "select ingest_id, status, valid, stored_valid "
            "from main_dbt_test__audit.assert_landed_rows_match_manifests",
        ) == [(landed["ingest_id"], "landed", 2, 1)]
    finally:
        lost.rename(path)


def test_conservation_fails_on_raw_rows_no_landing_wrote(quality):
    project, lake, landed, _ = quality
    test = ("test", "--select", "assert_landed_rows_match_manifests")
    # When a raw file holds rows of an ingest_id with no manifest, landed a day ago (a copy
    # put in the lake by hand), beside the delivery's own files
    (path,) = (lake.root / "raw" / "orders" / "pa_date=2024-05-09").glob(
        f"{landed['ingest_id']}-*.parquet"
    )
    table = pq.read_table(path)
    stray_id = "20240101T000000000000Z-0123456789ab"
    stray_at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # long settled: no manifest is coming
    for name, value in (("ingest_id", stray_id), ("landed_at", stray_at)):
        field = table.schema.field(name)
        values = pa.array([value] * table.num_rows, field.type)
        table = table.set_column(table.schema.get_field_index(name), field, values)
    stray = path.with_name(f"{stray_id}-0.parquet")
    pq.write_table(table, stray)
    try:
        # Then the test fails on that ingest_id, with no manifest's count beside it
        result = project.run(*test, "--store-failures", check=False)
        assert "assert_landed_rows_match_manifests" in failed_tests(result.output)
        assert query(
            lake,
            "select ingest_id, status, valid, stored_valid "
            "from main_dbt_test__audit.assert_landed_rows_match_manifests",
        ) == [(stray_id, None, None, table.num_rows)]
    finally:
        stray.unlink()
    assert project.run(*test).returncode == 0


def test_data_is_as_of_the_latest_landed_file_even_one_with_no_valid_row(quality, tmp_path):
    # Given the build: its data is as of the delivery with valid rows (the quarantined file,
    # landed later, is not a landed file)
    project, lake, landed, quarantined = quality

    def landed_at(manifest: dict) -> dt.datetime:
        return dt.datetime.fromisoformat(manifest["landed_at"].replace("Z", "+00:00"))

    assert landed_at(quarantined) > landed_at(landed)
    as_of = "select data_as_of from mart_build_info"
    assert query(lake, as_of) == [(landed_at(landed).replace(tzinfo=None),)]
    # When a file lands whose every row is rejected (CONTRACT.md section 2: status landed,
    # valid 0), and a build follows
    path = tmp_path / "all_rejected.csv"
    path.write_text(HEADER + "5,7,,200,Duff,1.25,1,0.330,Retail,created,2024-05-11,\n")
    rejected = ingest(path, lake.root)
    assert (rejected["status"], rejected["valid"], rejected["rejected"]["missing"]) == (
        "landed",
        0,
        1,
    )
    project.run("build")
    # Then the data is as of that file: the latest landed file (section 4's /health)
    assert query(lake, as_of) == [(landed_at(rejected).replace(tzinfo=None),)]


def test_conservation_fails_when_a_stored_rejected_row_is_lost(quality):
    project, lake, landed, _ = quality
    test = ("test", "--select", "assert_rejects_match_manifests")
    assert project.run(*test).returncode == 0
    # When the stored rejects of the delivery lose their last row
    (path,) = (lake.root / "rejects" / "orders").rglob(f"{landed['ingest_id']}.parquet")
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)
    # Then the test fails on that delivery
    result = project.run(*test, check=False)
    assert result.returncode != 0
    assert "assert_rejects_match_manifests" in failed_tests(result.output)
