"""AWS Lambda entry point: ``handler(event, context)`` for S3 ``ObjectCreated`` notifications.

Thin by design (STYLE.md): settings and logging are set up once per container, and each
record of the event becomes one call of the landing code (``ingestion.land``) with the source
``s3://bucket/key`` (key decoded with ``unquote_plus``, as S3 encodes it). Everything else
(reading, validating, writing Parquet, Glue partitions) lives behind that call.

Delivery is at least once: landing is idempotent, so a repeated record reports ``skipped``.

Errors, decided in exactly one place (:func:`handle_event`):

* a file that is quarantined is a *result*, not an error: its manifest says why, a metric
  counts it, the invocation succeeds (retrying cannot make a bad file good);
* any other exception (S3, Glue, permissions, a bug) is an *infrastructure* error: the other
  records of the event are still landed, then the invocation raises :class:`IngestFailed`, so
  S3's asynchronous invocation retries it (records already landed are then skipped) and, once
  retries are exhausted, the event goes to the dead-letter queue / on-failure destination;
* a record for an object that no longer exists, a removal event, a folder placeholder or an
  object inside the lake's own areas (a misconfigured trigger would otherwise loop) is
  *ignored* with a warning.

Also accepted: the same S3 events wrapped by SQS (``body``) or SNS (``Sns.Message``), and the
``s3:TestEvent`` S3 sends when a notification is configured.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ingestion import metrics
from ingestion.lake import lake_from_uri
from ingestion.land import default_catalog, land
from ingestion.settings import Settings

SETTINGS = Settings.from_env()
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda; tests and the CLI keep their own
    metrics.configure_json_logging(SETTINGS.log_level)
log = logging.getLogger("ingestion.handler")

#: Top-level folders of a lake that landing writes itself; objects there are never sources.
LAKE_AREAS = frozenset({"raw", "rejects", "manifests", "quarantine", "marts", "warehouse"})

LandFn = Callable[[str], Mapping[str, Any]]


class IngestFailed(RuntimeError):
    """At least one record of the event hit an infrastructure error; the event must be retried."""


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: land every object the event names; see the module docstring."""
    return handle_event(
        event,
        land=_land,
        lake_root=SETTINGS.lake,
        request_id=getattr(context, "aws_request_id", None),
    )


@functools.cache
def _runtime() -> tuple[Any, Any]:
    """The lake and catalog adapters, built once per Lambda container and reused."""
    return lake_from_uri(SETTINGS.lake), default_catalog(SETTINGS)


def _land(source: str) -> Mapping[str, Any]:
    lake, catalog = _runtime()
    return land(source, lake=lake, catalog=catalog, settings=SETTINGS)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # Build the adapters and their SDK clients during the init phase (CPU-boosted, once per
    # container) rather than in the first request.
    for _adapter in _runtime():
        getattr(_adapter, "client", None)


# -- event parsing (pure) ----------------------------------------------------------------------


