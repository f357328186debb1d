"""Section 6 end to end on the local stream: send, consume, kill, restart, land."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import time
from decimal import Decimal
from pathlib import Path

import duckdb

from realtime.sqlite_store import SqliteStore, store_path
from tests.integration.realtime.conftest import encode, expected, make_events, send, start_consumer


def _applied(lake: str) -> int:
    path = store_path(lake)
    if not path.exists():
        return 0
    store = SqliteStore(path)
    try:
        return sum(r[0] - 1 for r in store.db.execute("select sequence from checkpoints"))
    finally:
        store.close()


def _wait_applied(lake: str, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _applied(lake) < n:
        assert time.monotonic() < deadline, f"only {_applied(lake)} of {n} applied"
        time.sleep(0.05)


def test_send_prints_what_the_stream_accepted_and_empty_lines_are_not_events(rt_env):
    out = send(rt_env, [b'{"order_id": 1}', b"", b"not json", b""])
    assert out.strip() == "accepted 2 events on local://orders"


def test_sigkill_mid_batch_loses_and_double_counts_nothing(rt_env, consumers):
    # Given 6,000 events with re-sends, moves between days and bad events on the stream
    lake = rt_env["DUFF_LAKE"]
    events = make_events(6000, orders=1500, seed=11)
    today = dt.datetime.now(dt.UTC).date()
    send(rt_env, encode(events))
    env = {"DUFF_REALTIME_LAND_SECONDS": "0.5", "DUFF_REALTIME_MAX_BATCH": "50"}
    # When consumers are killed outright at random moments, several times
    rnd = random.Random(5)
    progress = [0]
    for _ in range(3):
        proc = start_consumer(rt_env, **env)
        consumers.append(proc)
        _wait_applied(lake, progress[-1] + 1)  # it is working
        time.sleep(rnd.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        progress.append(_applied(lake))
    assert progress[-1] < len(events), progress  # every kill came before the end
    # and a last one runs to the end and is stopped with SIGTERM
    proc = start_consumer(rt_env, **env)
    consumers.append(proc)
    _wait_applied(lake, len(events))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stderr.read().decode()[-2000:]

    # Then the figures are exactly the model's: each order once, in its latest version's day
    model = expected(events, today)
    store = SqliteStore(store_path(lake))
    for day, want in model.items():
        got = store.summary(dt.date.fromisoformat(day))
        assert (got["orders"], got["units"], got["revenue"]) == (
            want["orders"],
            want["units"],
            want["revenue"].quantize(Decimal("0.01")),
        )
        assert {c["channel"].lower(): c["orders"] for c in got["by_channel"]} == want["ch"]
    store.close()

    # and the lake holds every event exactly once: valid ones under raw/, bad ones in rejects/
    root = Path(lake)
    manifests = [json.loads(p.read_text()) for p in (root / "manifests").glob("*.json")]
    seqs: dict[str, list[int]] = {}
    for m in manifests:
        seqs.setdefault(m["source_file"], []).extend(
            range(int(m["first_sequence"]), int(m["last_sequence"]) + 1)
        )
    assert sum(len(v) for v in seqs.values()) == len(events)
    for got in seqs.values():
        assert sorted(got) == list(range(1, len(got) + 1))  # no gap, no overlap
    raw = duckdb.sql(
        f"select count(*), count(distinct (ingest_id, source_line)) "
        f"from read_parquet('{root}/raw/orders/*/*.parquet')"
    ).fetchone()
    valid = sum(m["valid"] for m in manifests)
    rejected = sum(sum(m["rejected"].values()) for m in manifests)
    assert raw == (valid, valid)
    assert valid + rejected == len(events)
    n_bad = len(events) - sum(
        1
        for e in events
        if isinstance(e["product_ccf"], int)
        and not isinstance(e["product_ccf"], bool)
        and e["product_ccf"] > 0
    )
    assert rejected == n_bad
    # the latest version of each order, as dbt picks it (landed_at, ingest_id, source_line),
    # is the one the store counts
    latest = duckdb.sql(
        f"""
        select pa_date, count(*), sum(product_ccf), sum(total_amount) from (
            select *, row_number() over (partition by order_id
                order by landed_at desc, ingest_id desc, source_line desc) as rn
            from read_parquet('{root}/raw/orders/*/*.parquet', hive_partitioning = true)
        ) where rn = 1 group by pa_date order by pa_date
        """
    ).fetchall()
    assert {str(d): (n, u, r) for d, n, u, r in latest} == {
        d: (m["orders"], m["units"], m["revenue"]) for d, m in model.items()
    }
    # no staging left behind
    assert not any((root / "_staging").glob("*/*")) if (root / "_staging").exists() else True


def test_sigterm_lands_what_the_consumer_holds(rt_env, consumers):
    # Given a consumer with the default minute between landings, that has applied events
    lake = rt_env["DUFF_LAKE"]
    events = make_events(300, orders=100, seed=2)
    proc = start_consumer(rt_env)
    consumers.append(proc)
    send(rt_env, encode(events))
    _wait_applied(lake, len(events))
    assert not (Path(lake) / "manifests").exists()  # held: less than a minute has passed
    # When it is stopped with SIGTERM
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.stderr.read().decode()[-2000:]
    # Then everything it held has landed, one batch per shard
    manifests = [json.loads(p.read_text()) for p in (Path(lake) / "manifests").glob("*.json")]
    assert sorted(m["source_file"] for m in manifests) == [
        "stream://orders/shard-0000",
        "stream://orders/shard-0001",
    ]
    assert sum(m["rows_in"] for m in manifests) == len(events)
