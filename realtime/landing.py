"""Land a batch of stream records into the lake, exactly like a file lands.

The ingestion's own pieces do the work (no copy): its rules (through :mod:`realtime.events`),
its Parquet options and schema, its rejects writer, its publication (intent record, moves,
catalog, manifest written last, idempotency marker) and its recovery of interrupted
publications. A batch is one shard's records ``first..last``; its identity (what the
ingestion calls the source's SHA-256) is the hash of ``stream://<stream>/<shard>`` and that
range, so landing the same range again (a consumer restarted mid-publication) finishes or
skips it instead of writing it twice.

Lineage: ``source_file`` = ``stream://<stream>/<shard>``, ``source_line`` = the record's
position in the batch (1 = the first record of the range), ``ingest_id`` and ``landed_at``
those of the batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion import rules
from ingestion.claims import claim
from ingestion.lake import Catalog, Lake
from ingestion.layout import (
    MANIFESTS,
    RAW_PREFIX,
    REJECTS_PREFIX,
    STAGING,
    STARTED,
    iso_z,
    make_ingest_id,
    state_key,
)
from ingestion.publish import publish, recover
from ingestion.settings import Settings
from ingestion.writers import RAW_PARQUET_OPTIONS, RejectsWriter
from realtime.events import Judged

log = logging.getLogger("realtime.landing")


def batch_sha(source_file: str, first: str, last: str) -> str:
    return hashlib.sha256(f"{source_file}\n{first}\n{last}".encode()).hexdigest()


def batch_ingest_id(source_file: str, first: str, last: str, landed_at: dt.datetime) -> str:
    return make_ingest_id(landed_at, batch_sha(source_file, first, last))


SHARDS = "_state/shards/"


def shard_key(source_file: str) -> str:
    """Where a shard's last landing time is kept (``stream://<stream>/<shard>``)."""
    return SHARDS + hashlib.sha256(source_file.encode("utf-8")).hexdigest() + ".json"


# A batch whose newest record arrived this long before the shard's last landing is a range
# landed out of order: one replayed from the failure queue after later batches landed
# (docs/operations.md). In order, arrival times run a few milliseconds behind at most.
OUT_OF_ORDER_US = 60 * 1_000_000


def after_last_landing(lake: Lake, source_file: str, newest_arrival_us: int) -> int | None:
    """``landed_at`` (epoch microseconds) for the next batch of a shard: its newest arrival,
    but strictly after the shard's last landing; None for a batch out of order.

    Kinesis arrival times have millisecond precision, and one ``PutRecords`` call's records
    share one: two batches cut from it (a full batch, a bisected retry) would tie on
    ``landed_at`` and the latest version of an order would fall to the hash in ``ingest_id``
    (CONTRACT.md sections 3 and 6: the stream's order of arrival decides). The Lambda gets
    one batch per shard at a time (``ParallelizationFactor: 1``), so a read, then a write
    after the landing (:func:`remember_landing`) is enough.

    A batch whose newest arrival is more than OUT_OF_ORDER_US before the shard's last landing
    (a replayed range) gets None: the caller stamps it with its own arrival, so that its
    versions lose to those that arrived after them, as in the figures. Stamped after the last
    landing it would beat them in the warehouse. dbt still reads it, its stamp old as it is
    (macros/latest_versions.sql, incremental_cutoff: landings published late)."""
    data = lake.read_bytes(shard_key(source_file))
    if data is None:
        return newest_arrival_us
    last = int(json.loads(data)["landed_at_us"])
    if newest_arrival_us < last - OUT_OF_ORDER_US:
        return None
    return max(newest_arrival_us, last + 1)


def remember_landing(lake: Lake, source_file: str, landed_at_us: int) -> None:
    """Record ``landed_at_us``, which :func:`after_last_landing` gave this batch, as the
    shard's last landing. It is later than the one recorded (that function made it so), also
    when the landing found the range landed before and returned that older manifest, so the
    time only moves forward without reading the record again. (A batch out of order is not
    recorded.)"""
    body = {"source_file": source_file, "landed_at_us": landed_at_us}
    lake.put_atomic(shard_key(source_file), json.dumps(body).encode())


def landed(lake: Lake, ingest_id: str) -> dict[str, Any] | None:
    """The manifest of a batch that has landed, else None."""
    data = lake.read_bytes(f"{MANIFESTS}{ingest_id}.json")
    return json.loads(data) if data is not None else None


