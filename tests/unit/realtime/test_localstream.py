"""The durable local stream: sequences per shard, survives restarts, never loses an accepted
record, and a producer killed mid-write leaves nothing half-written behind."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from realtime.localstream import LocalStream, Position, StreamError


def test_sequences_grow_per_shard_and_survive_a_reopen(tmp_path):
    s = LocalStream(tmp_path, "orders", shards=2)
    assert s.append("shard-0000", [b"a", b"b"]) == [1, 2]
    assert s.append("shard-0001", [b"c"]) == [1]
    again = LocalStream(tmp_path, "orders", shards=5)  # the shard count is fixed at creation
    assert again.shards == ["shard-0000", "shard-0001"]
    assert again.append("shard-0000", [b"d"]) == [3]
    recs, pos = again.read("shard-0000", Position())
    assert [(r.sequence, r.data) for r in recs] == [("1", b"a"), ("2", b"b"), ("3", b"d")]
    arrivals = [r.arrival_us for r in recs]
    assert arrivals == sorted(arrivals)
    # reading on from the returned position gives nothing new, then the next append
    assert again.read("shard-0000", pos)[0] == []
    s.append("shard-0000", [b"e"])
    assert [r.data for r in again.read("shard-0000", pos)[0]] == [b"e"]
    at2 = again.seek("shard-0000", 2)
    assert at2.sequence == 2
    assert [r.data for r in again.read("shard-0000", at2, max_records=1)[0]] == [b"b"]


def test_a_torn_tail_is_not_a_record_and_is_cut_by_the_next_append(tmp_path):
    s = LocalStream(tmp_path, "orders", shards=1)
    s.append("shard-0000", [b"one"])
    log = tmp_path / "orders" / "shard-0000.log"
    with open(log, "ab") as f:  # a producer killed in the middle of its write
        f.write(b"\x05\x00\x00\x00garbage")
    recs, _ = s.read("shard-0000", Position())
    assert [r.data for r in recs] == [b"one"]
    assert s.append("shard-0000", [b"two"]) == [2]
    assert [r.data for r in s.read("shard-0000", Position())[0]] == [b"one", b"two"]


def test_a_stale_tail_hint_is_corrected(tmp_path):
    s = LocalStream(tmp_path, "orders", shards=1)
    s.append("shard-0000", [b"one", b"two"])
    (tmp_path / "orders" / "shard-0000.tail").write_text("[0, 1, 0]")
    assert s.append("shard-0000", [b"three"]) == [3]


def test_a_wrong_position_is_an_error_not_silence(tmp_path):
    s = LocalStream(tmp_path, "orders", shards=1)
    s.append("shard-0000", [b"one", b"two"])
    with pytest.raises(StreamError):
        s.read("shard-0000", Position(5, 0))


def _produce(root: str, n: int) -> None:
    s = LocalStream(root, "orders", shards=1)
    for i in range(n):
        s.append("shard-0000", [f"{os.getpid()}-{i}".encode()])


def test_concurrent_producers_get_distinct_consecutive_sequences(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_produce, args=(str(tmp_path), 100)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    recs, _ = LocalStream(tmp_path, "orders", shards=1).read("shard-0000", Position())
    assert [int(r.sequence) for r in recs] == list(range(1, 301))
    assert len({r.data for r in recs}) == 300
