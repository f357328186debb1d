"""The AWS side on the moto server: send to Kinesis, the Lambda handler's batch logic over
DynamoDB with redelivery and partial batch failure, and the summary read back."""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal

import boto3
import pytest

from ingestion.lake import LocalLake, NullCatalog
from ingestion.settings import Settings as IngestSettings
from realtime.dynamo_store import TABLE_DEFINITION, DynamoStore
from realtime.kinesis import KinesisStream
from realtime.kinesis_batch import process, records_from_event
from realtime.landing import land_batch
from tests.integration.realtime.conftest import ROOT, encode, expected, make_events


@pytest.fixture
def kinesis(aws_env, unique_name):
    client = boto3.client("kinesis")
    name = unique_name("orders")
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name)
    return client, name


@pytest.fixture
def table(aws_env, unique_name):
    client = boto3.client("dynamodb")
    name = unique_name("realtime")
    client.create_table(TableName=name, **TABLE_DEFINITION)
    return DynamoStore(name, client)


def lambda_events(client, name: str, batch: int = 100) -> list[dict]:
    """What the event source mapping hands the function: per shard, batches in order."""
    events = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        sid = shard["ShardId"]
        it = client.get_shard_iterator(
            StreamName=name, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            resp = client.get_records(ShardIterator=it, Limit=batch)
            if not resp["Records"]:
                break
            events.append(
                {
                    "Records": [
                        {
                            "kinesis": {
                                "kinesisSchemaVersion": "1.0",
                                "partitionKey": r["PartitionKey"],
                                "sequenceNumber": r["SequenceNumber"],
                                "data": base64.b64encode(r["Data"]).decode(),
                                "approximateArrivalTimestamp": r[
                                    "ApproximateArrivalTimestamp"
                                ].timestamp(),
                            },
                            "eventSource": "aws:kinesis",
                            "eventVersion": "1.0",
                            "eventID": f"{sid}:{r['SequenceNumber']}",
                            "eventName": "aws:kinesis:record",
                            "awsRegion": "us-east-1",
                        }
                        for r in resp["Records"]
                    ]
                }
            )
            it = resp.get("NextShardIterator")
    return events


def check(store: DynamoStore, events: list[dict]) -> None:
    model = expected(events, dt.datetime.now(dt.UTC).date())
    for day, want in model.items():
        got = store.summary(dt.date.fromisoformat(day))
        assert (got["orders"], got["units"], got["revenue"]) == (
            want["orders"],
            want["units"],
            want["revenue"].quantize(Decimal("0.01")),
        ), day


class FlakyStore:
    """Fails the n-th apply once, like a throttled or unreachable DynamoDB."""

    def __init__(self, inner: DynamoStore, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def apply(self, incoming):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("ProvisionedThroughputExceeded (simulated)")
        return self.inner.apply(incoming)


def test_send_to_kinesis_then_batches_with_redelivery_and_partial_failure(
    kinesis, table, tmp_path, monkeypatch
):
    client, name = kinesis
    events = make_events(400, orders=120, seed=3)
    # Given events sent with the CLI to kinesis://<name>
    env = {**os.environ, "DUFF_STREAM": f"kinesis://{name}", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "send", "-"],
        input=b"\n".join(encode(events)),
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    assert out.strip() == f"accepted 400 events on kinesis://{name}"

    lake = LocalLake(tmp_path)
    ingest = IngestSettings(lake=str(tmp_path))

    def land(shard, first, last, judged, landed_us):
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=landed_us)
        return land_batch(
            lake, NullCatalog(), ingest, f"stream://{name}/{shard}", first, last, judged, at
        )

    monkeypatch.setattr("realtime.kinesis_batch.CHUNK", 50)
    batches = lambda_events(client, name, batch=150)
    # When the second chunk of the first batch fails (store error)
    first = batches[0]
    flaky = FlakyStore(table, fail_at=2)
    resp = process(records_from_event(first), flaky, land)
    recs = records_from_event(first)
    # Then the response names the first record not applied, and nothing was landed yet
    assert resp == {"batchItemFailures": [{"itemIdentifier": recs[50].sequence}]}
    assert not (tmp_path / "manifests").exists()
    # When Lambda retries from that record, then delivers everything (redelivering all again)
    retry = {"Records": first["Records"][50:]}
    assert process(records_from_event(retry), table, land) == {"batchItemFailures": []}
    for ev in batches:
        assert process(records_from_event(ev), table, land) == {"batchItemFailures": []}
    for ev in batches[:2]:  # a redelivery of whole batches
        assert process(records_from_event(ev), table, land) == {"batchItemFailures": []}
    # Then every figure is the model's: each order once, in its latest version's day
    check(table, events)


def test_resends_move_orders_between_days_and_last_event_at_follows(kinesis, table):
    client, name = kinesis
    stream = KinesisStream(name, client)
    base = {
        "client_id": 1,
        "client_name": "Moe",
        "product_id": 2,
        "product_description": "Duff",
        "product_price": "1.00",
        "product_ccf": 1,
        "product_volume": "1",
        "point_of_sale_channel": "retail",
        "status": "created",
    }
    stream.put([json.dumps({**base, "order_id": 1, "order_date": "2024-03-01"}).encode()])
    stream.put([json.dumps({**base, "order_id": 2, "order_date": "2024-03-01"}).encode()])
    stream.put([json.dumps({**base, "order_id": 1, "order_date": "2024-03-02"}).encode()])
    # each batch goes to another function instance (a cold cache guesses "new order" and
    # must be corrected by the table's conditions, never double-count)
    instances = [table, DynamoStore(table.table, table.client)]
    for i, ev in enumerate(lambda_events(client, name, batch=1)):
        store = instances[i % 2]
        assert process(records_from_event(ev), store, None)["batchItemFailures"] == []
    # a fresh instance redelivered everything: nothing changes
    fresh = DynamoStore(table.table, table.client)
    for ev in lambda_events(client, name, batch=10):
        assert process(records_from_event(ev), fresh, None)["batchItemFailures"] == []
    d1 = table.summary(dt.date(2024, 3, 1))
    d2 = table.summary(dt.date(2024, 3, 2))
    assert (d1["orders"], d2["orders"]) == (1, 1)
    assert d1["last_event_at"] < d2["last_event_at"]
    assert d2["by_status"] == [
        {"status": "created", "orders": 1, "units": 1, "revenue": Decimal("1.00")}
    ]


def test_the_lambda_handlers_apply_and_land_in_s3_with_glue(
    kinesis, table, unique_name, monkeypatch, iam_audit
):
    # iam_audit: the lake function's S3 and Glue calls, made through ingestion's code, are
    # checked against RealtimeLakeRole (its reads of keys not written yet need ListBucket
    # without a prefix to get a 404).
    client, name = kinesis
    bucket = unique_name("lake")
    boto3.client("s3").create_bucket(Bucket=bucket)
    database = unique_name("db").replace("-", "_")
    monkeypatch.setenv("DUFF_REALTIME_TABLE", table.table)
    monkeypatch.setenv("DUFF_LAKE", f"s3://{bucket}/lake")
    monkeypatch.setenv("DUFF_GLUE_DATABASE", database)
    monkeypatch.setenv("DUFF_STREAM", f"kinesis://{name}")
    import realtime.handler as handler

    handler = importlib.reload(handler)
    events = make_events(40, orders=30, seed=9)
    KinesisStream(name, client).put([*encode(events), b"\xffnot utf-8"])
    for ev in lambda_events(client, name, batch=100):
        # the figures function, then the lake function (DUFF_REALTIME_CONSUMER=lake)
        assert handler.handler(ev, None) == {"batchItemFailures": []}
        monkeypatch.setattr(handler, "SETTINGS", replace(handler.SETTINGS, consumer="lake"))
        assert handler.handler(ev, None) == {"batchItemFailures": []}
        monkeypatch.setattr(handler, "SETTINGS", replace(handler.SETTINGS, consumer="figures"))
    check(table, events)
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    manifests = [
        json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
        for k in keys
        if k.startswith("lake/manifests/")
    ]
    assert sum(m["rows_in"] for m in manifests) == 41
    assert {m["source_file"].rsplit("/", 1)[0] for m in manifests} == {f"stream://{name}"}
    assert any(k.startswith("lake/raw/orders/pa_date=2024-03-0") for k in keys)
    glue = boto3.client("glue")
    parts = glue.get_partitions(DatabaseName=database, TableName="raw_orders")["Partitions"]
    assert {p["Values"][0] for p in parts} >= {"2024-03-01"}


class Crash(Exception):
    """The execution environment dies here (a timeout, an out-of-memory kill)."""


class CrashingClient:
    """A DynamoDB client that dies at the ``at``-th call of ``op``: right after the call took
    effect in the table, or just before it (``before``)."""

    def __init__(self, client, op: str, at: int, before: bool = False) -> None:
        self.client, self.op, self.at, self.before, self.calls = client, op, at, before, 0
        self.exceptions = client.exceptions

    def __getattr__(self, name):
        call = getattr(self.client, name)
        if name != self.op:
            return call

        def dying(**kwargs):
            self.calls += 1
            if self.calls == self.at and self.before:
                raise Crash(f"before {name} #{self.at}")
            out = call(**kwargs)
            if self.calls == self.at:
                raise Crash(f"after {name} #{self.at}")
            return out

        return dying


# With chunks of 50 records, one chunk's calls are: the plan log (update_item), one
# update_item per day it changes (three or four), batch_write_item per 25 orders, as_of.
CRASH_POINTS = [
    ("update_item", 1, False),  # the plan is logged, nothing applied
    ("update_item", 2, False),  # one day has taken the plan
    ("update_item", 4, False),  # most days have
    ("update_item", 7, False),  # in the second chunk
    ("batch_write_item", 1, False),  # all days, some orders
    ("put_item", 1, True),  # all but as_of
    ("batch_get_item", 2, True),  # reading, before the second chunk's plan
]


@pytest.mark.parametrize("same_instance", [False, True], ids=["new-instance", "same-instance"])
@pytest.mark.parametrize("op,at,before", CRASH_POINTS)
def test_a_crash_between_the_writes_then_redelivery_counts_every_order_once(
    kinesis, table, monkeypatch, op, at, before, same_instance
):
    client, name = kinesis
    events = make_events(300, orders=80, seed=11)
    KinesisStream(name, client).put(encode(events))
    monkeypatch.setattr("realtime.kinesis_batch.CHUNK", 50)
    batches = lambda_events(client, name, batch=120)
    dying = CrashingClient(table.client, op, at, before)
    # Given an instance that dies somewhere between the writes of a chunk
    store = DynamoStore(table.table, dying)
    i = 0
    while not (resp := process(records_from_event(batches[i]), store, None))["batchItemFailures"]:
        i += 1
        assert i < len(batches), f"no crash at {op} #{at}"
    ev = batches[i]
    failed = resp["batchItemFailures"][0]["itemIdentifier"]
    start = [r["kinesis"]["sequenceNumber"] for r in ev["Records"]].index(failed)
    # When Lambda retries from the record it names, on another instance (or the same one,
    # if only the call failed), then delivers the rest, then everything once more
    if same_instance:
        dying.at = 0  # the same store object goes on, its client healthy again
    else:
        store = DynamoStore(table.table, table.client)
    retry = {"Records": ev["Records"][start:]}
    assert process(records_from_event(retry), store, None) == {"batchItemFailures": []}
    for later in batches[i + 1 :]:
        assert process(records_from_event(later), store, None) == {"batchItemFailures": []}
    counted = CrashingClient(table.client, "get_item", at=0)  # counts, never crashes
    fresh = DynamoStore(table.table, counted)
    for again in batches:
        assert process(records_from_event(again), fresh, None) == {"batchItemFailures": []}
    # Then every figure is the events' own: each order once, in its latest version's day
    check_all(table, events)
    # (and the fresh instance read each shard's plan log once, not once per batch)
    assert counted.calls == len({ev["Records"][0]["eventID"].split(":")[0] for ev in batches})


def test_a_crash_while_redoing_a_plan_is_redone_again(kinesis, table, monkeypatch):
    client, name = kinesis
    events = make_events(200, orders=1000, seed=12)  # mostly new orders: 2 writes a chunk
    KinesisStream(name, client).put(encode(events))
    monkeypatch.setattr("realtime.kinesis_batch.CHUNK", 50)
    batches = lambda_events(client, name, batch=200)
    # Given a plan logged by an instance that died before applying it
    first = DynamoStore(table.table, CrashingClient(table.client, "update_item", 1))
    assert process(records_from_event(batches[0]), first, None)["batchItemFailures"]
    # When the next instance dies while redoing it (some orders written), and a third goes on
    second = DynamoStore(table.table, CrashingClient(table.client, "batch_write_item", 1))
    assert process(records_from_event(batches[0]), second, None)["batchItemFailures"]
    third = DynamoStore(table.table, table.client)
    for ev in batches:
        assert process(records_from_event(ev), third, None) == {"batchItemFailures": []}
    # Then the figures are the events'
    check_all(table, events)


def check_all(store: DynamoStore, events: list[dict]) -> None:
    """Every figure of every day the events name (orders, units, revenue, per channel)."""
    today = dt.datetime.now(dt.UTC).date()
    model = expected(events, today)
    days = {e.get("order_date", today.isoformat()) for e in events}
    for day in sorted(days):
        got = store.summary(dt.date.fromisoformat(day))
        want = model.get(day, {"orders": 0, "units": 0, "revenue": Decimal(0), "ch": {}})
        assert (got["orders"], got["units"], got["revenue"]) == (
            want["orders"],
            want["units"],
            want["revenue"].quantize(Decimal("0.01")),
        ), day
        assert {c["channel"].lower(): c["orders"] for c in got["by_channel"]} == want["ch"], day


def test_an_instance_that_missed_another_ones_plan_reads_before_it_writes(kinesis, table):
    client, name = kinesis
    base = {
        "client_id": 1,
        "client_name": "Moe",
        "product_id": 2,
        "product_description": "Duff",
        "product_price": "2.00",
        "product_volume": "1",
        "point_of_sale_channel": "retail",
        "status": "created",
    }
    versions = [
        {**base, "order_id": 7, "product_ccf": 1 + i, "order_date": f"2024-03-0{1 + i}"}
        for i in range(3)
    ]
    KinesisStream(name, client).put(encode(versions))
    batches = [ev for ev in lambda_events(client, name, batch=1)]
    assert len(batches) == 3  # one shard holds the order
    # Given instance A applied version 1 and instance B version 2 (A does not know)
    a, b = table, DynamoStore(table.table, table.client)
    assert process(records_from_event(batches[0]), a, None)["batchItemFailures"] == []
    assert process(records_from_event(batches[1]), b, None)["batchItemFailures"] == []
    # When A applies version 3 from what it remembers (version 1)
    assert process(records_from_event(batches[2]), a, None)["batchItemFailures"] == []
    # Then the shard's plan log turned A back to the table: the order counts once, on day 3
    check_all(table, versions)
    assert table.summary(dt.date(2024, 3, 3))["units"] == 3


def test_a_table_written_before_the_plan_log_still_counts(kinesis, table):
    """Aggregates of the earlier layout (one item per channel and status, written by
    TransactWriteItems) are summed with the per-day item, moves included."""
    client, name = kinesis
    old = {"orders": 2, "units": 5, "liters_milli": 2500, "revenue_cents": 1000}
    table.client.put_item(
        TableName=table.table,
        Item={
            "pk": {"S": "day#2024-03-01"},
            "sk": {"S": "Retail#created"},
            **{k: {"N": str(v)} for k, v in old.items()},
        },
    )
    # one of those two orders, as the earlier code stored it, moves to another day
    was = {"units": 2, "liters_milli": 1000, "revenue_cents": 400}
    table.client.put_item(
        TableName=table.table,
        Item={
            "pk": {"S": "order#5"},
            "sk": {"S": "v"},
            "version": {"S": "0" * 17},
            "day": {"S": "2024-03-01"},
            "channel": {"S": "Retail"},
            "status": {"S": "created"},
            "received_us": {"N": "1"},
            **{k: {"N": str(v)} for k, v in was.items()},
        },
    )
    moved = {
        "order_id": 5,
        "client_id": 1,
        "client_name": "Moe",
        "product_id": 2,
        "product_description": "Duff",
        "product_price": "2.00",
        "product_ccf": 3,
        "product_volume": "1",
        "point_of_sale_channel": "retail",
        "status": "created",
        "order_date": "2024-03-02",
    }
    KinesisStream(name, client).put(encode([moved]))
    for ev in lambda_events(client, name):
        assert process(records_from_event(ev), table, None)["batchItemFailures"] == []
    d1 = table.summary(dt.date(2024, 3, 1))
    d2 = table.summary(dt.date(2024, 3, 2))
    assert (d1["orders"], d1["units"], d1["revenue"]) == (1, 3, Decimal("6.00"))
    assert d1["by_channel"] == [
        {
            "channel": "Retail",
            "orders": 1,
            "units": 3,
            "liters": Decimal("1.5"),
            "revenue": Decimal("6.00"),
        }
    ]
    assert (d2["orders"], d2["units"], d2["revenue"]) == (1, 3, Decimal("6.00"))


WRITES = ("update_item", "batch_write_item", "put_item")


class SlowInvocation:
    """A DynamoDB client whose writes each take ``per_write`` seconds of an invocation that
    had ``budget`` seconds: ``left()`` is the store's ``time_left``. Records every write with
    the time left when it started."""

    def __init__(self, client, budget: float, per_write: float) -> None:
        self.client, self.budget, self.per_write = client, budget, per_write
        self.exceptions = client.exceptions
        self.writes: list[tuple[str, float]] = []

    def left(self) -> float:
        return self.budget - self.per_write * len(self.writes)

    def __getattr__(self, name):
        call = getattr(self.client, name)
        if name not in WRITES:
            return call

        def timed(**kwargs):
            self.writes.append((name, self.left()))
            return call(**kwargs)

        return timed


def test_no_write_starts_near_the_invocations_timeout_and_the_retry_goes_on(
    kinesis, table, monkeypatch
):
    from realtime.dynamo_store import WRITE_MARGIN_S

    client, name = kinesis
    events = make_events(300, orders=80, seed=13)
    KinesisStream(name, client).put(encode(events))
    monkeypatch.setattr("realtime.kinesis_batch.CHUNK", 50)
    batches = lambda_events(client, name, batch=120)
    # Given an invocation of 60 s whose DynamoDB writes take 4 s each
    slow = SlowInvocation(table.client, budget=60, per_write=4)
    store = DynamoStore(table.table, slow, time_left=slow.left)
    resp = process(records_from_event(batches[0]), store, None)
    # Then it stopped before a write could outlive the invocation, and said where to go on
    assert resp["batchItemFailures"], "the invocation never ran short"
    assert slow.writes and min(left for _, left in slow.writes) >= WRITE_MARGIN_S
    assert slow.left() < WRITE_MARGIN_S  # it stopped because of the deadline, not before
    sequences = [r["kinesis"]["sequenceNumber"] for r in batches[0]["Records"]]
    start = sequences.index(resp["batchItemFailures"][0]["itemIdentifier"])
    # When Lambda retries from that record on a fresh invocation, then delivers the rest
    store.time_left = lambda: 60.0
    retry = {"Records": batches[0]["Records"][start:]}
    assert process(records_from_event(retry), store, None) == {"batchItemFailures": []}
    for later in batches[1:]:
        assert process(records_from_event(later), store, None) == {"batchItemFailures": []}
    # Then every order counts once, in its latest version's day
    check_all(table, events)


def test_the_lambda_handler_gives_the_store_its_invocations_time(kinesis, table, monkeypatch):
    from realtime.dynamo_store import WRITE_MARGIN_S, longest_call_s

    client, name = kinesis
    monkeypatch.setenv("DUFF_REALTIME_TABLE", table.table)
    monkeypatch.setenv("DUFF_STREAM", f"kinesis://{name}")
    import realtime.handler as handler

    handler = importlib.reload(handler)
    # The store's client bounds each call well inside the margin the store keeps
    assert longest_call_s(handler._store().client.meta.config) < WRITE_MARGIN_S
    events = make_events(20, orders=20, seed=14)
    KinesisStream(name, client).put(encode(events))
    batches = lambda_events(client, name, batch=100)

    class Context:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def get_remaining_time_in_millis(self) -> int:
            return self.ms

    # Given an invocation with less time left than one write may take: nothing is written
    short = Context(int(WRITE_MARGIN_S * 1000) - 1)
    for ev in batches:
        first = ev["Records"][0]["kinesis"]["sequenceNumber"]
        assert handler.handler(ev, short) == {"batchItemFailures": [{"itemIdentifier": first}]}
    assert table.client.scan(TableName=table.table)["Count"] == 0
    # With the margin left, the batches are applied
    for ev in batches:
        assert handler.handler(ev, Context(60_000)) == {"batchItemFailures": []}
    check_all(table, events)


def lake_function(stream: str, unique_name, monkeypatch):
    """The lake Lambda's handler, configured as the stack does, over a new lake bucket."""
    bucket = unique_name("lake")
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("DUFF_LAKE", f"s3://{bucket}/lake")
    monkeypatch.setenv("DUFF_GLUE_DATABASE", unique_name("db").replace("-", "_"))
    monkeypatch.setenv("DUFF_STREAM", f"kinesis://{stream}")
    monkeypatch.setenv("DUFF_REALTIME_CONSUMER", "lake")
    import realtime.handler as handler

    return bucket, importlib.reload(handler)


def test_batches_cut_from_one_put_land_in_the_streams_order(kinesis, unique_name, monkeypatch):
    # Given every order sent twice in one PutRecords call (one arrival millisecond for all),
    # created on 2024-03-01 then delivered on 2024-03-02, and the lake function handed one
    # record per batch (what a bisected retry or a full batch's edge does)
    import io

    import pyarrow.parquet as pq

    client, name = kinesis
    bucket, handler = lake_function(name, unique_name, monkeypatch)
    base = make_events(12, orders=10**6, seed=4)
    events = []
    for i, e in enumerate(base, start=1):
        first = {**e, "order_id": i, "product_ccf": 1, "order_date": "2024-03-01"}
        events += [{**first, "status": "created"}, {**first, "status": "delivered"}]
        events[-1]["order_date"] = "2024-03-02"
    KinesisStream(name, client).put(encode(events))
    batches = lambda_events(client, name, batch=1)
    arrivals = {r["kinesis"]["approximateArrivalTimestamp"] for b in batches for r in b["Records"]}
    for ev in batches:
        assert handler.handler(ev, None) == {"batchItemFailures": []}
    # Then the landed versions, ranked as dbt ranks them (landed_at, ingest_id, source_line),
    # make each order's second version its latest: delivered, in 2024-03-02
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    rows = []
    for key in keys:
        if key.startswith("lake/raw/orders/"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            day = key.split("pa_date=")[1].split("/")[0]  # the partition, not a column
            rows += [{**r, "pa_date": day} for r in pq.read_table(io.BytesIO(body)).to_pylist()]
    assert len(rows) == 24
    latest = {}
    for r in sorted(rows, key=lambda r: (r["landed_at"], r["ingest_id"], r["source_line"])):
        latest[r["order_id"]] = r
    assert {(r["status"], r["pa_date"]) for r in latest.values()} == {
        ("delivered", "2024-03-02")
    }, f"{len(arrivals)} distinct arrival times"
    per_shard = {(r["source_file"], r["landed_at"]) for r in rows}
    assert len(per_shard) == 24  # no two batches of a shard tie


def test_a_range_replayed_after_later_batches_landed_loses_to_them_in_the_lake(
    kinesis, unique_name, monkeypatch
):
    # Given orders created (one PutRecords call), whose lake batches failed every retry and
    # went to the failure queue, and two hours later the same orders delivered (a second
    # call), whose batches landed
    import io

    import pyarrow.parquet as pq

    client, name = kinesis
    bucket, handler = lake_function(name, unique_name, monkeypatch)
    created = [
        {**e, "order_id": i, "status": "created", "order_date": "2024-03-01"}
        for i, e in enumerate(make_events(8, orders=10**6, seed=5), start=1)
    ]
    KinesisStream(name, client).put(encode(created))
    failed = lambda_events(client, name)
    for ev in failed:  # (they arrived two hours before the second call)
        for r in ev["Records"]:
            r["kinesis"]["approximateArrivalTimestamp"] -= 2 * 3600
    failed_ids = {r["eventID"] for ev in failed for r in ev["Records"]}
    delivered = [{**e, "status": "delivered", "order_date": "2024-03-02"} for e in created]
    KinesisStream(name, client).put(encode(delivered))
    later = [
        {"Records": [r for r in ev["Records"] if r["eventID"] not in failed_ids]}
        for ev in lambda_events(client, name)
    ]
    for ev in later:
        if ev["Records"]:
            assert handler.handler(ev, None) == {"batchItemFailures": []}
    # When the failed range is replayed (docs/operations.md runbook)
    for ev in failed:
        assert handler.handler(ev, None) == {"batchItemFailures": []}
    # Then ranked as dbt ranks them (landed_at, ingest_id, source_line), each order's
    # latest version in the lake is the one that arrived last, delivered, as in the figures
    s3 = boto3.client("s3")
    rows = []
    for o in s3.list_objects_v2(Bucket=bucket, Prefix="lake/raw/orders/")["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        rows += pq.read_table(io.BytesIO(body)).to_pylist()
    assert len(rows) == 16
    latest = {}
    for r in sorted(rows, key=lambda r: (r["landed_at"], r["ingest_id"], r["source_line"])):
        latest[r["order_id"]] = r["status"]
    assert set(latest.values()) == {"delivered"}
    # and the replayed range carries its own arrival time, two hours before the others
    replayed = max(r["landed_at"] for r in rows if r["status"] == "created")
    assert replayed < min(r["landed_at"] for r in rows if r["status"] == "delivered")