def iter_s3_records(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The S3 notification records of ``event``, unwrapping SQS and SNS envelopes.

    Raises ``ValueError`` for an event that is not an S3 notification at all.
    """
    if event.get("Event") == "s3:TestEvent":
        return
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError(f"not an S3 event notification: keys {sorted(event)}")
    for record in records:
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:sqs":
            yield from iter_s3_records(json.loads(record["body"]))
        elif source == "aws:sns":
            yield from iter_s3_records(json.loads(record["Sns"]["Message"]))
        else:
            yield record


def source_uri(record: Mapping[str, Any]) -> str:
    """``s3://bucket/key`` of an S3 record, the key decoded (``+`` is a space, ``%2B`` a plus)."""
    s3 = record["s3"]
    return f"s3://{s3['bucket']['name']}/{urllib.parse.unquote_plus(s3['object']['key'])}"


def ignore_reason(record: Mapping[str, Any], source: str, lake_root: str) -> str | None:
    """Why this record must not be landed, or None when it must."""
    event_name = str(record.get("eventName", ""))
    if not event_name.startswith("ObjectCreated:"):
        return f"event {event_name or '?'} is not an object creation"
    if source.endswith("/"):
        return "a folder placeholder, not a file"
    if lake_root.startswith("s3://"):
        root = lake_root.rstrip("/") + "/"
        if source.startswith(root):
            area = source[len(root) :].split("/", 1)[0]
            if area in LAKE_AREAS or area.startswith("_"):
                return f"inside the lake's own {area}/ area (is the trigger's prefix right?)"
    return None


# -- the one place where errors are decided ----------------------------------------------------


def handle_event(
    event: Mapping[str, Any],
    *,
    land: LandFn,
    lake_root: str,
    request_id: str | None = None,
    emit_metrics: Callable[..., Any] = metrics.emit,
    source_exists: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Land every object of ``event`` with ``land(source) -> manifest``; return a summary.

    The summary counts records by outcome (``landed``, ``skipped``, ``quarantined``,
    ``ignored``, ``gone``, ``failed``) and lists one entry per record. Raises
    :class:`IngestFailed` after all records were tried when any of them failed.
    ``source_exists(source)`` tells a deleted source (ignored as ``gone``) from any other
    missing-file error (a failure); by default it asks S3.
    """
    results: list[dict[str, Any]] = []
    failures: list[tuple[str, BaseException]] = []
    for record in iter_s3_records(event):
        source = source_uri(record)
        with metrics.log_context(source_file=source, aws_request_id=request_id):
            reason = ignore_reason(record, source, lake_root)
            if reason is not None:
                log.warning("ignored %s: %s", source, reason)
                results.append({"source_file": source, "status": "ignored", "reason": reason})
                continue
            size = record["s3"]["object"].get("size")
            started = time.monotonic()
            try:
                manifest = dict(land(source))
            except Exception as exc:
                seconds = time.monotonic() - started
                if isinstance(exc, FileNotFoundError) and not _still_exists(source_exists, source):
                    # Deleted after the event was sent: no retry can land it.
                    log.warning("ignored %s: it no longer exists (%s)", source, exc)
                    results.append({"source_file": source, "status": "gone", "reason": str(exc)})
                    continue
                log.exception("landing %s failed; the event will be retried", source)
                failed = {"status": "failed", "source_file": source}
                emit_metrics(failed, bytes_in=size, seconds=seconds)
                failures.append((source, exc))
                results.append({"source_file": source, "status": "failed", "error": repr(exc)})
                continue
            seconds = time.monotonic() - started
            metrics.bind_log_fields(ingest_id=manifest.get("ingest_id"))
            if size is None:
                size = manifest.get("bytes")
            emit_metrics(manifest, bytes_in=size, seconds=seconds)
            entry = _file_summary(manifest, seconds)
            level = logging.WARNING if manifest.get("status") == "quarantined" else logging.INFO
            log.log(
                level,
                "%s %s",
                manifest.get("status"),
                source,
                extra={k: v for k, v in entry.items() if k not in {"source_file", "ingest_id"}},
            )
            results.append(entry)

    summary = _summary(results)
    if failures:
        detail = "; ".join(f"{src}: {exc!r}" for src, exc in failures)
        raise IngestFailed(
            f"{len(failures)} of {len(results)} record(s) failed: {detail}"
        ) from failures[0][1]
    log.info("event done", extra={k: v for k, v in summary.items() if k != "files"})
    return summary


def _still_exists(source_exists: Callable[[str], bool] | None, source: str) -> bool:
    if source_exists is None:
        from ingestion.s3 import source_exists as s3_source_exists

        source_exists = s3_source_exists
    try:
        return source_exists(source)
    except Exception:
        log.exception("could not tell whether %s still exists", source)
        return True  # unknown: treat it as a failure, so the event is retried


def _file_summary(manifest: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    keys = ("source_file", "status", "ingest_id", "rows_in", "valid", "rejected", "partitions")
    entry = {key: manifest.get(key) for key in keys}
    if manifest.get("error"):
        entry["error"] = manifest["error"]
    entry["seconds"] = round(seconds, 3)
    return entry


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = ("landed", "skipped", "quarantined", "ignored", "gone", "failed")
    summary: dict[str, Any] = {"records": len(results)}
    for outcome in outcomes:
        summary[outcome] = sum(1 for r in results if r["status"] == outcome)
    summary["files"] = results
    return summary
