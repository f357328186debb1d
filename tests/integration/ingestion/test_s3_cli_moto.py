"""``python -m ingestion s3://bucket/key --json`` against a moto server, lake on S3."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[3]
HEADER = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)


@pytest.fixture
def s3_cli(aws_env, unique_name, monkeypatch):
    s3 = boto3.client("s3")
    incoming, lake_bucket = unique_name("incoming"), unique_name("lake")
    s3.create_bucket(Bucket=incoming)
    s3.create_bucket(Bucket=lake_bucket)
    database = unique_name("duff").replace("-", "_")
    monkeypatch.setenv("DUFF_LAKE", f"s3://{lake_bucket}/lake")
    monkeypatch.setenv("DUFF_GLUE_DATABASE", database)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ingestion", *args],
            cwd=REPO,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
        )

    return {
        "run": run,
        "incoming": incoming,
        "lake_bucket": lake_bucket,
        "database": database,
        "endpoint": aws_env,
    }


def test_cli_lands_an_s3_object_into_an_s3_lake_and_prints_only_the_manifest(s3_cli):
    # Given an object with a space in its key: two valid rows on two dates and one missing
    key = "incoming/cli orders.csv"
    body = "\n".join(
        [
            HEADER,
            "1,10,Homer,100,Duff,2.50,4,0.500,Retail,created,2024-02-28",
            "2,11,Marge,101,Duff Dry,3.00,1,0.355,online,DELIVERED,2024-02-29",
            "3,12,,101,Duff Dry,3.00,1,0.355,online,created,2024-02-29",
        ]
    )
    boto3.client("s3").put_object(Bucket=s3_cli["incoming"], Key=key, Body=body.encode())
    source = f"s3://{s3_cli['incoming']}/{key}"

    # When the CLI lands it with --json
    done = s3_cli["run"](source, "--json")

    # Then it exits 0 and stdout holds exactly the manifest
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["status"] == "landed"
    assert manifest["source_file"] == source
    assert (manifest["rows_in"], manifest["valid"]) == (3, 2)
    assert manifest["rejected"] == {"missing": 1, "invalid": 0, "duplicate": 0}
    assert manifest["partitions"] == ["2024-02-28", "2024-02-29"]
    # And the manifest is stored under the lake prefix
    stored = (
        boto3.client("s3")
        .get_object(
            Bucket=s3_cli["lake_bucket"], Key=f"lake/manifests/{manifest['ingest_id']}.json"
        )["Body"]
        .read()
    )
    assert json.loads(stored)["ingest_id"] == manifest["ingest_id"]
    # And the Parquet is on S3 with the derived totals
    fs = pafs.S3FileSystem(endpoint_override=s3_cli["endpoint"], region="us-east-1")
    table = pq.read_table(f"{s3_cli['lake_bucket']}/lake/raw/orders/", filesystem=fs)
    rows = sorted(table.to_pylist(), key=lambda r: r["order_id"])
    assert [str(r["total_amount"]) for r in rows] == ["10.00", "3.00"]
    # And Glue has exactly the two partitions
    parts = boto3.client("glue").get_partitions(
        DatabaseName=s3_cli["database"], TableName="raw_orders"
    )["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == ["2024-02-28", "2024-02-29"]

    # When the same object is landed again, Then it is skipped with exit code 0
    again = s3_cli["run"](source, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "skipped"


def test_cli_quarantines_an_s3_object_with_exit_code_2(s3_cli):
    # Given a gzip-compressed object
    key = "incoming/packed.csv"
    original = gzip.compress(
        f"{HEADER}\n1,10,Homer,100,Duff,2.50,4,0.500,Retail,created,2024-02-28\n".encode()
    )
    boto3.client("s3").put_object(Bucket=s3_cli["incoming"], Key=key, Body=original)

    # When the CLI lands it
    done = s3_cli["run"](f"s3://{s3_cli['incoming']}/{key}", "--json")

    # Then it exits 2, and the original bytes are kept in the S3 quarantine
    assert done.returncode == 2, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["status"] == "quarantined"
    kept = (
        boto3.client("s3")
        .get_object(
            Bucket=s3_cli["lake_bucket"],
            Key=f"lake/quarantine/{manifest['ingest_id']}/packed.csv",
        )["Body"]
        .read()
    )
    assert kept == original


def test_cli_reports_a_missing_s3_object_clearly(s3_cli):
    # Given a key that does not exist, When the CLI is asked to land it
    done = s3_cli["run"](f"s3://{s3_cli['incoming']}/incoming/none.csv", "--json")

    # Then it fails with a readable message and prints no manifest
    assert done.returncode == 1
    assert done.stdout == ""
    assert "none.csv" in done.stderr
