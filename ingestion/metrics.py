"""Per-file metrics as CloudWatch Embedded Metric Format (EMF) log lines, and JSON logs.

One JSON object per landed file, written as a single line. In Lambda, CloudWatch Logs turns
it into metrics without any API call (no PutMetricData, no extra latency, no extra IAM):

- ``Files`` (Count, always 1), ``RowsIn``, ``Valid``, ``Rejected`` (Count),
- ``RejectedMissing``, ``RejectedInvalid``, ``RejectedDuplicate`` (Count; one per reason, always
  present so dashboards see zeros rather than gaps; an unknown reason gets ``Rejected<Reason>``),
- ``Bytes`` (Bytes: size of the source file), ``Seconds`` (Seconds: wall time of the landing),

in namespace ``Duff/Ingestion`` (``DUFF_METRICS_NAMESPACE`` overrides it) with the dimension
``Status`` (``landed``, ``skipped``, ``quarantined``), so an alarm on
``Files{Status=quarantined}`` needs nothing else. The line also carries ``ingest_id``,
``source_file`` and ``partitions`` as searchable properties (not metrics: no extra cost).

Structured logs: :func:`configure_json_logging` makes every log record one JSON line, and
:func:`log_context` / :func:`bind_log_fields` attach ``ingest_id``, ``source_file`` and the
Lambda request id to every line written while one file is landed.

See https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

DEFAULT_NAMESPACE = "Duff/Ingestion"
KNOWN_REASONS = ("missing", "invalid", "duplicate")


def _metric_name(reason: str) -> str:
    return "Rejected" + "".join(part.capitalize() for part in reason.replace("-", "_").split("_"))


def emf_record(
    manifest: Mapping[str, Any],
    *,
    bytes_in: int | None,
    seconds: float,
    namespace: str | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """The EMF object for one file's manifest (CONTRACT.md section 2)."""
    rejected_by_reason: Mapping[str, int] = manifest.get("rejected") or {}
    values: dict[str, tuple[float, str]] = {
        "Files": (1, "Count"),
        "RowsIn": (int(manifest.get("rows_in") or 0), "Count"),
        "Valid": (int(manifest.get("valid") or 0), "Count"),
        "Rejected": (sum(int(v) for v in rejected_by_reason.values()), "Count"),
    }
    reasons = list(KNOWN_REASONS) + sorted(set(rejected_by_reason) - set(KNOWN_REASONS))
    for reason in reasons:
        values[_metric_name(reason)] = (int(rejected_by_reason.get(reason, 0)), "Count")
    if bytes_in is not None:
        values["Bytes"] = (int(bytes_in), "Bytes")
    values["Seconds"] = (round(float(seconds), 6), "Seconds")

    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace
                    or os.environ.get("DUFF_METRICS_NAMESPACE")
                    or DEFAULT_NAMESPACE,
                    "Dimensions": [["Status"]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
                }
            ],
        },
        "Status": str(manifest.get("status") or "unknown"),
    }
    record.update({name: value for name, (value, _) in values.items()})
    record["ingest_id"] = manifest.get("ingest_id")
    record["source_file"] = manifest.get("source_file")
    record["partitions"] = len(manifest.get("partitions") or [])
    return record


def emit(
    manifest: Mapping[str, Any],
    *,
    bytes_in: int | None,
    seconds: float,
    stream: TextIO | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Write the EMF line for one file to ``stream`` (default stdout) and return the object.

    EMF lines must be bare JSON, one per line: they bypass the logging formatter on purpose.
    In Lambda, stdout is the function's log stream. A CLI whose stdout is reserved for
    ``--json`` output passes ``sys.stderr``.
    """
    record = emf_record(manifest, bytes_in=bytes_in, seconds=seconds, namespace=namespace)
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
    out.flush()
    return record


# -- structured logs ---------------------------------------------------------------------------

_log_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "duff_log_fields", default=None
)

#: Attributes every LogRecord has; anything else passed in ``extra=`` is a structured field.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``ingest_id=...``, ``source_file=...``) to every JSON log line
    written inside the block, in this thread or task. Nested blocks add to the outer fields.
    """
    token = _log_fields.set({**(_log_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _log_fields.reset(token)


def bind_log_fields(**fields: Any) -> None:
    """Add fields to the current :func:`log_context` block (e.g. ``ingest_id`` once known)."""
    _log_fields.set({**(_log_fields.get() or {}), **fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (UTC, ms), ``level``, ``logger``, ``message``,
    the fields of the enclosing :func:`log_context`, any ``extra=`` fields, and ``exception``
    with the traceback when there is one. CloudWatch Logs Insights can filter on every key
    (``filter ingest_id = "..."``).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_log_fields.get() or {})
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_json_logging(level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record of the process to ``stream`` (stderr) as JSON lines.

    Replaces the root logger's handlers, including the one the Lambda runtime installs (whose
    plain-text prefix would hide the JSON from Logs Insights). Safe to call more than once.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request chatter of the AWS SDK is noise at INFO.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
