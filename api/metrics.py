"""CloudWatch Embedded Metric Format (EMF) lines for the API's cache and request counters.

Each flush writes one JSON line with the counts since the previous flush; CloudWatch Logs turns
it into metrics in namespace ``Duff/Api``. In Lambda the line goes to stdout, bare: CloudWatch
extracts metrics only from a log event that is a JSON object, and the Python runtime's logging
handler prefixes every record with its level, time and request id (``LogFormat: Text``), as the
ingestion's ``emit`` says too. Locally it is a line of the ``duff.api.metrics`` logger.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TextIO

log = logging.getLogger("duff.api.metrics")

NAMESPACE = "Duff/Api"
_COUNTERS = ("CacheHits", "CacheMisses", "Requests", "ClientErrors", "ServerErrors")


class Metrics:
    def __init__(self, service: str = "duff-api") -> None:
        self.service = service
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)

    def count(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def emf(self, now_ms: int | None = None) -> dict | None:
        """The EMF document for the counts since the last call (None when all are zero)."""
        with self._lock:
            counts, self._counts = self._counts, dict.fromkeys(_COUNTERS, 0)
        if not any(counts.values()):
            return None
        return {
            "_aws": {
                "Timestamp": now_ms if now_ms is not None else int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Service"]],
                        "Metrics": [{"Name": n, "Unit": "Count"} for n in _COUNTERS],
                    }
                ],
            },
            "Service": self.service,
            **counts,
        }

    def flush(self, stream: TextIO | None = None) -> None:
        """Write the counts since the last flush: to ``stream`` as a bare JSON line (Lambda's
        stdout), or to the ``duff.api.metrics`` logger."""
        doc = self.emf()
        if doc is None:
            return
        line = json.dumps(doc, separators=(",", ":"))
        if stream is None:
            log.info(line)
        else:
            stream.write(line + "\n")
            stream.flush()
