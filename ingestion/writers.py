"""The Parquet files a landing stages: one per partition of valid rows, one of rejected rows."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion import rules
from ingestion.lake import Lake
from ingestion.layout import RAW_PREFIX, day_text
from ingestion.settings import Settings
from ingestion.spill import DICT_COLUMNS, DICT_TYPE, DateSpill, Runs

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,  # level 3 costs 10% more time for 1% smaller files
    # Dictionary encoding pays for text; ids, decimals and dates are cheaper without it.
    "use_dictionary": [*DICT_COLUMNS, "reason", "column"],
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
# What the writer is given: text as dictionaries (cheap to sort and encode). The files do not
# store this Arrow schema, so readers see plain strings: exactly RAW_SCHEMA.
WRITE_SCHEMA = pa.schema(
    [pa.field(f.name, DICT_TYPE) if f.name in DICT_COLUMNS else f for f in rules.RAW_SCHEMA]
)
WRITE_THREADS = 2

_JSON = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(..., ensure_ascii=False) uses


def json_row(values: list[Any]) -> str:
    return _JSON.encode(values)


class RejectsWriter:
    """Rejected rows, buffered and written to one staged Parquet file."""

    FLUSH_ROWS = 65_536

    def __init__(
        self, lake: Lake, key: str, lineage: dict[str, Any], mode: int | None = None
    ) -> None:
        self.lake, self.key, self.lineage, self.mode = lake, key, lineage, mode
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
            sink = self._stack.enter_context(self.lake.open_write(self.key, mode=self.mode))
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


def compact_dictionaries(table: pa.Table) -> pa.Table:
    """One chunk per column, each text column with one dictionary of only the values its rows
    use. Slices of several spill runs carry different dictionaries (the writer would re-encode
    and grow the file at each change), and a run's dictionary holds every name of 64 MiB of
    rows: 20,000 clients' names in every partition file of a few thousand rows, when unified
    and written as is. Re-encoding the partition's own rows costs a hash per row instead."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            plain = pa.concat_arrays([chunk.dictionary_decode() for chunk in column.chunks])
            columns.append(pc.dictionary_encode(plain))
        else:
            columns.append(column.combine_chunks())
    return pa.table(columns, schema=table.schema)


def write_partition(
    lake: Lake,
    settings: Settings,
    spill: DateSpill,
    runs: Runs,
    day: int,
    lineage: dict[str, Any],
    stage: str,
    mode: int | None = None,
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
                sink = stack.enter_context(lake.open_write(staged, mode=mode))
                writer = pq.ParquetWriter(
                    sink, WRITE_SCHEMA, store_schema=False, **RAW_PARQUET_OPTIONS
                )
                moves.append((staged, key))
                rows_in_file = 0
            table = compact_dictionaries(table)
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
