"""Real-time metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout.

Per applied batch: ``EventsIn``, ``Valid``, ``Rejected`` (Count) and ``LagSeconds`` (Seconds:
now minus the stream's arrival time of the newest record of the batch, the local twin of the
Kinesis iterator age), in namespace ``Duff/Realtime`` with dimension ``Shard`` and the
dimension-less roll-up the lag alarm watches. In Lambda, CloudWatch Logs turns these lines into
metrics with no API call.
"""

from __future__ import annotations

import json
import os
import sys
import time


def emf(namespace: str, shard: str, values: dict[str, tuple[float, str]]) -> dict:
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Shard"], []],
                    "Metrics": [{"Name": k, "Unit": u} for k, (_v, u) in values.items()],
                }
            ],
        },
        "Shard": shard,
        **{k: v for k, (v, _u) in values.items()},
    }


def emit_batch(
    namespace: str, shard: str, events: int, valid: int, rejected: int, lag_seconds: float
) -> None:
    """Write one EMF line (only in Lambda, or when DUFF_REALTIME_EMF=1: locally it is noise)."""
    if not (os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("DUFF_REALTIME_EMF")):
        return
    record = emf(
        namespace,
        shard,
        {
            "EventsIn": (events, "Count"),
            "Valid": (valid, "Count"),
            "Rejected": (rejected, "Count"),
            "LagSeconds": (round(lag_seconds, 3), "Seconds"),
        },
    )
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()