def land_batch(
    lake: Lake,
    catalog: Catalog,
    settings: Settings,
    source_file: str,
    first: str,
    last: str,
    judged: Judged,
    landed_at: dt.datetime,
) -> dict[str, Any]:
    """Publish one batch, the judged records ``first..last`` of a shard (valid rows under
    ``raw/orders/``, rejects, manifest); idempotent for that range and ``landed_at``."""
    sha = batch_sha(source_file, first, last)
    ingest_id = make_ingest_id(landed_at, sha)
    done = landed(lake, ingest_id)
    if done is not None:
        return done
    # The ingestion's claim: one landing of this range at a time, and another run's recovery
    # leaves our staging alone while we hold it. A range landed before (under any ingest_id)
    # returns that landing's manifest.
    claimed = claim(lake, settings, source_file, sha, ingest_id)
    if not isinstance(claimed, str):
        return claimed
    try:
        return _land_claimed(
            lake, catalog, settings, source_file, first, last, judged, landed_at, sha, ingest_id
        )
    except BaseException:
        lake.delete([claimed])  # let a retry claim it at once
        raise


def _land_claimed(
    lake: Lake,
    catalog: Catalog,
    settings: Settings,
    source_file: str,
    first: str,
    last: str,
    judged: Judged,
    landed_at: dt.datetime,
    sha: str,
    ingest_id: str,
) -> dict[str, Any]:
    recovered = recover(lake, catalog, settings, source_file, sha)
    if recovered is not None and recovered["ingest_id"] == ingest_id:
        return recovered

    stage = f"{STAGING}{ingest_id}/"
    lake.put_atomic(
        stage + STARTED,
        json.dumps({"source_file": source_file, "sha256": sha, "ingest_id": ingest_id}).encode(),
    )
    lineage = {"source_file": source_file, "ingest_id": ingest_id, "landed_at": landed_at}
    moves: list[tuple[str, str]] = []

    # Valid rows, one file per pa_date, in batch order within it.
    n = len(judged.valid)
    v = judged.values
    lines = pa.array(judged.valid + 1, pa.int64())
    columns: dict[str, pa.Array] = {}
    for f in rules.RAW_SCHEMA:
        if f.name == "source_line":
            columns[f.name] = lines
        elif f.name in ("source_file", "ingest_id"):
            columns[f.name] = pa.array([lineage[f.name]] * n, pa.string())
        elif f.name == "landed_at":
            columns[f.name] = pa.array([landed_at] * n, f.type)
        else:
            columns[f.name] = v[f.name].cast(f.type)
    table = pa.table(columns, schema=rules.RAW_SCHEMA)
    days = v["pa_date"]
    partitions: list[str] = []
    for day in sorted(set(days.to_pylist())):
        text = day.isoformat()
        part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        staged = f"{stage}{text}-0.parquet"
        with lake.open_write(staged) as sink:
            pq.write_table(part, sink, row_group_size=max(part.num_rows, 1), **RAW_PARQUET_OPTIONS)
        moves.append((staged, f"{RAW_PREFIX}pa_date={text}/{ingest_id}-0.parquet"))
        partitions.append(text)

    counts = {"missing": 0, "invalid": 0, "duplicate": 0}
    if judged.rejected:
        rejects = RejectsWriter(lake, stage + "rejects.parquet", lineage)
        try:
            for r in judged.rejected:
                counts[r.reason] += 1
                rejects.add(r.index + 1, r.raw, r.reason, r.column, r.detail)
            rejects.close()
        except BaseException:
            rejects.abort()
            raise
        date = landed_at.astimezone(dt.UTC).date().isoformat()
        moves.append(
            (stage + "rejects.parquet", f"{REJECTS_PREFIX}ingest_date={date}/{ingest_id}.parquet")
        )

    manifest: dict[str, Any] = {
        "ingest_id": ingest_id,
        "source_file": source_file,
        "status": "landed",
        "rows_in": judged.count,
        "valid": n,
        "rejected": counts,
        "ignored_columns": judged.ignored,
        "partitions": partitions,
        "landed_at": iso_z(landed_at),
        "error": None,
        "sha256": sha,
        "first_sequence": first,
        "last_sequence": last,
    }
    publish(
        lake,
        catalog,
        {"manifest": manifest, "moves": moves, "state_key": state_key(source_file, sha)},
        write_intent=True,
    )
    log.info(
        "landed",
        extra={
            "ingest_id": ingest_id,
            "source_file": source_file,
            "first_sequence": first,
            "last_sequence": last,
            "valid": n,
            "rejected": counts,
            "partitions": len(partitions),
        },
    )
    return manifest
