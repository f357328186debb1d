"""Per-file metrics as CloudWatch Embedded Metric Format (EMF) log lines.

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

See https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
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
