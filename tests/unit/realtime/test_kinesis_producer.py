"""The Kinesis producer (realtime/kinesis.py) against a stub client: an order's versions reach
the stream in the order given though PutRecords refuses some records, a call refused whole is
reported with what got in, and the 1 MiB limit counts the partition key."""

from __future__ import annotations

import json

import pytest

from realtime import __main__ as cli
from realtime.kinesis import KinesisStream, PutFailed
from realtime.localstream import MAX_RECORD_BYTES
from tests.unit.realtime.helpers import event


class ThrottlingKinesis:
    """PutRecords that refuses (throttles) each record the first time ``refuse`` says so;
    ``stream`` is what the shard holds, in the order Kinesis accepted it."""

    def __init__(self, refuse=lambda data: False, fail_call: int | None = None) -> None:
        self.refuse = refuse
        self.fail_call = fail_call
        self.calls = 0
        self.stream: list[bytes] = []
        self.refused: set[bytes] = set()

    def put_records(self, StreamName: str, Records: list[dict]) -> dict:
        self.calls += 1
        if self.calls == self.fail_call:
            raise RuntimeError("KMSThrottlingException: the stream's key is throttled")
        out = []
        for r in Records:
            if r["Data"] not in self.refused and self.refuse(r["Data"]):
                self.refused.add(r["Data"])
                out.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.stream.append(r["Data"])
                out.append({"SequenceNumber": str(len(self.stream))})
        return {"Records": out, "FailedRecordCount": sum("ErrorCode" in o for o in out)}


def status_of(data: bytes) -> tuple[int, str]:
    body = json.loads(data)
    return body["order_id"], body["status"]


def test_an_orders_versions_reach_the_stream_in_order_though_the_first_is_throttled(
    monkeypatch,
):
    monkeypatch.setattr("realtime.kinesis.time.sleep", lambda s: None)
    # Given order 1 created, other orders, then order 1 delivered; Kinesis throttles 'created'
    items = [event(1, status="created"), event(2), event(3), event(1, status="delivered")]
    client = ThrottlingKinesis(refuse=lambda d: status_of(d) == (1, "created"))
    # When they are put
    assert KinesisStream("orders", client).put(items) == 4
    # Then order 1's created reached the stream before its delivered (the latest wins)
    mine = [status_of(d) for d in client.stream if status_of(d)[0] == 1]
    assert mine == [(1, "created"), (1, "delivered")]
    assert sorted(client.stream) == sorted(items)


def test_a_call_refused_whole_reports_what_got_in(monkeypatch):
    # Given 600 events (two calls) and a stream that refuses the second call whole
    items = [event(i) for i in range(1, 601)]
    client = ThrottlingKinesis(fail_call=2)
    # When they are put / Then the error says how many were accepted before it
    with pytest.raises(PutFailed) as err:
        KinesisStream("orders", client).put(items)
    assert err.value.accepted == 500 == len(client.stream)


def test_send_counts_the_partition_key_in_the_record_limit_and_survives_a_refused_call(
    tmp_path, monkeypatch, capsys
):
    # Given a Kinesis stream, and a file whose first event fits the limit alone but not with
    # its partition key (order id 123456), then two small events
    client = ThrottlingKinesis(fail_call=2)
    monkeypatch.setattr(cli, "open_stream", lambda settings: KinesisStream("orders", client))
    big = event(123456, client_name="x")
    big = big.replace(b'"x"', b'"' + b"x" * (MAX_RECORD_BYTES - len(big) + 1) + b'"')
    assert len(big) <= MAX_RECORD_BYTES < len(big) + len(b"123456")
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join([big, event(1), event(1, status="delivered")]) + b"\n")
    # When sent (the second call, order 1's later version, is refused whole)
    code = cli.send(cli.Settings.from_env(), str(src))
    out, errors = capsys.readouterr()
    # Then the big event is refused alone, named; the refused call is one line with the
    # count so far; the exit says not everything was sent
    assert code == 1
    assert "event 1" in errors and "partition key" in errors
    assert "Kinesis refused a PutRecords call" in errors and "Traceback" not in errors
    assert out.strip().startswith("accepted 1 events")
    assert [status_of(d) for d in client.stream] == [(1, "created")]
