"""The Amazon Kinesis adapter: put events on a data stream (``DUFF_STREAM=kinesis://<name>``).

The only module that calls Kinesis. ``PutRecords`` takes at most 500 records (5 MiB) per
call and may refuse some of them (throttling): those are retried, a few times with backoff,
and only what Kinesis accepted is counted.
"""

from __future__ import annotations

import logging
import time

from realtime.events import order_key

log = logging.getLogger("realtime.kinesis")
MAX_RECORDS = 500
MAX_BYTES = 5 * 1024 * 1024
RETRIES = 5


class KinesisStream:
    def __init__(self, name: str, client: object | None = None) -> None:
        import boto3  # only when the stream is on Kinesis

        self.name = name
        self.client = client or boto3.client("kinesis")

    @property
    def uri(self) -> str:
        return f"kinesis://{self.name}"

    def put(self, items: list[bytes]) -> int:
        """Put events (partition key: the order); returns how many Kinesis accepted."""
        accepted = 0
        chunk: list[dict] = []
        size = 0
        for data in items:
            key = order_key(data)[:256]
            entry = {"Data": data, "PartitionKey": key}
            weight = len(data) + len(key.encode())
            if chunk and (len(chunk) == MAX_RECORDS or size + weight > MAX_BYTES):
                accepted += self._put_chunk(chunk)
                chunk, size = [], 0
            chunk.append(entry)
            size += weight
        if chunk:
            accepted += self._put_chunk(chunk)
        return accepted

    def _put_chunk(self, entries: list[dict]) -> int:
        accepted = 0
        pending = entries
        for attempt in range(RETRIES + 1):
            resp = self.client.put_records(StreamName=self.name, Records=pending)  # type: ignore[attr-defined]
            failed = [e for e, r in zip(pending, resp["Records"], strict=True) if "ErrorCode" in r]
            accepted += len(pending) - len(failed)
            if not failed:
                break
            log.warning(
                "kinesis refused records; retrying",
                extra={"refused": len(failed), "attempt": attempt + 1},
            )
            pending = failed
            time.sleep(min(0.1 * 2**attempt, 2.0))
        return accepted
