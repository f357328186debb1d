"""The S3 event path end to end against a moto server: event -> handler -> landing -> S3 + Glue.

Each test builds its own CSV, puts it in an incoming bucket, invokes the Lambda entry point
with an S3 event whose key is URL-encoded as S3 sends it, and reads the result back from S3
(with pyarrow) and Glue.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import gzip
import json
import urllib.parse
from decimal import Decimal
from pathlib import Path

import boto3
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ingestion import handler as handler_mod
from ingestion.settings import Settings

# Every AWS call the handler makes is checked against the ingestion role (tests/aws_audit.py).
pytestmark = pytest.mark.usefixtures("iam_audit")

EVENTS = Path(__file__).resolve().parents[2] / "events"
HEADER = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)


def s3_key_in_event(key: str) -> str:
    """Encode a key as S3 does in event notifications: %xx escapes, '+' for a space."""
    return urllib.parse.quote_plus(key, safe="/")


@pytest.fixture
def aws_lake(aws_env, unique_name, monkeypatch):
    """Incoming and lake buckets, a Glue database, and the handler configured for them."""
    s3 = boto3.client("s3")
    incoming, lake_bucket = unique_name("incoming"), unique_name("lake")
    s3.create_bucket(Bucket=incoming)
    s3.create_bucket(Bucket=lake_bucket)
    database = unique_name("duff").replace("-", "_")
    monkeypatch.setenv("DUFF_LAKE", f"s3://{lake_bucket}/lake")
    monkeypatch.setenv("DUFF_GLUE_DATABASE", database)
    monkeypatch.setattr(handler_mod, "SETTINGS", Settings.from_env())
    handler_mod._runtime.cache_clear()
    yield {"incoming": incoming, "lake_bucket": lake_bucket, "database": database, "env": aws_env}
    # A test may have replaced _runtime itself (monkeypatch restores it after this teardown).
    getattr(handler_mod._runtime, "cache_clear", lambda: None)()


def put_csv(bucket: str, key: str, rows: list[str]) -> bytes:
    body = ("\r\n".join([HEADER, *rows]) + "\r\n").encode()
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return body


def event_for(bucket: str, *keys: str) -> dict:
    """The multi-record fixture, cut to ``keys`` in ``bucket``, with sizes from S3."""
    template = json.loads((EVENTS / "s3_put_multi.json").read_text())["Records"][0]
    s3 = boto3.client("s3")
    records = []
    for key in keys:
        record = copy.deepcopy(template)
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        record["s3"]["object"]["key"] = s3_key_in_event(key)
        record["s3"]["object"]["size"] = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        records.append(record)
    return {"Records": records}


class Context:
    aws_request_id = "it-request"


def lake_objects(env) -> list[str]:
    pages = (
        boto3.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=env["lake_bucket"], Prefix="lake/")
    )
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read_manifest(env, ingest_id: str) -> dict:
    body = boto3.client("s3").get_object(
        Bucket=env["lake_bucket"], Key=f"lake/manifests/{ingest_id}.json"
    )["Body"]
    return json.loads(body.read())


def glue_partitions(env) -> list[str]:
    parts = boto3.client("glue").get_partitions(
        DatabaseName=env["database"], TableName="raw_orders"
    )["Partitions"]
    return sorted(p["Values"][0] for p in parts)


def test_event_lands_parquet_manifest_and_glue_partitions(aws_lake):
    # Given a CSV under a key with spaces, a plus and an apostrophe: three valid rows on two
    # dates, a row with a bad price and a duplicate order id
    env = aws_lake
    key = "incoming/Homer's March orders+1.csv"
    put_csv(
        env["incoming"],
        key,
        [
            "1,10,Homer Simpson,100,Duff Beer 6-pack,9.99,2,2.130,retail,Delivered,2024-03-01",
            "2,11, Moe Szyslak ,101,Duff Dry,12.50,10,0.355, B2B ,created,2024-03-02",
            "3,10,Homer Simpson,100,Duff Beer 6-pack,abc,1,2.130,online,broken,2024-03-01",
            "4,12,Barney Gumble,102,Duff Lite,0,3,0.500,ONLINE,broken,2024-03-01",
            "1,10,Homer Simpson,100,Duff Beer 6-pack,9.99,1,2.130,retail,created,2024-03-01",
        ],
    )
    event = event_for(env["incoming"], key)
    assert "+" in event["Records"][0]["s3"]["object"]["key"]  # '+' for spaces, %2B for '+'

    # When the Lambda entry point handles the event
    summary = handler_mod.handler(event, Context())

    # Then one file landed with 5 rows in, 3 valid, 1 invalid, 1 duplicate
    assert (summary["records"], summary["landed"], summary["failed"]) == (1, 1, 0)
    (entry,) = summary["files"]
    source = f"s3://{env['incoming']}/{key}"
    assert entry["source_file"] == source
    manifest = read_manifest(env, entry["ingest_id"])
    assert manifest["status"] == "landed"
    assert manifest["source_file"] == source
    assert (manifest["rows_in"], manifest["valid"]) == (5, 3)
    assert manifest["rejected"] == {"missing": 0, "invalid": 1, "duplicate": 1}
    assert manifest["partitions"] == ["2024-03-01", "2024-03-02"]

    # And the Parquet under raw/orders/ reads back from S3 with the normalised values
    fs = pafs.S3FileSystem(endpoint_override=env["env"], region="us-east-1")
    table = pq.read_table(
        f"{env['lake_bucket']}/lake/raw/orders/", filesystem=fs, partitioning="hive"
    )
    rows = sorted(table.to_pylist(), key=lambda r: r["order_id"])
    assert [r["order_id"] for r in rows] == [1, 2, 4]
    assert [r["total_amount"] for r in rows] == [
        Decimal("19.98"),
        Decimal("125.00"),
        Decimal("0.00"),
    ]
    assert [r["total_liters"] for r in rows] == [
        Decimal("4.260"),
        Decimal("3.550"),
        Decimal("1.500"),
    ]
    assert [r["point_of_sale_channel"] for r in rows] == ["Retail", "B2B", "Online"]
    assert [r["status"] for r in rows] == ["delivered", "created", "broken"]
    assert rows[1]["client_name"] == "Moe Szyslak"
    assert {r["source_file"] for r in rows} == {source}
    assert {r["ingest_id"] for r in rows} == {entry["ingest_id"]}
    assert [str(r["pa_date"]) for r in rows] == ["2024-03-01", "2024-03-02", "2024-03-01"]
    assert [r["source_line"] for r in rows] == [2, 3, 5]

    # And Glue knows the table and exactly the two dates
    assert glue_partitions(env) == ["2024-03-01", "2024-03-02"]
    table_def = boto3.client("glue").get_table(DatabaseName=env["database"], Name="raw_orders")
    location = table_def["Table"]["StorageDescriptor"]["Location"]
    assert location == f"s3://{env['lake_bucket']}/lake/raw/orders/"

    # And the manifest file is one line of compact JSON (Athena's JSON SerDes read one
    # object per line), and Glue has the ingest tables: the rejects' landing day registered
    body = (
        boto3.client("s3")
        .get_object(Bucket=env["lake_bucket"], Key=f"lake/manifests/{entry['ingest_id']}.json")[
            "Body"
        ]
        .read()
    )
    assert body.endswith(b"\n") and body.count(b"\n") == 1
    assert json.loads(body) == manifest
    glue = boto3.client("glue")
    landing_day = manifest["landed_at"][:10]
    assert (
        boto3.client("s3").list_objects_v2(
            Bucket=env["lake_bucket"], Prefix=f"lake/rejects/orders/ingest_date={landing_day}/"
        )["KeyCount"]
        == 1
    )
    parts = glue.get_partitions(DatabaseName=env["database"], TableName="ingest_rejects")
    assert [(p["Values"], p["StorageDescriptor"]["Location"]) for p in parts["Partitions"]] == [
        (
            [landing_day],
            f"s3://{env['lake_bucket']}/lake/rejects/orders/ingest_date={landing_day}/",
        )
    ]
    manifests = glue.get_table(DatabaseName=env["database"], Name="ingest_manifests")["Table"]
    location = manifests["StorageDescriptor"]["Location"]
    assert location == f"s3://{env['lake_bucket']}/lake/manifests/"

    # And nothing is left in staging
    assert [k for k in lake_objects(env) if "/_staging/" in k] == []


def test_same_event_twice_is_skipped_and_writes_nothing(aws_lake):
    # Given a file already landed from an event
    env = aws_lake
    key = "incoming/orders 2024-04.csv"
    put_csv(
        env["incoming"],
        key,
        ["7,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-04-01"],
    )
    event = event_for(env["incoming"], key)
    first = handler_mod.handler(event, Context())
    before = lake_objects(env)

    # When S3 delivers the same event again
    second = handler_mod.handler(copy.deepcopy(event), Context())

    # Then it is skipped and the lake holds exactly the same objects
    assert (first["landed"], second["skipped"], second["landed"]) == (1, 1, 0)
    assert second["files"][0]["ingest_id"] == first["files"][0]["ingest_id"]
    assert lake_objects(env) == before
    assert glue_partitions(env) == ["2024-04-01"]


def test_changed_file_under_the_same_key_lands_as_a_new_version(aws_lake):
    # Given a landed file
    env = aws_lake
    key = "incoming/daily.csv"
    put_csv(env["incoming"], key, ["1,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-05-01"])
    first = handler_mod.handler(event_for(env["incoming"], key), Context())

    # When the same key is overwritten with different content and its event arrives
    put_csv(
        env["incoming"],
        key,
        [
            "1,10,Homer,100,Duff,1.00,1,0.500,retail,delivered,2024-05-01",
            "2,10,Homer,100,Duff,1.00,4,0.500,retail,created,2024-05-02",
        ],
    )
    second = handler_mod.handler(event_for(env["incoming"], key), Context())

    # Then it lands again under a new ingest id, with its own manifest and Parquet
    old_id, new_id = first["files"][0]["ingest_id"], second["files"][0]["ingest_id"]
    assert second["landed"] == 1 and new_id != old_id
    assert read_manifest(env, new_id)["valid"] == 2
    parquet = [k for k in lake_objects(env) if k.endswith(".parquet") and "/raw/" in k]
    assert len([k for k in parquet if new_id in k]) == 2  # one file per new partition
    assert len([k for k in parquet if old_id in k]) == 1
    assert glue_partitions(env) == ["2024-05-01", "2024-05-02"]


def test_several_records_in_one_event_each_land(aws_lake):
    # Given two files with keys needing %xx escapes, in one event
    env = aws_lake
    keys = ["incoming/café + bar.csv", "incoming/100% duff.csv"]
    put_csv(
        env["incoming"], keys[0], ["1,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-06-01"]
    )
    put_csv(
        env["incoming"], keys[1], ["2,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-06-02"]
    )

    # When the event is handled
    summary = handler_mod.handler(event_for(env["incoming"], *keys), Context())

    # Then both landed, named by their decoded keys
    assert summary["landed"] == 2
    assert [f["source_file"] for f in summary["files"]] == [
        f"s3://{env['incoming']}/{k}" for k in keys
    ]
    assert glue_partitions(env) == ["2024-06-01", "2024-06-02"]


def test_quarantined_file_on_s3_keeps_the_original_bytes_and_is_not_an_error(aws_lake):
    # Given a gzip-compressed CSV (refused whole by the contract)
    env = aws_lake
    key = "incoming/orders packed.csv"
    original = gzip.compress(
        (HEADER + "\n1,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-07-01\n").encode()
    )
    boto3.client("s3").put_object(Bucket=env["incoming"], Key=key, Body=original)

    # When its event is handled (no exception: a bad file is a result, not a Lambda error)
    summary = handler_mod.handler(event_for(env["incoming"], key), Context())

    # Then it is quarantined with the original bytes kept and a manifest saying why
    assert (summary["quarantined"], summary["failed"]) == (1, 0)
    ingest_id = summary["files"][0]["ingest_id"]
    kept = (
        boto3.client("s3")
        .get_object(
            Bucket=env["lake_bucket"], Key=f"lake/quarantine/{ingest_id}/orders packed.csv"
        )["Body"]
        .read()
    )
    assert kept == original
    manifest = read_manifest(env, ingest_id)
    assert manifest["status"] == "quarantined"
    assert (manifest["rows_in"], manifest["valid"]) == (0, 0)
    assert "gzip" in manifest["error"]
    assert not [k for k in lake_objects(env) if "/raw/" in k]


def test_lake_unreachable_raises_so_the_event_is_retried(aws_lake, monkeypatch):
    # Given a lake bucket that does not exist (a broken deployment)
    env = aws_lake
    key = "incoming/ok.csv"
    put_csv(env["incoming"], key, ["1,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-08-01"])
    monkeypatch.setattr(handler_mod, "SETTINGS", Settings(lake="s3://duff-no-such-lake-bucket/x"))
    handler_mod._runtime.cache_clear()

    # When the event is handled, Then the invocation fails (S3 retries, then the DLQ)
    with pytest.raises(handler_mod.IngestFailed, match="1 of 1"):
        handler_mod.handler(event_for(env["incoming"], key), Context())


def test_landed_at_is_recent_and_utc(aws_lake):
    # Given a landed file
    env = aws_lake
    key = "incoming/t.csv"
    put_csv(env["incoming"], key, ["1,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-09-01"])
    summary = handler_mod.handler(event_for(env["incoming"], key), Context())

    # Then its rows carry a UTC landed_at within a minute of now
    fs = pafs.S3FileSystem(endpoint_override=env["env"], region="us-east-1")
    table = pq.read_table(f"{env['lake_bucket']}/lake/raw/orders/", filesystem=fs)
    (landed_at,) = set(table.column("landed_at").to_pylist())
    assert abs(landed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert summary["files"][0]["ingest_id"] in set(table.column("ingest_id").to_pylist())


def test_two_concurrent_deliveries_of_one_event_land_once(aws_lake, monkeypatch):
    # Given one file, and a lake that holds both deliveries at the "landed before?" check until
    # both have reached it (the widest possible race, made deterministic)
    import threading

    from ingestion.glue import catalog_for_lake
    from ingestion.s3 import S3Lake

    env = aws_lake
    key = "incoming/raced.csv"
    put_csv(env["incoming"], key, ["1,10,Homer,100,Duff,1.00,1,0.500,retail,created,2024-10-01"])
    barrier = threading.Barrier(2, timeout=5)

    class RacingLake(S3Lake):
        def read_bytes(self, k):
            if k.startswith("_state/"):
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return super().read_bytes(k)

    lake = RacingLake(f"s3://{env['lake_bucket']}/lake")
    catalog = catalog_for_lake(lake.root_uri, env["database"])
    monkeypatch.setattr(handler_mod, "_runtime", lambda: (lake, catalog))
    event = event_for(env["incoming"], key)
    results: list[dict] = []

    def deliver():
        results.append(handler_mod.handler(copy.deepcopy(event), Context()))

    # When S3 delivers the event twice at the same moment
    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then one delivery landed it and the other skipped it: one manifest, one Parquet
    assert sorted(r["files"][0]["status"] for r in results) == ["landed", "skipped"]
    objects = lake_objects(env)
    assert len([k for k in objects if k.startswith("lake/manifests/")]) == 1
    assert len([k for k in objects if k.startswith("lake/raw/")]) == 1


def test_header_only_file_lands_with_no_parquet_and_no_partition(aws_lake):
    # Given a file with a header (BOM, CRLF) and no rows
    env = aws_lake
    key = "incoming/empty day.csv"
    body = b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n"
    boto3.client("s3").put_object(Bucket=env["incoming"], Key=key, Body=body)

    # When its event is handled
    summary = handler_mod.handler(event_for(env["incoming"], key), Context())

    # Then it is landed with zero rows: a manifest, no Parquet, no Glue partition
    assert summary["landed"] == 1
    manifest = read_manifest(env, summary["files"][0]["ingest_id"])
    assert (manifest["rows_in"], manifest["valid"], manifest["partitions"]) == (0, 0, [])
    assert not [k for k in lake_objects(env) if k.endswith(".parquet")]
    glue = boto3.client("glue")
    tables = glue.get_tables(DatabaseName=env["database"])["TableList"] if _db_exists(env) else []
    assert all(
        not glue.get_partitions(DatabaseName=env["database"], TableName=t["Name"])["Partitions"]
        for t in tables
    )


def _db_exists(env) -> bool:
    names = [d["Name"] for d in boto3.client("glue").get_databases()["DatabaseList"]]
    return env["database"] in names
