"""Benchmark the real-time path (issue 16): throughput, freshness, and the Lambda batch.

1. **Throughput**, on two shapes of events (all new orders; half re-sends that often move an
   order to another day): ``python -m realtime consume`` runs, ``python -m realtime send``
   puts N events from a file, and the clock stops when the figures hold every event (the
   store's checkpoints). Baseline in the same run: ``json.loads`` of the same events in one
   process, the floor of any consumer of JSON events. Goal: >= 5,000 events/s sustained.
2. **Freshness** at a steady 1,000 events/s for S seconds: a producer thread puts 100 events
   every 100 ms on the local stream while ``python -m api`` serves ``/realtime/summary`` and a
   poller reads it every 20 ms; freshness of a put = first poll showing its count minus the
   moment the stream accepted it. Goal: p95 <= 2 s.
3. **Lambda batch** on the moto server: a 500-record Kinesis batch (Lambda's event shape,
   from GetRecords) through ``realtime.kinesis_batch.process`` into DynamoDB. Split: time in
   DynamoDB calls (moto) and in our code. Goal: < 1 s. moto's TransactWriteItems deep-copies
   the whole table once per item of a transaction, so its cost grows with items x table size;
   real DynamoDB does not.

    .venv/bin/python bench/bench_realtime.py                  # 50,000 events, 20 s freshness
    .venv/bin/python bench/bench_realtime.py --events 20000 --seconds 10
    .venv/bin/python bench/bench_realtime.py --only lambda      # part 3 alone (seconds)
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.producer import make_event  # noqa: E402

KEY = "bench-" + os.urandom(6).hex()


def env_for(lake: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUFF_", "AWS_"))}
    env.update(DUFF_LAKE=str(lake), PYTHONPATH=str(ROOT), DUFF_LOG_LEVEL="WARNING")
    return env


def make_events(n: int, shape: str, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    sent: list[dict] = []
    for i in range(n):
        if shape == "resends" and sent and rng.random() < 0.5:
            e = dict(rng.choice(sent), status="delivered")
            e["order_date"] = f"2024-03-{rng.randint(1, 28):02d}"  # often another day
        else:
            e = make_event(rng, 1 + i)
            e["order_date"] = f"2024-03-{rng.randint(1, 28):02d}"
            sent.append(e)
        out.append(json.dumps(e).encode())
    return out


def applied(lake: Path) -> int:
    path = lake / "realtime" / "store.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sum(r[0] - 1 for r in db.execute("select sequence from checkpoints"))
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def throughput(n: int, shape: str) -> tuple[float, float]:
    events = make_events(n, shape)
    t0 = time.perf_counter()
    for e in events:
        json.loads(e)
    floor = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory(prefix="bench-rt-") as tmp:
        lake = Path(tmp) / "lake"
        src = Path(tmp) / "events.jsonl"
        src.write_bytes(b"\n".join(events) + b"\n")
        env = env_for(lake)
        consumer = subprocess.Popen(
            [sys.executable, "-m", "realtime", "consume"], env=env, stdout=subprocess.DEVNULL
        )
        try:
            time.sleep(2.0)  # let it start: its import time is not throughput
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "realtime", "send", str(src)],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            while applied(lake) < n:
                time.sleep(0.01)
            rate = n / (time.perf_counter() - t0)
        finally:
            consumer.terminate()
            consumer.wait(120)
    return rate, floor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def freshness(seconds: float, rate: int = 1000) -> list[float]:
    from realtime.localstream import LocalStream

    with tempfile.TemporaryDirectory(prefix="bench-rt-") as tmp:
        lake = Path(tmp) / "lake"
        env = env_for(lake)
        port = free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "realtime", "consume"], env=env, stdout=subprocess.DEVNULL
            ),
            subprocess.Popen(
                [sys.executable, "-m", "api", "--port", str(port), "--no-access-log"],
                env={**env, "DUFF_API_KEY": KEY},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        url = f"http://127.0.0.1:{port}/realtime/summary"
        req = urllib.request.Request(url, headers={"x-api-key": KEY})

        def orders() -> int:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())["orders"]

        deadline = time.monotonic() + 60
        while True:
            try:
                orders()
                break
            except OSError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
        stream = LocalStream(lake / "stream", "orders", 2)
        rng = random.Random(3)
        puts: list[tuple[float, int]] = []  # (accepted at, cumulative count)
        seen: list[tuple[float, int]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                try:
                    seen.append((time.monotonic(), orders()))
                except OSError as exc:  # counted as not visible yet
                    print(f"  poll failed: {exc}")
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(1.0)
        total, next_id = 0, 1
        per_tick = rate // 10
        start = time.monotonic()
        try:
            while time.monotonic() - start < seconds:
                tick = time.monotonic()
                batch = []
                for _ in range(per_tick):
                    batch.append(json.dumps(make_event(rng, next_id)).encode())
                    next_id += 1
                stream.put(batch)
                total += per_tick
                puts.append((time.monotonic(), total))
                time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
            wait_until = time.monotonic() + 30
            while (not seen or seen[-1][1] < total) and time.monotonic() < wait_until:
                time.sleep(0.05)
        finally:
            stop.set()
            poller.join(10)
            for p in procs:
                p.terminate()
                p.wait(120)
        lags = []
        for at, count in puts:
            shown = next((t for t, c in seen if c >= count and t >= at), None)
            lags.append((shown - at) if shown is not None else float("inf"))
        achieved = total / (puts[-1][0] - start) if puts else 0.0
        print(f"  producer achieved {achieved:,.0f} events/s ({total:,} events)")
        return lags


def lambda_batch() -> tuple[float, float, int]:
    import boto3
    from moto.server import ThreadedMotoServer

    from realtime.dynamo_store import TABLE_DEFINITION, DynamoStore
    from realtime.kinesis_batch import process, records_from_event

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        kin, ddb = boto3.client("kinesis"), boto3.client("dynamodb")
        kin.create_stream(StreamName="bench", ShardCount=1)
        ddb.create_table(TableName="bench", **TABLE_DEFINITION)
        events = make_events(500, "resends", seed=5)
        for i in range(0, 500, 250):
            kin.put_records(
                StreamName="bench",
                Records=[{"Data": e, "PartitionKey": "k"} for e in events[i : i + 250]],
            )
        sid = kin.list_shards(StreamName="bench")["Shards"][0]["ShardId"]
        it = kin.get_shard_iterator(
            StreamName="bench", ShardId=sid, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        recs = kin.get_records(ShardIterator=it, Limit=500)["Records"]
        assert len(recs) == 500
        event = {
            "Records": [
                {
                    "kinesis": {
                        "data": base64.b64encode(r["Data"]).decode(),
                        "sequenceNumber": r["SequenceNumber"],
                        "partitionKey": "k",
                        "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                    },
                    "eventID": f"{sid}:{r['SequenceNumber']}",
                    "eventSource": "aws:kinesis",
                }
                for r in recs
            ]
        }
        in_calls = [0.0, 0]
        per_op: dict[str, list[float]] = {}

        class Timed:
            """The client, timing every call (what moto spends vs what our code spends)."""

            exceptions = ddb.exceptions

            def __getattr__(self, name):
                call = getattr(ddb, name)

                def timed(**kw):
                    t = time.perf_counter()
                    try:
                        return call(**kw)
                    finally:
                        in_calls[0] += time.perf_counter() - t
                        in_calls[1] += 1
                        op = per_op.setdefault(name, [0, 0.0])
                        op[0] += 1
                        op[1] += time.perf_counter() - t

                return timed

        store = DynamoStore("bench", Timed())
        t0 = time.perf_counter()
        resp = process(records_from_event(event), store, None)
        took = time.perf_counter() - t0
        assert resp == {"batchItemFailures": []}
        # the figures are the events' (outside the clock): each order once, in its latest day
        latest = {}
        for e in events:
            d = json.loads(e)
            latest[d["order_id"]] = d["order_date"]
        for day in sorted(set(latest.values())):
            want = sum(1 for v in latest.values() if v == day)
            got = DynamoStore("bench", ddb).summary(dt.date.fromisoformat(day))["orders"]
            assert got == want, (day, got, want)
        print(
            "  calls: " + ", ".join(f"{k} {n} ({t:.3f} s)" for k, (n, t) in sorted(per_op.items()))
        )
        return took, in_calls[0], in_calls[1]
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--only",
        choices=("throughput", "freshness", "lambda"),
        help="run one part (default: all three)",
    )
    args = parser.parse_args()
    ok = True
    if args.only in (None, "throughput"):
        ok &= run_throughput(args.events)
    if args.only in (None, "freshness"):
        ok &= run_freshness(args.seconds)
    if args.only in (None, "lambda"):
        ok &= run_lambda()
    return 0 if ok else 1


def run_throughput(n: int) -> bool:
    ok = True
    print(f"1. throughput, send -> consume -> figures, {n:,} events")
    for shape in ("new", "resends"):
        rate, floor = throughput(n, shape)
        print(
            f"  {shape:8s} {rate:9,.0f} events/s   json.loads floor {floor:9,.0f}/s   "
            f"ratio {rate / floor:.3f}   goal >= 5,000/s: {'ok' if rate >= 5000 else 'MISSED'}"
        )
        ok &= rate >= 5000
    return ok


def run_freshness(seconds: float) -> bool:
    print(f"2. freshness at 1,000 events/s for {seconds:.0f} s")
    lags = freshness(seconds)
    q = statistics.quantiles(lags, n=100)
    print(
        f"  p50 {q[49]:.3f} s   p95 {q[94]:.3f} s   max {max(lags):.3f} s   "
        f"goal p95 <= 2 s: {'ok' if q[94] <= 2 else 'MISSED'}"
    )
    return q[94] <= 2


def run_lambda() -> bool:
    print("3. a 500-record Kinesis batch through the handler's logic into DynamoDB (moto)")
    took, in_calls, calls = lambda_batch()
    print(
        f"  {took:.3f} s: {calls} DynamoDB calls {in_calls:.3f} s (moto), our code "
        f"{took - in_calls:.3f} s   ratio ours/total {(took - in_calls) / took:.2f}   "
        f"goal < 1 s: {'ok' if took < 1 else 'MISSED'}"
    )
    return took < 1


if __name__ == "__main__":
    raise SystemExit(main())
