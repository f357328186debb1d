"""Land one orders CSV into the lake: validate, stage, publish, write the manifest last.

The steps of :func:`land` (CONTRACT.md section 2, docs/architecture.md section 1):

1. **Fingerprint**: one streaming pass computes the SHA-256 and size and finds whole-file
   faults (empty, compressed, not UTF-8). ``ingest_id`` is
   ``<landed_at as YYYYMMDDTHHMMSSffffffZ>-<12 hex of the SHA-256>``.
2. **Recover**: unfinished work of earlier runs under ``_staging/`` is finished (a publication
   with an intent record is rolled forward) or removed (staging without one).
3. **Skip**: when ``_state/sources/<sha256 of the source name>/<content sha256>.json`` exists,
   the same object has landed before: nothing is written, the status is ``skipped``.
4. **Stage**: a second streaming pass parses and checks the rows block by block. Valid rows are
   buffered, and sorted by ``pa_date`` in runs spilled to local scratch files (Arrow IPC, one
   batch per date); at the end each partition's batches are read back with positioned reads
   and written as one staged Parquet file, published
   as ``raw/orders/pa_date=D/<ingest_id>-0.parquet`` (zstd, row groups of ``row_group_rows``).
   Rejected rows go to one file, ``rejects/orders/ingest_date=D/<ingest_id>.parquet``.
   A whole-file fault stages a byte-for-byte copy under ``quarantine/<ingest_id>/<name>``.
5. **Publish**: an intent record ``_staging/<ingest_id>/_publish.json`` lists every move; then
   the files are moved into place, the catalog learns the new partitions, the manifest
   ``manifests/<ingest_id>.json`` is written, then the idempotency marker, and the staging
   prefix is removed. A crash after the intent is rolled forward by the next run.

Memory stays bounded: a few blocks of CSV in flight (scan thread, rules pool, consumer) with
their Arrow columns, the sort buffer, two partitions' row groups while writing, and the seen
``order_id``s (intervals of consecutive ids; 8 bytes per id when they come in no order).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ingestion import rules
from ingestion.csvscan import Block, ScanError, Scanner, parse_header
from ingestion.lake import (
    Catalog,
    Lake,
    NullCatalog,
    canonical_source,
    is_s3_uri,
    lake_from_uri,
    open_source,
)
from ingestion.settings import Settings

log = logging.getLogger("ingestion.land")

STAGING = "_staging/"
STATE = "_state/sources/"
CLAIMS = "_state/claims/"
RAW_PREFIX = "raw/orders/"
REJECTS_PREFIX = "rejects/orders/"
MANIFESTS = "manifests/"
QUARANTINE = "quarantine/"
INTENT = "_publish.json"
STARTED = "_started.json"

READ_BYTES = 8 * 1024 * 1024
COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
}
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,  # level 3 costs 10% more time for 1% smaller files
    # Dictionary encoding pays for text; ids, decimals and dates are cheaper without it.
    "use_dictionary": [
        "client_name",
        "product_description",
        "point_of_sale_channel",
        "status",
        "source_file",
        "ingest_id",
        "reason",
        "column",
    ],
}
# The raw partition files (measured on 731 partitions of ~14.6k rows, docs/ingestion.md):
# dictionary pages for every low-cardinality column (few prices, products, clients per day:
# smaller files and less for zstd to compress), delta encoding for the two increasing integer
# columns, and min/max statistics only where a reader can use them cheaply (ids, dates,
# lineage): decimal and text statistics cost ~20% of the write and no query filters on them
# inside a pa_date partition. Together 42% less write CPU and 26% smaller files than before.
RAW_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": [
        "client_id",
        "client_name",
        "product_id",
        "product_description",
        "product_price",
        "product_ccf",
        "product_volume",
        "point_of_sale_channel",
        "status",
        "total_amount",
        "total_liters",
        "source_file",
        "ingest_id",
        "landed_at",
    ],
    "column_encoding": {"order_id": "DELTA_BINARY_PACKED", "source_line": "DELTA_BINARY_PACKED"},
    "write_statistics": ["order_id", "order_date", "source_line", "ingest_id", "landed_at"],
}
MAX_ROWS_PER_FILE = 16_000_000
CONSTANT_COLUMNS = ("source_file", "ingest_id", "landed_at")  # the same on every row: added
# when a partition is written, not carried through the spill
DICT_COLUMNS = (
    "client_name",
    "product_description",
    "point_of_sale_channel",
    "status",
    "source_file",
    "ingest_id",
)
_DICT = pa.dictionary(pa.int32(), pa.string())
# What the writer is given: text as dictionaries (cheap to sort and encode). The files do not
# store this Arrow schema, so readers see plain strings: exactly RAW_SCHEMA.
WRITE_SCHEMA = pa.schema(
    [pa.field(f.name, _DICT) if f.name in DICT_COLUMNS else f for f in rules.RAW_SCHEMA]
)
PARTITION_SCHEMA = pa.schema(
    [f for f in WRITE_SCHEMA if f.name not in CONSTANT_COLUMNS] + [pa.field("pa_date", pa.date32())]
)
WRITE_THREADS = 2
CHECK_THREADS = 2  # row rules of up to two blocks at once
CHECK_AHEAD = 2  # blocks handed to the rules pool beyond the one being consumed


class Quarantine(Exception):
    """The whole file is refused; ``str(exc)`` is the manifest's ``error``."""


