"""Landing into an S3 lake (moto): parallel publication, ETag-pinned second read, server-side
quarantine copy."""

from __future__ import annotations

import gzip

import boto3
import pytest

import ingestion.land as land_mod
from ingestion.land import land
from ingestion.s3 import S3Lake, SourceChanged
from ingestion.settings import Settings

HEADER = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)


@pytest.fixture
def buckets(aws_env, unique_name):
    s3 = boto3.client("s3")
    incoming, lake = unique_name("incoming"), unique_name("lake")
    s3.create_bucket(Bucket=incoming)
    s3.create_bucket(Bucket=lake)
    return {"incoming": incoming, "lake": lake, "s3": s3}


def orders(n: int, days: int) -> bytes:
    rows = [
        f"{i},{10 + i % 4},Client {i % 4},{i % 3 + 1},Duff,1.25,2,0.500,retail,created,"
        f"2024-06-{1 + i % days:02d}"
        for i in range(1, n + 1)
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def objects(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_publication_moves_all_partition_files_with_one_parallel_move_many(
    buckets, monkeypatch
) -> None:
    # Given a file with rows on 12 dates, landed into an S3 lake whose moves are recorded
    s3 = buckets["s3"]
    s3.put_object(Bucket=buckets["incoming"], Key="in/many.csv", Body=orders(60, 12))
    calls: list[list[tuple[str, str]]] = []
    real = S3Lake.move_many

    def spy(self, pairs):
        calls.append(list(pairs))
        return real(self, pairs)

    monkeypatch.setattr(S3Lake, "move_many", spy)
    lake = S3Lake(f"s3://{buckets['lake']}/lake")
    # When it lands
    m = land(
        f"s3://{buckets['incoming']}/in/many.csv", settings=Settings(lake=lake.root_uri), lake=lake
    )
    # Then one move_many call published the 12 partition files; all are in raw/, none in staging
    assert m["status"] == "landed" and m["valid"] == 60
    assert len(calls) == 1
    assert sorted(dst for _src, dst in calls[0]) == sorted(
        f"raw/orders/pa_date=2024-06-{d:02d}/{m['ingest_id']}-0.parquet" for d in range(1, 13)
    )
    raw = objects(s3, buckets["lake"], "lake/raw/")
    assert len(raw) == 12
    assert objects(s3, buckets["lake"], "lake/_staging/") == []


def test_a_source_replaced_between_hashing_and_parsing_fails_loudly_and_lands_nothing(
    buckets, monkeypatch
) -> None:
    # Given an S3 source that is overwritten right after landing has hashed it
    s3 = buckets["s3"]
    s3.put_object(Bucket=buckets["incoming"], Key="in/moving.csv", Body=orders(5, 1))
    real = land_mod.fingerprint

    def fingerprint_then_replace(source):
        fp = real(source)
        s3.put_object(Bucket=buckets["incoming"], Key="in/moving.csv", Body=orders(9, 2))
        return fp

    monkeypatch.setattr(land_mod, "fingerprint", fingerprint_then_replace)
    lake = S3Lake(f"s3://{buckets['lake']}/lake")
    # When it is landed
    with pytest.raises(SourceChanged, match="changed since it was first read"):
        land(
            f"s3://{buckets['incoming']}/in/moving.csv",
            settings=Settings(lake=lake.root_uri),
            lake=lake,
        )
    # Then nothing landed, no staging or claim is left, and a retry lands the new version
    assert objects(s3, buckets["lake"], "lake/raw/") == []
    assert objects(s3, buckets["lake"], "lake/manifests/") == []
    assert objects(s3, buckets["lake"], "lake/_staging/") == []
    assert objects(s3, buckets["lake"], "lake/_state/claims/") == []
    monkeypatch.setattr(land_mod, "fingerprint", real)
    again = land(
        f"s3://{buckets['incoming']}/in/moving.csv",
        settings=Settings(lake=lake.root_uri),
        lake=lake,
    )
    assert again["status"] == "landed" and again["valid"] == 9


def test_a_refused_s3_file_is_copied_to_quarantine_server_side_byte_for_byte(
    buckets, monkeypatch
) -> None:
    # Given a gzip-compressed file on S3
    s3 = buckets["s3"]
    body = gzip.compress(orders(20, 2))
    s3.put_object(Bucket=buckets["incoming"], Key="in/zipped.csv", Body=body)
    copies: list[tuple[str, str]] = []
    real = S3Lake.copy_from

    def spy(self, source_uri, key):
        copies.append((source_uri, key))
        return real(self, source_uri, key)

    monkeypatch.setattr(S3Lake, "copy_from", spy)
    lake = S3Lake(f"s3://{buckets['lake']}/lake")
    # When it is landed
    source = f"s3://{buckets['incoming']}/in/zipped.csv"
    m = land(source, settings=Settings(lake=lake.root_uri), lake=lake)
    # Then it is quarantined by a server-side copy, and the kept object is the original bytes
    assert m["status"] == "quarantined" and "gzip" in m["error"]
    assert [src for src, _key in copies] == [source]
    key = f"lake/quarantine/{m['ingest_id']}/zipped.csv"
    assert s3.get_object(Bucket=buckets["lake"], Key=key)["Body"].read() == body
    assert objects(s3, buckets["lake"], "lake/raw/") == []


def test_a_claim_on_s3_from_another_sandbox_makes_a_delivery_busy_until_it_is_stale(
    buckets,
) -> None:
    # Given an S3 source and a claim on it written by a run in another sandbox (unknown kernel)
    import hashlib
    import json
    import time

    from ingestion.land import LandingBusy, claim_prefix, state_key

    s3 = buckets["s3"]
    body = orders(8, 2)
    s3.put_object(Bucket=buckets["incoming"], Key="in/claimed.csv", Body=body)
    source = f"s3://{buckets['incoming']}/in/claimed.csv"
    lake = S3Lake(f"s3://{buckets['lake']}/lake")
    prefix = claim_prefix(state_key(source, hashlib.sha256(body).hexdigest()))
    holder = {"boot_id": "another-sandbox", "pid": 8, "process_started": "77", "ingest_id": "x"}
    lake.put_atomic(f"{prefix}0000000000.json", json.dumps(holder).encode())
    # When it is delivered while the claim is young (TTL 900 s), with no patience
    settings = Settings(lake=lake.root_uri, claim_wait_seconds=0)
    with pytest.raises(LandingBusy, match="being landed by another run"):
        land(source, settings=settings, lake=lake)
    # Then nothing landed and the holder's claim is untouched
    assert objects(s3, buckets["lake"], "lake/raw/") == []
    assert lake.list(prefix) == [f"{prefix}0000000000.json"]
    # When it is delivered again once the claim is older than the TTL (here 0 s)
    time.sleep(1.1)  # S3's LastModified has one-second resolution
    stale = Settings(lake=lake.root_uri, claim_wait_seconds=0, claim_ttl_seconds=0)
    m = land(source, settings=stale, lake=lake)
    # Then the claim is taken over, the file lands, and every claim is released
    assert m["status"] == "landed" and m["valid"] == 8
    assert lake.list(prefix) == []
