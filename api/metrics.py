"""CloudWatch Embedded Metric Format (EMF) lines for the API's cache and request counters.

Each flush writes one JSON line to the ``duff.api.metrics`` logger with the counts since the
previous flush; CloudWatch Logs turns it into metrics in namespace ``Duff/Api``. Locally it is
a readable log line.
"""

from __future__ import annotations

import json
import logging
import threading
import time

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

    def flush(self) -> None:
        doc = self.emf()
        if doc is not None:
            log.info(json.dumps(doc, separators=(",", ":")))
