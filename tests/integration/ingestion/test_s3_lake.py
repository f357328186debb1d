"""S3Lake against a moto S3: every guarantee of the Lake protocol (ingestion/lake.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from decimal import Decimal

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ingestion import s3 as s3mod
from ingestion.lake import Lake, lake_from_uri
from ingestion.s3 import S3Lake, S3ObjectReader, SourceChanged, open_source, source_size


@pytest.fixture
def bucket(aws_env, unique_name):
    name = unique_name("lake")
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def lake(bucket):
    return S3Lake(f"s3://{bucket}/team/lake/")


def _keys(bucket, prefix=""):
    pages = (
        boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _body(bucket, key):
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_factory_returns_an_s3_lake_that_satisfies_the_protocol(bucket):
    # Given an s3:// lake URI with a trailing slash, When the factory builds the lake
    lake = lake_from_uri(f"s3://{bucket}/team/lake/")

    # Then it is an S3Lake, a Lake, and its URIs are normalised
    assert isinstance(lake, S3Lake)
    assert isinstance(lake, Lake)
    assert lake.root_uri == f"s3://{bucket}/team/lake"
    assert lake.uri("manifests/x.json") == f"s3://{bucket}/team/lake/manifests/x.json"
    assert S3Lake(f"s3://{bucket}").uri("a/b") == f"s3://{bucket}/a/b"


def test_keys_that_escape_the_lake_are_refused(lake):
    # Given keys that would leave the lake root, Then they are refused before any call
    for bad in ("/abs/key", "raw/../../other", ".."):
        with pytest.raises(ValueError, match="not a lake key"):
            lake.uri(bad)


def test_open_write_publishes_only_on_clean_exit(lake, bucket):
    # Given a small payload
    payload = b"order_id\n1\n"

    # When it is written, the object does not exist until the block exits
    with lake.open_write("_staging/a/part-0.bin") as out:
        out.write(payload)
        assert not lake.exists("_staging/a/part-0.bin")

    # Then the lake sees it with exactly those bytes, at the prefixed key
    assert lake.read_bytes("_staging/a/part-0.bin") == payload
    assert _body(bucket, "team/lake/_staging/a/part-0.bin") == payload


def test_open_write_streams_multipart_and_keeps_bytes(lake, bucket, monkeypatch):
    # Given 5 MiB parts (S3's minimum) and 12 MiB of data written in odd-sized chunks
    monkeypatch.setattr(s3mod, "PART_BYTES", 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024 + 123)

    # When it is streamed through open_write
    with lake.open_write("_staging/big.bin") as out:
        for start in range(0, len(data), 999_983):
            out.write(data[start : start + 999_983])

    # Then the object is a 3-part multipart upload with exactly the same bytes
    head = boto3.client("s3").head_object(Bucket=bucket, Key="team/lake/_staging/big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert hashlib.sha256(_body(bucket, "team/lake/_staging/big.bin")).digest() == (
        hashlib.sha256(data).digest()
    )


def test_open_write_error_leaves_no_object_and_no_pending_upload(lake, bucket, monkeypatch):
    # Given a writer that has already sent one part when it fails
    monkeypatch.setattr(s3mod, "PART_BYTES", 5 * 1024 * 1024)
    with (
        pytest.raises(RuntimeError, match="writer crashed"),
        lake.open_write("_staging/torn.bin") as out,
    ):
        out.write(b"x" * (6 * 1024 * 1024))
        raise RuntimeError("writer crashed")

    # Then nothing was published and the multipart upload was aborted
    assert not lake.exists("_staging/torn.bin")
    uploads = boto3.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == "team/lake/_staging/torn.bin"] == []


def test_a_writer_closing_its_sink_does_not_publish_a_failed_write(lake):
    # Given a writer that closes the stream itself and then fails
    with (
        pytest.raises(ValueError, match="late failure"),
        lake.open_write("_staging/closed.bin") as out,
    ):
        out.write(b"partial")
        out.close()
        raise ValueError("late failure")

    # Then nothing is published
    assert not lake.exists("_staging/closed.bin")


def test_parquet_written_through_open_write_reads_back_with_pyarrow(lake, bucket, aws_env):
    # Given a table with the raw schema's awkward types
    table = pa.table(
        {
            "order_id": pa.array([3, 1, 2], pa.int64()),
            "product_price": pa.array(
                [Decimal("1.50"), Decimal("0.00"), Decimal("12.25")], pa.decimal128(12, 2)
            ),
            "order_date": pa.array([dt.date(2024, 3, 1)] * 3, pa.date32()),
        }
    )

    # When pyarrow's Parquet writer streams into the lake (the writer closes after the block)
    with lake.open_write("raw/orders/pa_date=2024-03-01/x-0.parquet") as out:
        writer = pq.ParquetWriter(out, table.schema, compression="zstd")
        writer.write_table(table)
        writer.close()

    # Then (once the lake's background uploads are done) pyarrow's own S3 filesystem reads
    # the same table back from S3
    lake.flush()
    fs = pafs.S3FileSystem(endpoint_override=aws_env, region="us-east-1")
    back = pq.read_table(
        f"{bucket}/team/lake/raw/orders/pa_date=2024-03-01/x-0.parquet", filesystem=fs
    )
    assert back.equals(table)


def test_put_atomic_overwrites_and_read_bytes_of_missing_is_none(lake):
    # Given a manifest written twice
    lake.put_atomic("manifests/m.json", b'{"v": 1}')
    lake.put_atomic("manifests/m.json", b'{"v": 2}')

    # Then the last write wins and a missing key reads as None
    assert lake.read_bytes("manifests/m.json") == b'{"v": 2}'
    assert lake.read_bytes("manifests/absent.json") is None
    assert not lake.exists("manifests/absent.json")


def test_put_if_absent_claims_once(lake):
    # Given a first claim
    assert lake.put_if_absent("claims/abc.json", b"first") is True

    # When the same key is claimed again
    second = lake.put_if_absent("claims/abc.json", b"second")

    # Then the second claim fails and the first content stays
    assert second is False
    assert lake.read_bytes("claims/abc.json") == b"first"


def test_list_is_recursive_sorted_relative_and_prefix_exact(lake, bucket):
    # Given objects in this lake, a folder placeholder and a sibling lake in the same bucket
    s3 = boto3.client("s3")
    for key in (
        "raw/orders/pa_date=2024-03-02/b.parquet",
        "raw/orders/pa_date=2024-03-01/a.parquet",
        "raw/ordersx/z",
        "rejects/r.parquet",
    ):
        lake.put_atomic(key, b"1")
    s3.put_object(Bucket=bucket, Key="team/lake/raw/orders/empty-folder/", Body=b"")
    s3.put_object(Bucket=bucket, Key="team/lakeside/raw/orders/other.parquet", Body=b"1")

    # Then listing a directory prefix gives only its objects, sorted, as lake keys
    assert lake.list("raw/orders/") == [
        "raw/orders/pa_date=2024-03-01/a.parquet",
        "raw/orders/pa_date=2024-03-02/b.parquet",
    ]
    # And a bare prefix matches like S3 (and like LocalLake)
    assert lake.list("raw/ord") == [
        "raw/orders/pa_date=2024-03-01/a.parquet",
        "raw/orders/pa_date=2024-03-02/b.parquet",
        "raw/ordersx/z",
    ]
    assert lake.list("") == sorted(
        [
            "raw/orders/pa_date=2024-03-01/a.parquet",
            "raw/orders/pa_date=2024-03-02/b.parquet",
            "raw/ordersx/z",
            "rejects/r.parquet",
        ]
    )
    assert lake.list("nothing/") == []


def test_list_follows_every_page(lake, monkeypatch):
    # Given more keys than one ListObjectsV2 page when pages hold 2 keys
    for i in range(5):
        lake.put_atomic(f"many/{i}", b"")
    real_paginate = lake.client.get_paginator("list_objects_v2").paginate

    class SmallPages:
        def paginate(self, **kwargs):
            return real_paginate(PaginationConfig={"PageSize": 2}, **kwargs)

    monkeypatch.setattr(lake.client, "get_paginator", lambda name: SmallPages())

    # Then every key is listed
    assert lake.list("many/") == [f"many/{i}" for i in range(5)]


def test_move_is_server_side_and_idempotent(lake, bucket):
    # Given a staged object
    lake.put_atomic("_staging/i1/p.parquet", b"parquet bytes")

    # When it is moved into raw/
    lake.move("_staging/i1/p.parquet", "raw/orders/pa_date=2024-01-01/p.parquet")

    # Then the target holds the bytes and the source is gone
    assert lake.read_bytes("raw/orders/pa_date=2024-01-01/p.parquet") == b"parquet bytes"
    assert not lake.exists("_staging/i1/p.parquet")
    # And a retried move (source gone, target present) succeeds silently
    lake.move("_staging/i1/p.parquet", "raw/orders/pa_date=2024-01-01/p.parquet")
    # And a move of nothing to nowhere says so
    with pytest.raises(FileNotFoundError):
        lake.move("_staging/i1/none.parquet", "raw/orders/pa_date=2024-01-01/none.parquet")


def test_move_of_an_object_copy_object_refuses_falls_back_to_part_copies(lake, monkeypatch):
    # Given an object CopyObject refuses (as S3 does above 5 GiB), and a small part threshold
    monkeypatch.setattr(s3mod, "COPY_MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(s3mod, "COPY_PART_BYTES", 5 * 1024 * 1024)
    data = os.urandom(11 * 1024 * 1024)
    lake.put_atomic("_staging/big", data)
    client = lake.client
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs["Key"])
        raise client.exceptions.ClientError(
            {"Error": {"Code": "InvalidRequest", "Message": "copy source is larger than 5 GiB"}},
            "CopyObject",
        )

    monkeypatch.setattr(client, "copy_object", refuse)

    # When it is moved, Then the bytes arrive intact through the multipart copy
    lake.move("_staging/big", "raw/big")
    assert calls == ["team/lake/raw/big"]
    assert lake.read_bytes("raw/big") == data
    head = boto3.client("s3").head_object(Bucket=lake.bucket, Key="team/lake/raw/big")
    assert head["ETag"].strip('"').endswith("-3")
    assert lake.list("_staging/") == []


def test_move_many_publishes_every_pair(lake):
    # Given forty staged partition files
    pairs = []
    for day in range(1, 41):
        src = f"_staging/i1/raw/orders/pa_date=2024-01-{day:02d}/i1-0.parquet"
        lake.put_atomic(src, f"day {day}".encode())
        pairs.append((src, src.removeprefix("_staging/i1/")))

    # When they are moved together
    lake.move_many(pairs)

    # Then each target holds its own bytes and staging is empty
    assert lake.list("_staging/") == []
    assert lake.read_bytes("raw/orders/pa_date=2024-01-17/i1-0.parquet") == b"day 17"
    assert len(lake.list("raw/orders/")) == 40


def test_move_many_moves_the_rest_then_raises_the_first_error(lake):
    # Given three pairs, one of whose sources does not exist
    lake.put_atomic("_staging/a", b"a")
    lake.put_atomic("_staging/c", b"c")

    # When they are moved, Then the missing one raises and the others were still moved
    with pytest.raises(FileNotFoundError):
        lake.move_many([("_staging/a", "raw/a"), ("_staging/b", "raw/b"), ("_staging/c", "raw/c")])
    assert lake.read_bytes("raw/a") == b"a" and lake.read_bytes("raw/c") == b"c"


def test_copy_from_keeps_a_source_byte_for_byte(lake, bucket):
    # Given a source object outside the lake
    data = os.urandom(70_000)
    boto3.client("s3").put_object(Bucket=bucket, Key="incoming/bad file.csv.gz", Body=data)

    # When it is copied into the quarantine server-side, Then the bytes are identical
    lake.copy_from(f"s3://{bucket}/incoming/bad file.csv.gz", "quarantine/i1/bad file.csv.gz")
    assert lake.read_bytes("quarantine/i1/bad file.csv.gz") == data


def test_delete_ignores_missing_and_batches(lake, monkeypatch):
    # Given five objects and DeleteObjects batches of two
    monkeypatch.setattr(s3mod, "_DELETE_BATCH", 2)
    for i in range(5):
        lake.put_atomic(f"d/{i}", b"")

    # When they and a missing key are deleted
    lake.delete([f"d/{i}" for i in range(5)] + ["d/missing"])

    # Then none is left
    assert lake.list("d/") == []


def test_delete_prefix_spares_siblings(lake):
    # Given a staging folder, an object with the same stem and a sibling folder
    for key in ("_staging/i1/a", "_staging/i1/b/c", "_staging/i1", "_staging/i10/a"):
        lake.put_atomic(key, b"")

    # When the folder is deleted
    lake.delete_prefix("_staging/i1/")

    # Then only it (and the object named like it) is gone
    assert lake.list("_staging/") == ["_staging/i10/a"]
    lake.delete_prefix("_staging/nothing")  # nothing there is not an error


def test_modified_at(lake):
    # Given an object written now
    lake.put_atomic("m", b"")

    # Then its time is within a minute of now, and a missing key has none
    assert abs(lake.modified_at("m") - dt.datetime.now(dt.UTC).timestamp()) < 60
    assert lake.modified_at("absent") is None


def test_open_source_streams_a_key_with_spaces_and_unicode(bucket):
    # Given a source object whose key has spaces, a plus and non-ASCII letters
    key = "incoming/März orders+1 (final).csv"
    data = b"order_id\n" + b"".join(b"%d\n" % i for i in range(200_000))
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)

    # When it is read in small pieces through open_source
    chunks = []
    with open_source(f"s3://{bucket}/{key}") as stream:
        while chunk := stream.read(65_536):
            chunks.append(chunk)

    # Then every byte arrives, and its size is known
    assert b"".join(chunks) == data
    assert source_size(f"s3://{bucket}/{key}") == len(data)


def test_open_source_of_a_missing_object_is_file_not_found(bucket):
    with pytest.raises(FileNotFoundError, match="no such object"):
        open_source(f"s3://{bucket}/incoming/none.csv")
    assert source_size(f"s3://{bucket}/incoming/none.csv") is None


class _DroppingBody:
    """A response body that breaks after ``limit`` bytes, like a reset connection."""

    def __init__(self, body, limit):
        self.body, self.limit, self.sent = body, limit, 0

    def read(self, n):
        if self.sent >= self.limit:
            raise ConnectionResetError("connection reset by peer")
        data = self.body.read(min(n, self.limit - self.sent))
        self.sent += len(data)
        return data

    def close(self):
        self.body.close()


def test_source_read_resumes_after_a_dropped_connection(bucket, monkeypatch):
    # Given a source whose first connection drops after 1000 bytes
    monkeypatch.setattr(s3mod.time, "sleep", lambda s: None)
    data = os.urandom(50_000)
    boto3.client("s3").put_object(Bucket=bucket, Key="in/a.csv", Body=data)
    reader = S3ObjectReader(bucket, "in/a.csv")
    reader._body = _DroppingBody(reader._body, 1000)

    # When it is read whole
    back = reader.read()

    # Then the bytes are complete and in order
    assert back == data


def test_source_replaced_during_read_fails_loudly(bucket, monkeypatch):
    # Given a source whose connection drops, and which is overwritten meanwhile
    monkeypatch.setattr(s3mod.time, "sleep", lambda s: None)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="in/b.csv", Body=b"a" * 5000)
    reader = S3ObjectReader(bucket, "in/b.csv")
    reader._body = _DroppingBody(reader._body, 1000)
    s3.put_object(Bucket=bucket, Key="in/b.csv", Body=b"b" * 5000)

    # When it is read, Then the change is reported rather than two versions mixed
    with pytest.raises(SourceChanged, match="changed while it was being read"):
        reader.read()


def test_second_open_pinned_to_the_first_etag_refuses_a_replaced_object(bucket):
    # Given a source opened once (to hash it), its ETag noted
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="in/c.csv", Body=b"version 1")
    with open_source(f"s3://{bucket}/in/c.csv") as first:
        assert first.read() == b"version 1"
        etag = first.raw.etag

    # When it is opened again pinned to that ETag, Then the same bytes come back
    with open_source(f"s3://{bucket}/in/c.csv", if_match=etag) as second:
        assert second.read() == b"version 1"

    # When it was replaced in between, Then the pinned open refuses
    s3.put_object(Bucket=bucket, Key="in/c.csv", Body=b"version 2")
    with pytest.raises(SourceChanged, match="changed since it was first read"):
        open_source(f"s3://{bucket}/in/c.csv", if_match=etag)


def test_source_exists_tells_missing_from_present(bucket):
    # Given one object in a bucket
    from ingestion.s3 import source_exists

    boto3.client("s3").put_object(Bucket=bucket, Key="in/here.csv", Body=b"x")

    # Then it exists, a missing key or bucket does not
    assert source_exists(f"s3://{bucket}/in/here.csv") is True
    assert source_exists(f"s3://{bucket}/in/gone.csv") is False
    assert source_exists("s3://no-such-bucket-duff-test/in/here.csv") is False


def test_small_writes_upload_in_the_background_and_are_seen_by_every_later_call(lake, bucket):
    # Given sixty small staged files (more than the background queue holds)
    for i in range(60):
        with lake.open_write(
            f"_staging/i1/raw/orders/pa_date=2024-02-{i % 28 + 1:02d}/{i}.parquet"
        ) as out:
            out.write(b"%d" % i)

    # When the lake is next used, Then every object is there with its bytes
    assert len(lake.list("_staging/i1/")) == 60
    assert _body(bucket, "team/lake/_staging/i1/raw/orders/pa_date=2024-02-05/32.parquet") == b"32"


def test_a_failed_background_upload_fails_the_next_call_before_it_acts(lake, monkeypatch):
    # Given a small write whose upload S3 refuses
    client = lake.client
    real_put = client.put_object

    def put_object(**kwargs):
        if kwargs["Key"].endswith("doomed.parquet"):
            raise client.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "We encountered an internal error"}},
                "PutObject",
            )
        return real_put(**kwargs)

    monkeypatch.setattr(client, "put_object", put_object)
    with lake.open_write("_staging/i2/doomed.parquet") as out:
        out.write(b"rows")

    # When the publish intent is written next, Then it fails and is not written
    with pytest.raises(client.exceptions.ClientError, match="InternalError"):
        lake.put_atomic("_staging/i2/_publish.json", b"{}")
    assert not lake.exists("_staging/i2/_publish.json")
    assert not lake.exists("_staging/i2/doomed.parquet")
    # And the failure is reported once: the lake is usable afterwards
    lake.put_atomic("_staging/i2/_publish.json", b"{}")
    assert lake.read_bytes("_staging/i2/_publish.json") == b"{}"


def test_cleanup_after_a_failed_background_upload_still_deletes(lake, monkeypatch):
    # Given a staged file written, and a second one whose upload fails
    client = lake.client
    real_put = client.put_object

    def put_object(**kwargs):
        if kwargs["Key"].endswith("doomed.parquet"):
            raise client.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "internal error"}}, "PutObject"
            )
        return real_put(**kwargs)

    monkeypatch.setattr(client, "put_object", put_object)
    with lake.open_write("_staging/i3/ok.parquet") as out:
        out.write(b"ok")
    with lake.open_write("_staging/i3/doomed.parquet") as out:
        out.write(b"rows")

    # When the landing cleans its staging up, Then the failure is reported and staging is gone
    with pytest.raises(client.exceptions.ClientError, match="InternalError"):
        lake.delete_prefix("_staging/i3/")
    assert lake.list("_staging/i3/") == []