class LandingBusy(RuntimeError):
    """Another run is landing this very object (same name, same SHA-256) right now and did not
    finish within ``claim_wait_seconds``. Retryable: the retry reports ``skipped`` once that
    run has landed, or lands the file itself if that run died."""


# --- step 1: fingerprint ----------------------------------------------------------------------


@dataclass
class Fingerprint:
    sha256: str
    size: int
    fault: str | None
    etag: str | None = None  # S3 sources: the version hashed, to pin the second read to


def fingerprint(source: str) -> Fingerprint:
    """SHA-256, size and the first whole-file fault of ``source``, in one streaming pass."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    fault: str | None = None
    # SHA-256 of chunk i (hashlib releases the GIL) runs while chunk i+1 is read and checked.
    with open_source(source) as f, ThreadPoolExecutor(1) as hasher:
        etag = getattr(getattr(f, "raw", None), "etag", None)
        hashing = None
        while True:
            chunk = f.read(READ_BYTES)
            if not chunk:
                break
            if size == 0:
                for magic, kind in COMPRESSED_MAGIC.items():
                    if chunk.startswith(magic):
                        fault = f"the file is {kind}-compressed; send it uncompressed"
            if hashing is not None:
                hashing.result()
            hashing = hasher.submit(digest.update, chunk)
            # ASCII is valid UTF-8 when no multi-byte character is pending from the chunk
            # before; only other chunks need the (10x slower) decoder.
            if fault is None and not (chunk.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    fault = f"not valid UTF-8: bad byte at offset {size + exc.start}"
            size += len(chunk)
        if hashing is not None:
            hashing.result()
    if fault is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            fault = "not valid UTF-8: the file ends inside a multi-byte character"
    if size == 0:
        fault = "the file is empty"
    return Fingerprint(digest.hexdigest(), size, fault, etag)


# --- duplicate detection ----------------------------------------------------------------------


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two sorted arrays with no common value, in one output array (no sort buffer)."""
    out = np.empty(len(a) + len(b), dtype=a.dtype)
    pos = np.searchsorted(a, b) + np.arange(len(b))
    rest = np.ones(len(out), dtype=bool)
    rest[pos] = False
    out[pos] = b
    out[rest] = a
    return out


@dataclass
class IdRun:
    """A sorted set of ids as disjoint intervals ``starts[i]..ends[i]`` (inclusive), ``count``
    ids in all. When the ids do not form long intervals, ``ends is starts`` (8 bytes per id)."""

    starts: np.ndarray
    ends: np.ndarray
    count: int

    @classmethod
    def of(cls, starts: np.ndarray, ends: np.ndarray, count: int) -> IdRun:
        """The run of these disjoint sorted intervals, coalesced; as a plain array of ids
        unless that takes more than twice the intervals' memory."""
        if len(starts) > 1:
            gap = starts[1:] != ends[:-1] + 1
            starts = starts[np.concatenate(([True], gap))]
            ends = ends[np.concatenate((gap, [True]))]
        if 2 * len(starts) <= count:
            return cls(starts, ends, count)
        if len(starts) == count:  # all single ids
            return cls(starts, starts, count)
        lengths = ends - starts + 1
        offsets = np.cumsum(lengths) - lengths  # where each interval starts in the array
        ids = np.repeat(starts - offsets, lengths) + np.arange(count)
        return cls(ids, ids, count)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.starts, ids, side="right") - 1
        hit = pos >= 0
        hit[hit] = ids[hit] <= self.ends[pos[hit]]
        return hit

    def merge(self, other: IdRun) -> IdRun:
        """The union of two runs with no id in common."""
        if self.ends is self.starts and other.ends is other.starts:
            ids = _merge_sorted(self.starts, other.starts)
            return IdRun.of(ids, ids, self.count + other.count)
        pos = np.searchsorted(self.starts, other.starts) + np.arange(len(other.starts))
        rest = np.ones(len(self.starts) + len(other.starts), dtype=bool)
        rest[pos] = False
        starts = np.empty(len(rest), dtype=self.starts.dtype)
        ends = np.empty(len(rest), dtype=self.starts.dtype)
        starts[pos], ends[pos] = other.starts, other.ends
        starts[rest], ends[rest] = self.starts, self.ends
        return IdRun.of(starts, ends, self.count + other.count)


