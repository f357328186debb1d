"""The external sort by pa_date: valid rows buffered, sorted and spilled to local scratch."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ingestion import rules

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
DICT_TYPE = pa.dictionary(pa.int32(), pa.string())
# The rows as spilled: text as dictionaries (cheap to sort and encode), without the constant
# lineage columns, with pa_date.
PARTITION_SCHEMA = pa.schema(
    [
        pa.field(f.name, DICT_TYPE) if f.name in DICT_COLUMNS else f
        for f in rules.RAW_SCHEMA
        if f.name not in CONSTANT_COLUMNS
    ]
    + [pa.field("pa_date", pa.date32())]
)

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
