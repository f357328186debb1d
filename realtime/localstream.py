"""The durable local stream: an append-only log per shard under ``$DUFF_LAKE/stream/<name>/``.

Not a mock: it survives restarts and keeps every record (a consumer's checkpoint says where
it is, the log never forgets), like a Kinesis stream whose retention never runs out.

Layout::

    stream/<name>/stream.json          {"shards": N}: fixed when the stream is created
    stream/<name>/shard-0000.log       records, appended
    stream/<name>/shard-0000.tail      a hint: (offset, next sequence) after the last append

A record is a 24-byte header ``<length u32><crc32 u32><sequence u64><arrival_us i64>``
followed by ``length`` bytes of data; the CRC covers sequence, arrival and data. Sequences
start at 1 and grow by one per record in each shard. Appends hold an exclusive ``flock`` on
the log: the writer first reads forward from the tail hint to the true end (another producer
may have appended), truncates a torn last record (a producer killed mid-write), then writes
its records with one ``write`` and ``fsync``s before it reports them accepted. The arrival
time never goes backwards within a shard, so arrival order is sequence order.

Readers never lock: a record whose bytes are not all there yet (or whose CRC does not match
yet) ends what they read this time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from realtime.model import Record

_HEADER = struct.Struct("<IIQq")
MAX_RECORD_BYTES = 1024 * 1024  # Kinesis' limit on one record's data


class StreamError(RuntimeError):
    """The stream cannot be used as asked (its message says why)."""


def _crc(seq: int, arrival: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(struct.pack("<Qq", seq, arrival)))


def shard_name(index: int) -> str:
    return f"shard-{index:04d}"


@dataclass(frozen=True)
class Position:
    """Where to read next in a shard: the sequence of the next record and its byte offset."""

    sequence: int = 1
    offset: int = 0


def _scan(data: bytes, offset: int, seq: int) -> Iterator[tuple[int, int, int, bytes, int]]:
    """(sequence, arrival_us, start offset, data, end offset) of whole records in ``data``."""
    pos = 0
    end = len(data)
    while pos + _HEADER.size <= end:
        length, crc, s, arrival = _HEADER.unpack_from(data, pos)
        stop = pos + _HEADER.size + length
        if length > MAX_RECORD_BYTES or stop > end:
            return
        payload = data[pos + _HEADER.size : stop]
        if s != seq or _crc(s, arrival, payload) != crc:
            return
        yield s, arrival, offset + pos, payload, offset + stop
        seq += 1
        pos = stop


def local_stream_uri(name: str) -> str:
    """The URI a store is bound to (SqliteStore.bind_stream) for the local stream ``name``."""
    return f"local://{name}"


class LocalStream:
    """A named stream of ``shards`` append-only logs under ``root`` (``$DUFF_LAKE/stream``)."""

    def __init__(self, root: str | os.PathLike[str], name: str = "orders", shards: int = 2):
        if not name or "/" in name or name.startswith("."):
            raise StreamError(f"not a stream name: {name!r}")
        self.name = name
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "stream.json"
        if not meta.exists():
            tmp = self.dir / f".stream.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps({"shards": shards}))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, meta)  # the first creator fixes the shard count
            tmp.unlink()
        self.shards = [shard_name(i) for i in range(int(json.loads(meta.read_text())["shards"]))]

    @property
    def uri(self) -> str:
        return local_stream_uri(self.name)

    def source_file(self, shard: str) -> str:
        return f"stream://{self.name}/{shard}"

    def _log(self, shard: str) -> Path:
        return self.dir / f"{shard}.log"

    def shard_for(self, partition_key: str) -> str:
        digest = hashlib.md5(
            partition_key.encode("utf-8", "surrogateescape"), usedforsecurity=False
        ).digest()
        return self.shards[int.from_bytes(digest[:8], "big") % len(self.shards)]

    # -- producing -------------------------------------------------------------------------

    def append(self, shard: str, items: list[bytes]) -> list[int]:
        """Append records to one shard, durably; returns their sequence numbers."""
        for data in items:
            if len(data) > MAX_RECORD_BYTES:
                raise StreamError(f"a record of {len(data)} bytes exceeds {MAX_RECORD_BYTES}")
        if not items:
            return []
        path = self._log(shard)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            offset, seq, last_arrival = self._true_end(shard, fd)
            now = max(time.time_ns() // 1000, last_arrival)
            chunks = []
            seqs = []
            for data in items:
                chunks.append(_HEADER.pack(len(data), _crc(seq, now, data), seq, now))
                chunks.append(data)
                seqs.append(seq)
                seq += 1
            blob = b"".join(chunks)
            os.pwrite(fd, blob, offset)
            os.fsync(fd)
            self._write_tail(shard, offset + len(blob), seq, now)
            return seqs
        finally:
            os.close(fd)  # releases the lock

    def _true_end(self, shard: str, fd: int) -> tuple[int, int, int]:
        """(offset, next sequence, last arrival) at the end of the log; truncates a torn tail."""
        offset, seq, arrival = self._read_tail(shard)
        size = os.fstat(fd).st_size
        if offset > size:
            offset, seq, arrival = 0, 1, 0
        while True:
            data = os.pread(fd, 8 * 1024 * 1024, offset)
            if not data:
                break
            moved = False
            for s, a, _start, _payload, stop in _scan(data, offset, seq):
                seq, arrival, offset, moved = s + 1, a, stop, True
            if not moved:
                break
        if offset < size:
            os.ftruncate(fd, offset)  # a producer died mid-write: nothing of it was accepted
        return offset, seq, arrival

    def _read_tail(self, shard: str) -> tuple[int, int, int]:
        try:
            offset, seq, arrival = json.loads((self.dir / f"{shard}.tail").read_text())
            return int(offset), int(seq), int(arrival)
        except (FileNotFoundError, ValueError, TypeError):
            return 0, 1, 0

    def _write_tail(self, shard: str, offset: int, seq: int, arrival: int) -> None:
        tmp = self.dir / f".{shard}.tail.{os.getpid()}.tmp"
        tmp.write_text(json.dumps([offset, seq, arrival]))
        os.replace(tmp, self.dir / f"{shard}.tail")

    def record_bytes(self, data: bytes) -> int:
        """What counts against the 1 MiB record limit: the data."""
        return len(data)

    def put(self, items: list[bytes]) -> int:
        """Put events on the stream, each on the shard of its order; returns how many."""
        from realtime.events import order_key

        by_shard: dict[str, list[bytes]] = {}
        for data in items:
            by_shard.setdefault(self.shard_for(order_key(data)), []).append(data)
        return sum(len(self.append(shard, batch)) for shard, batch in by_shard.items())

    # -- consuming -------------------------------------------------------------------------

    def read(
        self, shard: str, start: Position, max_records: int = 10_000, max_bytes: int = 16 << 20
    ) -> tuple[list[Record], Position]:
        """Records from ``start`` on (at most ``max_records``), and the position after them."""
        path = self._log(shard)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return [], start
        try:
            data = os.pread(fd, max_bytes, start.offset)
        finally:
            os.close(fd)
        out: list[Record] = []
        pos = start
        for s, arrival, _begin, payload, stop in _scan(data, start.offset, start.sequence):
            out.append(Record(shard, str(s), arrival, payload))
            pos = Position(s + 1, stop)
            if len(out) >= max_records:
                break
        if not out and len(data) >= _HEADER.size:
            found = _HEADER.unpack_from(data, 0)[2]
            if found != start.sequence:  # not a torn or unfinished tail: a wrong position
                raise StreamError(
                    f"{shard}: offset {start.offset} holds sequence {found}, not {start.sequence}"
                )
        return out, pos

    def seek(self, shard: str, sequence: int) -> Position:
        """The position of record ``sequence`` (or the end when the log is shorter)."""
        pos = Position()
        while pos.sequence < sequence:
            records, nxt = self.read(shard, pos, max_records=min(10_000, sequence - pos.sequence))
            if not records:
                break
            pos = nxt
        return pos

    def end(self, shard: str) -> Position:
        """The position after the last whole record."""
        return self.seek(shard, 2**62)
