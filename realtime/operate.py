"""The runbook's two operations on the local real-time store (docs/operations.md).

``replay``: move a shard's apply checkpoint back to a sequence, so the consumer applies the
stream again from there. Applying is idempotent (a record is never newer than itself), so a
replay over figures that hold those records changes nothing; after a reset it rebuilds them.

``reset``: rebuild the store from the lake. The figures are recomputed from the stream's
batches under ``raw/orders/`` (``source_file`` ``stream://<stream>/<shard>``), the latest
version of each order chosen as dbt chooses it (``landed_at``, ``ingest_id``, ``source_line``);
each shard's checkpoints are set after its last landed batch (from the manifests), so the
consumer applies only what was not landed yet. Run it with the consumer stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from realtime.localstream import LocalStream
from realtime.model import Order
from realtime.sqlite_store import Checkpoint, SqliteStore


def replay(stream: LocalStream, store: SqliteStore, shard: str, sequence: int) -> Checkpoint:
    if shard not in stream.shards:
        raise ValueError(f"{stream.uri} has no shard {shard!r}")
    cp = store.checkpoint(shard)
    if sequence > cp.sequence:
        # forward would skip records never applied: lost to the figures (the lake lands them)
        raise ValueError(
            f"{shard}: the consumer applies from sequence {cp.sequence} next; a replay goes "
            f"back to a sequence already applied, not forward to {sequence}"
        )
    pos = stream.seek(shard, sequence)
    new = Checkpoint(
        shard, pos.sequence, pos.offset, cp.landed_sequence, cp.landed_offset, cp.landed_at_us
    )
    store.set_checkpoint(new)
    return new


def reset_from_lake(stream: LocalStream, store: SqliteStore, lake: Path) -> dict[str, int]:
    """Rebuild the figures from the lake; returns {shard: next sequence to apply}."""
    import duckdb

    prefix = f"stream://{stream.name}/"
    landed: dict[str, int] = {}
    for path in sorted((lake / "manifests").glob("*.json")):
        m = json.loads(path.read_text())
        src = m.get("source_file", "")
        if src.startswith(prefix) and m.get("status") == "landed":
            shard = src[len(prefix) :]
            landed[shard] = max(landed.get(shard, 0), int(m["last_sequence"]))
    orders: dict[int, Order] = {}
    files = sorted((lake / "raw" / "orders").glob("pa_date=*/*.parquet"))
    if files:
        rows = duckdb.sql(
            """
            select order_id, cast(pa_date as varchar), point_of_sale_channel, status,
                product_ccf, cast(total_liters * 1000 as hugeint),
                cast(total_amount * 100 as hugeint), epoch_us(landed_at),
                row_number() over (
                    order by landed_at, ingest_id, source_line) as arrival_rank
            from read_parquet($files, hive_partitioning = true)
            where source_file like $prefix || '%'
            qualify row_number() over (partition by order_id
                order by landed_at desc, ingest_id desc, source_line desc) = 1
            """,
            params={"files": [str(f) for f in files], "prefix": prefix},
        ).fetchall()
        for oid, day, channel, status, units, liters, revenue, landed_us, rank in rows:
            # Older than anything the stream will bring: arrival 0, ordered as dbt orders them.
            version = f"{0:017d}:~lake:{rank:060d}"
            orders[oid] = Order(
                oid, day, channel, status, units, int(liters), int(revenue), landed_us, version
            )
    store.reset(stream.uri)
    store.apply(orders, Checkpoint("~lake"))
    store.db.execute("delete from checkpoints where shard = '~lake'")
    out = {}
    for shard in stream.shards:
        pos = stream.seek(shard, landed.get(shard, 0) + 1)
        store.set_checkpoint(Checkpoint(shard, pos.sequence, pos.offset, pos.sequence, pos.offset))
        out[shard] = pos.sequence
    return out