class SeenIds:
    """The set of order_ids already landed from this file, as a few sorted runs.

    Runs of similar size are merged (like a log-structured merge tree), so adding n ids costs
    O(n log n) in total and a lookup is a binary search per run. A run stores its ids as
    intervals of consecutive ids when that is smaller: exports numbered 1, 2, 3, ... take a few
    bytes per gap, so a 5 GB file's ids do not grow the memory; ids in no order take 8 bytes
    each.
    """

    def __init__(self) -> None:
        self.runs: list[IdRun] = []
        self.top: int | None = None  # the largest id added

    def __len__(self) -> int:
        return sum(r.count for r in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(r.starts.nbytes + (r.ends is not r.starts) * r.ends.nbytes for r in self.runs)

    def first_seen(self, ids: np.ndarray) -> np.ndarray:
        """For each id (in order), True when neither an earlier id of ``ids`` nor an id added
        before has the same value; the ids marked True are added."""
        n = len(ids)
        if n == 0:
            return np.zeros(0, dtype=bool)
        order = np.argsort(ids, kind="stable")
        s = ids[order]
        first = np.ones(n, dtype=bool)
        first[order[1:][s[1:] == s[:-1]]] = False
        # Only ids up to the largest one added can be in a run (exports mostly come in
        # order_id order, so this is usually a few re-sent ids, not the whole batch).
        old = np.flatnonzero(first & (ids <= self.top)) if self.top is not None else []
        if len(old):
            probe = ids[old]
            for run in self.runs:
                first[old[run.contains(probe)]] = False
        new = s[first[order]]  # the first ids, sorted (s is ids in sorted order)
        if len(new):
            self.top = int(new[-1]) if self.top is None else max(self.top, int(new[-1]))
            self.runs.append(IdRun.of(new, new, len(new)))
            while len(self.runs) > 1 and self.runs[-2].count <= 2 * self.runs[-1].count:
                b = self.runs.pop()
                a = self.runs.pop()
                self.runs.append(a.merge(b))
        return first


# --- partition spill (external sort by pa_date) -----------------------------------------------


Runs = Callable[[], list[Any]]  # this thread's readers of the spilled runs (see views)


class DateSpill:
    """Valid rows grouped by pa_date, to be written one partition at a time (external sort).

    Rows are buffered in memory; each time ``buffer_bytes`` is reached the buffer is sorted by
    pa_date and written to an uncompressed Arrow IPC file in a local scratch directory (a
    *run*) as one record batch per date; an index remembers, per date, which batch of which run
    holds it. A file whose rows fit in the buffer never touches the disk.

    Partitions read their batches with positioned reads (no memory map: touching a few rows of
    a mapped file maps whole 2 MB page-cache folios into the resident set, ~400 MB for four
    partitions of a 1 GB file), so the memory of writing is that of the partitions in hand.
    """

    def __init__(self, directory: str, buffer_bytes: int) -> None:
        self.directory = directory
        self.buffer_bytes = buffer_bytes
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.run_paths: list[str] = []  # one IPC file per run (dictionaries differ per run)
        self.runs = 0
        self.memory_run: pa.RecordBatch | None = None  # the last run, when it stays in memory
        # day -> [(run, first row in the run, rows, batch number in the run's file)]
        self.ranges: dict[int, list[tuple[int, int, int, int]]] = {}

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        if self._pending_bytes >= self.buffer_bytes:
            self._flush(to_disk=True)

    def _flush(self, to_disk: bool) -> None:
        if not self._pending:
            return
        # One contiguous batch first (one dictionary per column), then one gather to sort it.
        table = pa.concat_tables(self._pending).unify_dictionaries().combine_chunks()
        self._pending, self._pending_bytes = [], 0
        batch = table.to_batches()[0]
        del table
        days = batch.column("pa_date").cast(pa.int32()).to_numpy()
        if len(days) > 1 and not np.all(days[1:] >= days[:-1]):
            # Days as small offsets: numpy sorts 16-bit keys stably by radix, in one pass.
            low = int(days.min())
            span = int(days.max()) - low
            keys = (days - low).astype(np.uint16 if span < 1 << 16 else np.int64)
            order = np.argsort(keys, kind="stable")
            batch = batch.take(pa.array(order))
            days = days[order]
        run = self.runs
        self.runs += 1
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        starts = np.concatenate([[0], cuts]).tolist()
        stops = np.concatenate([cuts, [len(days)]]).tolist()
        if to_disk:
            path = os.path.join(self.directory, f"run-{run}.arrow")
            with (
                pa.OSFile(path, "wb") as raw,
                pa.BufferedOutputStream(raw, 1 << 20) as sink,  # a few writes per ~700 batches
                ipc.new_file(sink, PARTITION_SCHEMA) as writer,
            ):
                for a, b in zip(starts, stops, strict=True):
                    writer.write_batch(batch.slice(a, b - a))
            self.run_paths.append(path)
        else:
            self.memory_run = batch
        for k, (a, b) in enumerate(zip(starts, stops, strict=True)):
            self.ranges.setdefault(int(days[a]), []).append((run, a, b - a, k))

    def close(self) -> None:
        """No more rows: the last buffer stays in memory as the last run."""
        self._flush(to_disk=False)

    def partitions(self) -> list[int]:
        return sorted(self.ranges)

    @contextlib.contextmanager
    def views(self) -> Iterator[Runs]:
        """A function giving the calling thread its own readers of every run (an IPC file
        reader per run on disk, then the in-memory run); all are closed on exit."""
        local = threading.local()
        lock = threading.Lock()
        files: list[Any] = []

        def runs() -> list[Any]:
            mine = getattr(local, "runs", None)
            if mine is None:
                opened = [pa.OSFile(path, "r") for path in self.run_paths]
                with lock:
                    files.extend(opened)
                mine = [ipc.open_file(f) for f in opened]
                if self.memory_run is not None:
                    mine.append(self.memory_run)
                local.runs = mine
            return mine

        try:
            yield runs
        finally:
            with lock:
                for f in files:
                    f.close()

    def read(self, day: int, runs: Runs, chunk_rows: int) -> Iterator[pa.Table]:
        """The rows of one partition, in file order, as tables of about ``chunk_rows`` rows."""
        readers = runs()
        pending: list[pa.RecordBatch] = []
        count = 0
        for run, start, length, k in self.ranges[day]:
            source = readers[run]
            if isinstance(source, pa.RecordBatch):
                batch = source
            else:
                batch, start = source.get_batch(k), 0
            while length:
                take = min(length, chunk_rows - count)
                pending.append(batch.slice(start, take))
                count += take
                start += take
                length -= take
                if count >= chunk_rows:
                    yield pa.Table.from_batches(pending, schema=PARTITION_SCHEMA)
                    pending, count = [], 0
        if pending:
            yield pa.Table.from_batches(pending, schema=PARTITION_SCHEMA)


def prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    Scanning a block (numpy, pyarrow's parser) and checking the previous one (pyarrow compute)
    both release the GIL, so the two overlap on two cores. Exceptions of the producer are
    raised in the consumer; a consumer that stops early stops the producer.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer
            put(_Raised(exc))

    thread = threading.Thread(target=produce, name="ingest-scan", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class _Raised:
    exc: BaseException


def peak_rss_mb() -> int | None:
    """The process's peak resident set so far, in MiB (for the logs)."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except (ImportError, OSError):
        return None


def day_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


# --- the result ---------------------------------------------------------------------------------


@dataclass
class Counts:
    rows_in: int = 0
    valid: int = 0
    rejected: dict[str, int] = field(
        default_factory=lambda: {"missing": 0, "invalid": 0, "duplicate": 0}
    )


def iso_z(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_ingest_id(landed_at: dt.datetime, sha256: str) -> str:
    return landed_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + sha256[:12]


def state_key(source_file: str, sha256: str) -> str:
    name_hash = hashlib.sha256(source_file.encode("utf-8")).hexdigest()
    return f"{STATE}{name_hash}/{sha256}.json"


def claim_prefix(state: str) -> str:
    """Where the claims on the object of idempotency marker ``state`` live."""
    return CLAIMS + state[len(STATE) :].removesuffix(".json") + "/"


# --- claims: one landing per object at a time ---------------------------------------------------
#
# A run claims the object it lands (source name + SHA-256) by creating
# ``_state/claims/<name hash>/<sha256>/<generation>.json`` with ``put_if_absent`` (a conditional
# PutObject on S3, a hard link locally), so of two deliveries racing each other exactly one
# lands; the other waits for its manifest and reports ``skipped``, or raises LandingBusy.
# A claim whose holder is provably dead (same kernel boot, its process gone) or that is older
# than ``claim_ttl_seconds`` (holder elsewhere, e.g. a Lambda that timed out) is taken over
# by creating the next generation, again with put_if_absent, so two takers cannot both win.


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _holder() -> dict[str, Any]:
    return {
        "boot_id": _boot_id(),
        "pid": os.getpid(),
        "process_started": _process_start(os.getpid()),
    }


def _holder_alive(info: dict[str, Any]) -> bool | None:
    """True/False when the claim's holder ran on this machine's kernel; None when unknowable."""
    boot = _boot_id()
    if boot is None or info.get("boot_id") != boot or not info.get("process_started"):
        return None
    return _process_start(int(info.get("pid", -1))) == info["process_started"]


def _live_claim(lake: Lake, prefix: str, ttl: float) -> tuple[str | None, dict[str, Any] | None]:
    """The newest claim under ``prefix`` and its content when its holder may still be at work
    (``(key, None)`` when it is stale, ``(None, None)`` when there is no claim)."""
    keys = [k for k in lake.list(prefix) if k.endswith(".json")]
    if not keys:
        return None, None
    top = keys[-1]
    raw = lake.read_bytes(top)
    if raw is None:  # released meanwhile
        return top, None
    try:
        info = json.loads(raw)
    except ValueError:
        info = {}
    alive = _holder_alive(info)
    if alive is None:
        modified = lake.modified_at(top)
        alive = modified is not None and time.time() - modified <= ttl
    return top, (info if alive else None)


def claim(
    lake: Lake, settings: Settings, source_file: str, sha256: str, ingest_id: str
) -> str | dict[str, Any]:
    """Claim the object for this run: the claim's key, or the manifest of the landing that
    already happened (the object is to be skipped). Waits up to ``claim_wait_seconds`` for
    a live holder to finish, then raises :class:`LandingBusy`."""
    marker = state_key(source_file, sha256)
    prefix = claim_prefix(marker)
    token = json.dumps({**_holder(), "ingest_id": ingest_id}).encode()
    deadline = time.monotonic() + settings.claim_wait_seconds
    delay = 0.05
    while True:
        previous = lake.read_bytes(marker)
        if previous is not None:
            return json.loads(previous)
        top, holder = _live_claim(lake, prefix, settings.claim_ttl_seconds)
        if holder is None:
            if top is not None:
                log.warning("taking over a stale claim", extra={"claim": top})
            generation = 0 if top is None else int(top.rsplit("/", 1)[1].split(".")[0]) + 1
            key = f"{prefix}{generation:010d}.json"
            if lake.put_if_absent(key, token):
                previous = lake.read_bytes(marker)  # landed between our check and our claim?
                if previous is None:
                    return key
                lake.delete([key])
                return json.loads(previous)
            continue  # another run claimed it first: look again
        if time.monotonic() >= deadline:
            raise LandingBusy(
                f"{source_file} (sha256 {sha256[:12]}) is being landed by another run "
                f"(ingest {holder.get('ingest_id')}); not landed after waiting "
                f"{settings.claim_wait_seconds} s. Retry later: the retry is skipped once "
                "that run has landed it"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def source_name(source_file: str) -> str:
    name = PurePosixPath(source_file.replace("\\", "/")).name
    return name or "source.csv"


# --- step 4: stage ------------------------------------------------------------------------------


_JSON = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(..., ensure_ascii=False) uses


def _json_row(values: list[Any]) -> str:
    return _JSON.encode(values)


class RejectsWriter:
    """Rejected rows, buffered and written to one staged Parquet file."""

    FLUSH_ROWS = 65_536

    def __init__(self, lake: Lake, key: str, lineage: dict[str, Any]) -> None:
        self.lake, self.key, self.lineage = lake, key, lineage
        self.rows: dict[str, list[Any]] = {
            "source_line": [],
            "raw_values": [],
            "reason": [],
            "column": [],
            "detail": [],
        }
        self.count = 0
        self._stack = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None

    def add(self, line: int, raw: str, reason: str, column: str | None, detail: str) -> None:
        self.rows["source_line"].append(line)
        self.rows["raw_values"].append(raw)
        self.rows["reason"].append(reason)
        self.rows["column"].append(column)
        self.rows["detail"].append(detail)
        self.count += 1
        if len(self.rows["reason"]) >= self.FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        n = len(self.rows["reason"])
        if n == 0:
            return
        table = pa.table(
            {
                "source_file": pa.array([self.lineage["source_file"]] * n, pa.string()),
                "source_line": pa.array(self.rows["source_line"], pa.int64()),
                "ingest_id": pa.array([self.lineage["ingest_id"]] * n, pa.string()),
                "raw_values": pa.array(self.rows["raw_values"], pa.string()),
                "reason": pa.array(self.rows["reason"], pa.string()),
                "column": pa.array(self.rows["column"], pa.string()),
                "detail": pa.array(self.rows["detail"], pa.string()),
                "landed_at": pa.array(
                    [self.lineage["landed_at"]] * n, pa.timestamp("us", tz="UTC")
                ),
            },
            schema=rules.REJECTS_SCHEMA,
        )
        if self._writer is None:
            sink = self._stack.enter_context(self.lake.open_write(self.key))
            self._writer = pq.ParquetWriter(sink, rules.REJECTS_SCHEMA, **PARQUET_OPTIONS)
        self._writer.write_table(table)
        for v in self.rows.values():
            v.clear()

    def close(self) -> bool:
        """Write what is buffered and publish the staged file; True when it has rows."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
        self._stack.close()
        return self.count > 0

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


@dataclass
class Staged:
    counts: Counts
    ignored_columns: list[str]
    partitions: list[str]
    moves: list[tuple[str, str]]


def check_header(names: list[str]) -> tuple[dict[str, int], list[str]]:
    """Column positions by normalised name, and the ignored columns; quarantine on a fault."""
    normalised = [n.strip().lower() for n in names]
    seen: set[str] = set()
    twice = []
    for name in normalised:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    if twice:
        raise Quarantine("the header names a column twice: " + ", ".join(repr(n) for n in twice))
    absent = [c for c in rules.REQUIRED if c not in seen]
    if absent:
        raise Quarantine(
            "the header lacks required column(s): "
            + ", ".join(absent)
            + " (is this a Duff orders CSV?)"
        )
    positions = {name: i for i, name in enumerate(normalised) if name in rules.CHECK_ORDER}
    ignored = [name for name in normalised if name not in rules.CHECK_ORDER]
    return positions, ignored


def _stage_rows(
    lake: Lake,
    settings: Settings,
    source_file: str,
    ingest_id: str,
    landed_at: dt.datetime,
    stage: str,
    progress: Callable[[int], None] | None,
    etag: str | None = None,
) -> Staged:
    counts = Counts()
    landing_date = landed_at.astimezone(dt.UTC).date()
    lineage = {"source_file": source_file, "ingest_id": ingest_id, "landed_at": landed_at}
    rejects_key = f"{REJECTS_PREFIX}ingest_date={landing_date.isoformat()}/{ingest_id}.parquet"
    rejects = RejectsWriter(lake, stage + "rejects.parquet", lineage)
    seen = SeenIds()
    scratch = tempfile.mkdtemp(prefix="duff-ingest-", dir=settings.spill_dir)
    moves: list[tuple[str, str]] = []
    t0 = time.monotonic()
    try:
        # Pinned to the version hashed: a replaced S3 object fails (SourceChanged) rather than
        # landing other bytes under this SHA-256; its own event lands the new version.
        with open_source(source_file, if_match=etag) as f:
            try:
                names, header_lines, rest = parse_header(f)
            except ScanError as exc:
                raise Quarantine(str(exc)) from None
            positions, ignored = check_header(names)
            spill = DateSpill(scratch, settings.buffer_bytes)
            scanner = Scanner(
                f,
                len(names),
                header_lines + 1,
                rest,
                block_bytes=settings.block_bytes,
            )
            try:
                # A background thread scans blocks and hands each to a pool that applies the
                # row rules (blocks are independent); this thread takes them in file order for
                # duplicates, spill and rejects. All of it releases the GIL, so both cores work.
                with ThreadPoolExecutor(CHECK_THREADS) as checkers:
                    checked_blocks = _checked_in_order(
                        iter(scanner), positions, landing_date, checkers
                    )
                    for block, checked in prefetch(checked_blocks):
                        _process_block(block, checked, names, seen, spill)
                        _collect(block, counts, rejects)
                        if progress is not None:
                            progress(block.nbytes)
            except ScanError as exc:
                raise Quarantine(str(exc)) from None
            finally:
                spill.close()
        log.info(
            "parsed",
            extra={
                "rows_in": counts.rows_in,
                "fast_blocks": scanner.fast_blocks,
                "slow_blocks": scanner.slow_blocks,
                "seconds": round(time.monotonic() - t0, 3),
                "peak_rss_mb": peak_rss_mb(),
            },
        )
        t0 = time.monotonic()
        seen.runs.clear()  # the seen order_ids: not needed to write
        pa.default_memory_pool().release_unused()  # the scan's buffers, before writing
        days = spill.partitions()
        partitions = [day_text(day) for day in days]
        # Parquet encoding and zstd release the GIL: write partitions two at a time.
        with ThreadPoolExecutor(WRITE_THREADS) as pool, spill.views() as runs:
            futures = [
                pool.submit(_write_partition, lake, settings, spill, runs, day, lineage, stage)
                for day in days
            ]
            for future in futures:
                moves.extend(future.result())
        if rejects.close():
            moves.append((stage + "rejects.parquet", rejects_key))
        log.info(
            "staged",
            extra={
                "files": len(moves),
                "seconds": round(time.monotonic() - t0, 3),
                "peak_rss_mb": peak_rss_mb(),
            },
        )
        return Staged(counts, ignored, partitions, moves)
    except BaseException:
        rejects.abort()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_partition(
    lake: Lake,
    settings: Settings,
    spill: DateSpill,
    runs: Runs,
    day: int,
    lineage: dict[str, Any],
    stage: str,
) -> list[tuple[str, str]]:
    date = day_text(day)
    ingest_id = lineage["ingest_id"]
    constants = {
        "source_file": pa.array([lineage["source_file"]], pa.string()),
        "ingest_id": pa.array([ingest_id], pa.string()),
        "landed_at": pa.array([lineage["landed_at"]], pa.timestamp("us", tz="UTC")),
    }
    moves = []
    n = 0
    rows_in_file = 0
    stack = contextlib.ExitStack()
    writer: pq.ParquetWriter | None = None
    try:
        for table in spill.read(day, runs, settings.row_group_rows):
            if writer is None or rows_in_file >= MAX_ROWS_PER_FILE:
                if writer is not None:
                    writer.close()
                    stack.close()
                    n += 1
                key = f"{RAW_PREFIX}pa_date={date}/{ingest_id}-{n}.parquet"
                staged = f"{stage}{date}-{n}.parquet"  # flat: one directory to clean up
                sink = stack.enter_context(lake.open_write(staged))
                writer = pq.ParquetWriter(
                    sink, WRITE_SCHEMA, store_schema=False, **RAW_PARQUET_OPTIONS
                )
                moves.append((staged, key))
                rows_in_file = 0
            # One dictionary per text column: slices of several spill runs carry different
            # ones, and the writer re-encodes (and grows the file) at each change.
            table = table.unify_dictionaries().combine_chunks()
            n_rows = table.num_rows
            zeros = pa.array(np.zeros(n_rows, dtype=np.int32))
            columns = {}
            for name in WRITE_SCHEMA.names:
                if name == "landed_at":
                    columns[name] = constants[name].take(zeros)
                elif name in constants:
                    columns[name] = pa.DictionaryArray.from_arrays(zeros, constants[name])
                else:
                    columns[name] = table.column(name)
            writer.write_table(pa.table(columns, schema=WRITE_SCHEMA), row_group_size=n_rows)
            rows_in_file += table.num_rows
        if writer is not None:
            writer.close()
        stack.close()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(Exception):
            stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
        raise
    return moves


def _check_block(
    block: Block, positions: dict[str, int], landing_date: dt.date
) -> tuple[Block, rules.Checked]:
    """The row rules on one block (independent of other blocks: runs in the scan thread)."""
    table = block.table
    raw = {name: table.column(i).combine_chunks() for name, i in positions.items()}
    return block, rules.check(raw, landing_date)


def _checked_in_order(
    blocks: Iterator[Block],
    positions: dict[str, int],
    landing_date: dt.date,
    pool: ThreadPoolExecutor,
) -> Iterator[tuple[Block, rules.Checked]]:
    """``_check_block`` of each block on ``pool``, at most CHECK_AHEAD blocks ahead; in order."""
    pending: collections.deque[Future[tuple[Block, rules.Checked]]] = collections.deque()
    try:
        for block in blocks:
            pending.append(pool.submit(_check_block, block, positions, landing_date))
            if len(pending) > CHECK_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _process_block(
    block: Block,
    checked: rules.Checked,
    names: list[str],
    seen: SeenIds,
    spill: DateSpill,
) -> None:
    """Duplicates against the rows before (in file order), then the valid rows to the spill."""
    reason = checked.reason
    column = checked.column
    ok = reason == rules.OK
    if ok.any():
        ids = np.asarray(checked.values["order_id"].to_numpy(zero_copy_only=False))
        ok_idx = np.flatnonzero(ok)
        first = seen.first_seen(ids[ok_idx].astype(np.int64))
        dup_idx = ok_idx[~first]
        reason[dup_idx] = rules.DUPLICATE
        column[dup_idx] = rules.CHECK_ORDER.index("order_id")
        ok[dup_idx] = False
    n = int(ok.sum())
    if n:
        keep = pa.array(ok)
        cols: dict[str, pa.Array] = {}
        for name in PARTITION_SCHEMA.names:
            if name == "source_line":
                cols[name] = pa.array(block.lines[ok])
            else:
                cols[name] = checked.values[name].filter(keep)
        spill.add(pa.table(cols, schema=PARTITION_SCHEMA))
    # Hand the row-level verdicts to _collect through the block.
    block.reason = reason  # type: ignore[attr-defined]
    block.column = column  # type: ignore[attr-defined]
    block.valid = n  # type: ignore[attr-defined]
    block.names = names  # type: ignore[attr-defined]


def _collect(block: Block, counts: Counts, rejects: RejectsWriter) -> None:
    reason: np.ndarray = block.reason  # type: ignore[attr-defined]
    column: np.ndarray = block.column  # type: ignore[attr-defined]
    names: list[str] = block.names  # type: ignore[attr-defined]
    counts.rows_in += block.rows_in
    counts.valid += block.valid  # type: ignore[attr-defined]
    bad_idx = np.flatnonzero(reason != rules.OK)
    if len(bad_idx):
        taken = block.table.take(pa.array(bad_idx))
        rows = zip(*(c.to_pylist() for c in taken.columns), strict=True)
        position = {n.strip().lower(): i for i, n in enumerate(names)}
        lines = block.lines[bad_idx].tolist()
        for k, (i, row) in enumerate(zip(bad_idx.tolist(), rows, strict=True)):
            values = list(row)
            why = int(reason[i])
            col = rules.CHECK_ORDER[int(column[i])]
            raw_value = values[position[col]]
            if why == rules.DUPLICATE:
                detail = (
                    f"order_id {raw_value.strip()!r} appeared in a valid row earlier in the file"
                )
            else:
                detail = rules.explain(col, raw_value, why)
            label = rules.REASONS[why]
            counts.rejected[label] += 1
            rejects.add(lines[k], _json_row(values), label, col, detail)
    ncols = len(names)
    for line, fields in block.bad:
        counts.rejected["invalid"] += 1
        rejects.add(
            line,
            _json_row(fields),
            "invalid",
            None,
            f"the row has {len(fields)} field(s); the header has {ncols}",
        )


# --- step 5: publish and recover ------------------------------------------------------------------


def _publish(lake: Lake, catalog: Catalog, intent: dict[str, Any], write_intent: bool) -> None:
    stage = f"{STAGING}{intent['manifest']['ingest_id']}/"
    if write_intent:
        lake.put_atomic(stage + INTENT, json.dumps(intent).encode())
    moves = [(src, dst) for src, dst in intent["moves"]]
    move_many = getattr(lake, "move_many", None)
    if callable(move_many):  # S3: hundreds of partition files, many copies at once
        move_many(moves)
    else:
        for src, dst in moves:
            lake.move(src, dst)
    if intent["manifest"]["partitions"]:
        catalog.register_partitions(list(intent["manifest"]["partitions"]))
    manifest_bytes = json.dumps(intent["manifest"], indent=2).encode() + b"\n"
    lake.put_atomic(f"{MANIFESTS}{intent['manifest']['ingest_id']}.json", manifest_bytes)
    lake.put_atomic(intent["state_key"], manifest_bytes)
    lake.delete_prefix(stage)
    lake.delete_prefix(claim_prefix(intent["state_key"]))  # after staging: see recover()


def recover(
    lake: Lake, catalog: Catalog, settings: Settings, source_file: str, sha256: str
) -> dict[str, Any] | None:
    """Finish or remove what crashed runs left in ``_staging/``.

    Runs while this run holds the claim on (``source_file``, ``sha256``). A publication with an
    intent is rolled forward, unless another object's run still holds a live claim (it is
    publishing right now). Staging without an intent is removed when it is this object's (its
    run is dead: we hold the claim) or when no live claim protects it. Returns the manifest
    of a rolled-forward publication of this very object, if any.
    """
    result = None
    by_id: dict[str, list[str]] = {}
    for key in lake.list(STAGING):
        parts = key.split("/")
        if len(parts) >= 3:
            by_id.setdefault(parts[1], []).append(key)
    now = time.time()
    for ingest_id, keys in sorted(by_id.items()):
        stage = f"{STAGING}{ingest_id}/"
        raw_intent = lake.read_bytes(stage + INTENT) if stage + INTENT in keys else None
        if raw_intent is not None:
            intent = json.loads(raw_intent)
            m = intent["manifest"]
            mine = m["source_file"] == source_file and m.get("sha256") == sha256
            if (
                not mine
                and _live_claim(
                    lake, claim_prefix(intent["state_key"]), settings.claim_ttl_seconds
                )[1]
            ):
                continue  # its run is alive and publishing it
            log.warning("rolling forward an interrupted publication", extra={"of": ingest_id})
            _publish(lake, catalog, intent, write_intent=False)
            if mine:
                result = m
            continue
        started = lake.read_bytes(stage + STARTED)
        info = json.loads(started) if started else {}
        mine = info.get("source_file") == source_file and info.get("sha256") == sha256
        if not mine:
            if info.get("source_file") and info.get("sha256"):
                marker = state_key(info["source_file"], info["sha256"])
                if _live_claim(lake, claim_prefix(marker), settings.claim_ttl_seconds)[1]:
                    continue  # its run is alive and staging it
            ages = [lake.modified_at(k) for k in keys]
            newest = max((a for a in ages if a is not None), default=0.0)
            if not info and now - newest <= settings.stale_staging_seconds:
                continue  # no record of its owner yet: only its age can tell
        log.warning("removing unpublished staging", extra={"of": ingest_id})
        lake.delete_prefix(stage)
    return result


# --- the entry point ----------------------------------------------------------------------------


def land(
    source: str,
    *,
    settings: Settings | None = None,
    lake: Lake | None = None,
    catalog: Catalog | None = None,
    progress: Callable[[int], None] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Land ``source`` (a path or ``s3://bucket/key``) and return its manifest."""
    settings = settings or Settings.from_env()
    lake = lake if lake is not None else lake_from_uri(settings.lake)
    catalog = catalog if catalog is not None else NullCatalog()
    started = time.monotonic()
    source_file = canonical_source(source)
    landed_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    fp = fingerprint(source_file)
    ingest_id = make_ingest_id(landed_at, fp.sha256)
    extra = {"ingest_id": ingest_id, "source_file": source_file}
    log.info(
        "landing",
        extra={
            **extra,
            "bytes": fp.size,
            "sha256": fp.sha256,
            "seconds": round(time.monotonic() - started, 3),
        },
    )

    claimed = claim(lake, settings, source_file, fp.sha256, ingest_id)
    if not isinstance(claimed, str):
        manifest = claimed
        manifest["previous_status"] = manifest["status"]
        manifest["status"] = "skipped"
        manifest["error"] = None
        log.info(
            "skipped: this object has landed before", extra={**extra, "as": manifest["ingest_id"]}
        )
        return manifest
    try:
        return _land_claimed(
            lake, catalog, settings, source_file, fp, ingest_id, landed_at, started, progress
        )
    except BaseException:
        with contextlib.suppress(Exception):
            lake.delete([claimed])  # let the retry claim it at once
        raise


def _land_claimed(
    lake: Lake,
    catalog: Catalog,
    settings: Settings,
    source_file: str,
    fp: Fingerprint,
    ingest_id: str,
    landed_at: dt.datetime,
    started: float,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    extra = {"ingest_id": ingest_id, "source_file": source_file}
    recovered = recover(lake, catalog, settings, source_file, fp.sha256)
    if recovered is not None:
        log.info("landed by finishing an interrupted run", extra=extra)
        return recovered

    stage = f"{STAGING}{ingest_id}/"
    lake.put_atomic(
        stage + STARTED,
        json.dumps(
            {"source_file": source_file, "sha256": fp.sha256, "ingest_id": ingest_id}
        ).encode(),
    )
    manifest: dict[str, Any] = {
        "ingest_id": ingest_id,
        "source_file": source_file,
        "status": "landed",
        "rows_in": 0,
        "valid": 0,
        "rejected": {"missing": 0, "invalid": 0, "duplicate": 0},
        "ignored_columns": [],
        "partitions": [],
        "landed_at": iso_z(landed_at),
        "error": None,
        "sha256": fp.sha256,
        "bytes": fp.size,
    }
    try:
        if fp.fault:
            raise Quarantine(fp.fault)
        staged = _stage_rows(
            lake, settings, source_file, ingest_id, landed_at, stage, progress, fp.etag
        )
        manifest.update(
            rows_in=staged.counts.rows_in,
            valid=staged.counts.valid,
            rejected=staged.counts.rejected,
            ignored_columns=staged.ignored_columns,
            partitions=staged.partitions,
        )
        moves = staged.moves
    except Quarantine as exc:
        for key in lake.list(stage):
            if not key.endswith(STARTED):
                lake.delete([key])
        qkey = f"{QUARANTINE}{ingest_id}/{source_name(source_file)}"
        _copy_source(lake, source_file, stage + "quarantined")
        manifest.update(status="quarantined", error=str(exc))
        moves = [(stage + "quarantined", qkey)]
        log.warning("quarantined", extra={**extra, "error": str(exc)})
    except BaseException:
        with contextlib.suppress(Exception):
            lake.delete_prefix(stage)
        raise
    manifest["seconds"] = round(time.monotonic() - started, 3)
    intent = {"manifest": manifest, "moves": moves, "state_key": state_key(source_file, fp.sha256)}
    _publish(lake, catalog, intent, write_intent=True)
    log.info(
        manifest["status"],
        extra={
            **extra,
            "rows_in": manifest["rows_in"],
            "valid": manifest["valid"],
            "rejected": manifest["rejected"],
            "partitions": len(manifest["partitions"]),
            "seconds": manifest["seconds"],
        },
    )
    return manifest


def _copy_source(lake: Lake, source_file: str, key: str) -> None:
    """Keep the refused file byte for byte (server-side when both are on S3)."""
    copy_from = getattr(lake, "copy_from", None)
    if is_s3_uri(source_file) and callable(copy_from):
        copy_from(source_file, key)
        return
    with open_source(source_file) as src, lake.open_write(key) as dst:
        while True:
            chunk = src.read(READ_BYTES)
            if not chunk:
                break
            dst.write(chunk)


def default_catalog(settings: Settings) -> Catalog:
    """Glue for a lake on S3 (``${DUFF_GLUE_DATABASE}.raw_orders``), nothing for a local one."""
    if settings.lake.startswith("s3://"):
        from ingestion.glue import catalog_for_lake  # boto3 only when the lake is on S3

        return catalog_for_lake(settings.lake, settings.glue_database)
    return NullCatalog()
