"""One Kinesis batch as the Lambda event source mapping delivers it: apply, land, report.

Domain code, no boto3: the store and the landing are passed in. The event shape is Lambda's
Kinesis event (``Records[].kinesis.{data, sequenceNumber, approximateArrivalTimestamp}``,
``eventID`` = ``<shardId>:<sequenceNumber>``); the answer uses ``ReportBatchItemFailures``:
``{"batchItemFailures": [{"itemIdentifier": <sequence number>}]}`` names the first record
that was not applied, and Lambda retries the batch from there. Records before it were applied
(and a retry of them changes nothing: a record is never newer than itself).

A bad event is not a failure: it is judged, counted and landed as a rejected row, and the
records after it are applied like any other (no poison pill).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from realtime.events import Judged, judge, latest_orders
from realtime.model import Order, Record

log = logging.getLogger("realtime.kinesis_batch")
# Records per store write (one plan of the DynamoDB store: one UpdateItem per day it
# touches): a failure retries from the chunk that failed. The figures function's batches
# are at most 1,000 records (infra/template.yaml), so a batch is one chunk: each day's item
# is written once per batch, not once per quarter of it.
CHUNK = 1000


class OrderStore(Protocol):
    def apply(self, incoming: dict[int, Order]) -> int: ...


LandFn = Callable[[str, str, str, Judged, int], Any]  # (shard, first, last, judged, arrival_us)


def records_from_event(event: Mapping[str, Any]) -> list[Record]:
    out = []
    for r in event.get("Records", []):
        k = r["kinesis"]
        shard = r.get("eventID", "").split(":", 1)[0] or "shardId-unknown"
        arrival_us = round(float(k["approximateArrivalTimestamp"]) * 1_000_000)
        out.append(Record(shard, k["sequenceNumber"], arrival_us, base64.b64decode(k["data"])))
    return out


def process(
    records: list[Record],
    store: OrderStore | None,
    land: LandFn | None,
    emit: Callable[[str, int, int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Apply a batch chunk by chunk in stream order (when ``store``), then land it (when
    ``land``); the Lambda response."""
    parts: list[Judged] = []
    for i in range(0, len(records), CHUNK):
        chunk = records[i : i + CHUNK]
        try:
            judged = judge(chunk)
            changed = store.apply(latest_orders(chunk, judged)) if store is not None else 0
        except Exception:
            log.exception(
                "batch failed; Lambda retries from this record",
                extra={"shard": chunk[0].shard, "sequence": chunk[0].sequence},
            )
            return {"batchItemFailures": [{"itemIdentifier": chunk[0].sequence}]}
        parts.append(judged)
        lag = max(0.0, time.time() - chunk[-1].arrival_us / 1e6)
        if emit is not None:
            emit(chunk[0].shard, len(chunk), len(judged.valid), len(judged.rejected), lag)
        log.info(
            "applied",
            extra={
                "shard": chunk[0].shard,
                "first_sequence": chunk[0].sequence,
                "last_sequence": chunk[-1].sequence,
                "events": len(chunk),
                "valid": len(judged.valid),
                "rejected": len(judged.rejected),
                "changed": changed,
            },
        )
    if records and land is not None:
        try:
            # landed_at: the newest arrival of the batch (the landing keeps it after the
            # shard's last landing, but for a replayed range: realtime.landing.after_last_landing)
            land(
                records[0].shard,
                records[0].sequence,
                records[-1].sequence,
                Judged.concat(parts),
                max(r.arrival_us for r in records),
            )
        except Exception:
            log.exception(
                "landing failed; Lambda retries the batch", extra={"shard": records[0].shard}
            )
            return {"batchItemFailures": [{"itemIdentifier": records[0].sequence}]}
    return {"batchItemFailures": []}
