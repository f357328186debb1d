"""The Amazon Kinesis adapter: put events on a data stream (``DUFF_STREAM=kinesis://<name>``).

The only module that calls Kinesis. ``PutRecords`` takes at most 500 records (5 MiB) per
call and may refuse some of them (throttling): those are retried, a few times with backoff,
and only what Kinesis accepted is counted.

Order. ``PutRecords`` processes every record of a call even when some fail, so a refused
record retried after an accepted one lands after it ("PutRecords doesn't guarantee the
ordering of records", botocore's Kinesis model). A call therefore holds at most one version
of an order (the partition key): a later version goes in the next call, which starts only
once every record of this one is accepted or given up. A call the stream refuses whole (KMS
throttling, a stream being updated) raises :class:`PutFailed` with the count accepted before.
"""

from __future__ import annotations

import logging
import time

from realtime.events import order_key
from realtime.localstream import StreamError

log = logging.getLogger("realtime.kinesis")
MAX_RECORDS = 500
MAX_BYTES = 5 * 1024 * 1024
RETRIES = 5


class PutFailed(StreamError):
    """Kinesis refused a whole PutRecords call; ``accepted`` events were put before it."""

    def __init__(self, message: str, accepted: int) -> None:
        super().__init__(message)
        self.accepted = accepted


class KinesisStream:
    def __init__(self, name: str, client: object | None = None) -> None:
        import boto3  # only when the stream is on Kinesis

        self.name = name
        self.client = client or boto3.client("kinesis")

    @property
    def uri(self) -> str:
        return f"kinesis://{self.name}"

    @staticmethod
    def partition_key(data: bytes) -> str:
        return order_key(data)[:256]

    def record_bytes(self, data: bytes) -> int:
        """What counts against the 1 MiB record limit: the data and its partition key."""
        return len(data) + len(self.partition_key(data).encode())

    def put(self, items: list[bytes]) -> int:
        """Put events (partition key: the order), each order's versions in the order given;
        returns how many Kinesis accepted."""
        accepted = 0
        chunk: list[dict] = []
        keys: set[str] = set()
        size = 0
        try:
            for data in items:
                key = self.partition_key(data)
                entry = {"Data": data, "PartitionKey": key}
                weight = len(data) + len(key.encode())
                full = len(chunk) == MAX_RECORDS or size + weight > MAX_BYTES
                if chunk and (full or key in keys):
                    accepted += self._put_chunk(chunk)
                    chunk, keys, size = [], set(), 0
                chunk.append(entry)
                keys.add(key)
                size += weight
            if chunk:
                accepted += self._put_chunk(chunk)
        except Exception as exc:  # botocore's ClientError or BotoCoreError: the whole call
            raise PutFailed(f"Kinesis refused a PutRecords call: {exc}", accepted) from exc
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
