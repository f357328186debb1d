"""AWS Lambda entry point on the Kinesis order stream: ``realtime.handler.handler``.

Two functions run it, each on its own event source mapping of the same stream, told apart by
``DUFF_REALTIME_CONSUMER``:

* ``figures`` (default): a short batch window, so an event reaches DynamoDB (and
  ``/realtime/summary``) within seconds;
* ``lake``: a 60 s batch window hands it a minute of a shard at a time, landed as one batch
  (at most one file per minute per shard per partition, as section 6 asks).

Two mappings, because one window cannot be both seconds (freshness) and a minute (files).
Thin (STYLE.md): the store (DynamoDB, ``DUFF_REALTIME_TABLE``), the lake (``DUFF_LAKE``,
``s3://...``) and its Glue catalog are built once per execution environment; each invocation
is one call into :func:`realtime.kinesis_batch.process`, whose answer is the
``ReportBatchItemFailures`` response. The store gets the invocation's remaining time, so it
starts no write that could still be in flight when Lambda stops a timed-out invocation
(``realtime.dynamo_store.WRITE_MARGIN_S``): the batch is reported failed from there instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from ingestion.metrics import configure_json_logging
from ingestion.settings import Settings as IngestSettings
from realtime import metrics
from realtime.events import Judged
from realtime.kinesis_batch import process, records_from_event
from realtime.settings import Settings

SETTINGS = Settings.from_env()
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    configure_json_logging(os.environ.get("DUFF_LOG_LEVEL", "INFO"))
log = logging.getLogger("realtime.handler")


@functools.cache
def _store():
    from realtime.dynamo_store import DynamoStore

    if not SETTINGS.table:
        raise RuntimeError("DUFF_REALTIME_TABLE is not set")
    return DynamoStore(SETTINGS.table)


@functools.cache
def _lake():
    from ingestion.lake import lake_from_uri
    from ingestion.land import default_catalog

    ingest = IngestSettings.from_env()
    return lake_from_uri(ingest.lake), default_catalog(ingest), ingest


def _land(shard: str, first: str, last: str, judged: Judged, arrival_us: int) -> Any:
    from realtime.landing import after_last_landing, land_batch, remember_landing

    lake, catalog, ingest = _lake()
    source = f"stream://{SETTINGS.stream_name}/{shard}"
    landed_us = after_last_landing(lake, source, arrival_us)  # never ties with the last batch
    in_order = landed_us is not None
    if not in_order:  # a replayed range: its own arrival, the shard's last landing unchanged
        landed_us = arrival_us
        log.warning(
            "landing a range older than the shard's last landing with its own arrival time",
            extra={"shard": shard, "first_sequence": first, "last_sequence": last},
        )
    landed_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=landed_us)
    manifest = land_batch(lake, catalog, ingest, source, first, last, judged, landed_at)
    if in_order:
        remember_landing(lake, source, landed_us)
    return manifest


def _emit(shard: str, events: int, valid: int, rejected: int, lag: float) -> None:
    metrics.emit_batch(SETTINGS.metrics_namespace, shard, events, valid, rejected, lag)


def _time_left(context: object) -> Callable[[], float] | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else lambda: remaining() / 1000


def handler(event: dict, context: object) -> dict:
    records = records_from_event(event)
    if SETTINGS.consumer == "lake":
        return process(records, None, _land, None)
    store = _store()
    store.time_left = _time_left(context)  # this invocation's; invocations never overlap here
    return process(records, store, None, _emit)
