"""Step 4 of landing: read the rows, judge them, spill the valid ones by pa_date, write rejects,
then write one Parquet file per partition."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from ingestion import rules
from ingestion.csvscan import Block, ScanError, Scanner, parse_header
from ingestion.errors import Quarantine
from ingestion.lake import Lake
from ingestion.layout import REJECTS_PREFIX, capped, day_text
from ingestion.pipeline import CHECK_THREADS, checked_in_order, peak_rss_mb, prefetch
from ingestion.seen_ids import SeenIds
from ingestion.settings import Settings
from ingestion.source import Source
from ingestion.spill import PARTITION_SCHEMA, DateSpill
from ingestion.writers import WRITE_THREADS, RejectsWriter, json_row, write_partition

log = logging.getLogger("ingestion.land")


@dataclass
class Counts:
    rows_in: int = 0
    valid: int = 0
    rejected: dict[str, int] = field(
        default_factory=lambda: {"missing": 0, "invalid": 0, "duplicate": 0}
    )


@dataclass
class Staged:
    counts: Counts
    ignored_columns: list[str]
    partitions: list[str]
    moves: list[tuple[str, str]]


@dataclass
class Verdicts:
    """The verdict on each well-formed row of one block: ``reason`` (``rules.OK`` or a reject
    code) and ``column`` (index into ``rules.CHECK_ORDER``) per row, and how many are valid."""

    reason: np.ndarray
    column: np.ndarray
    valid: int


def stage_rows(
    lake: Lake,
    settings: Settings,
    source: Source,
    ingest_id: str,
    landed_at: dt.datetime,
    stage: str,
    progress: Callable[[int], None] | None,
) -> Staged:
    """Read every row of ``source`` into staged Parquet under ``stage``; the moves that
    publish them. Raises :class:`Quarantine` for a fault of the whole file."""
    counts = Counts()
    landing_date = landed_at.astimezone(dt.UTC).date()
    lineage = {"source_file": source.uri, "ingest_id": ingest_id, "landed_at": landed_at}
    rejects_key = f"{REJECTS_PREFIX}ingest_date={landing_date.isoformat()}/{ingest_id}.parquet"
    rejects = RejectsWriter(lake, stage + "rejects.parquet", lineage, source.mode)
    scratch = tempfile.mkdtemp(prefix="duff-ingest-", dir=settings.spill_dir)
    try:
        spill = DateSpill(scratch, settings.buffer_bytes)
        # The bytes hashed: the same open file, or an S3 object pinned to the ETag hashed (a
        # replaced object fails with SourceChanged; its own event lands the new version).
        with source.read() as f:
            ignored = _read_rows(f, settings, landing_date, spill, counts, rejects, progress)
        days = spill.partitions()
        moves = _write_partitions(lake, settings, spill, days, lineage, stage, source.mode)
        if rejects.close():
            moves.append((stage + "rejects.parquet", rejects_key))
        return Staged(counts, ignored, [day_text(day) for day in days], moves)
    except BaseException:
        rejects.abort()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_rows(
    f: BinaryIO,
    settings: Settings,
    landing_date: dt.date,
    spill: DateSpill,
    counts: Counts,
    rejects: RejectsWriter,
    progress: Callable[[int], None] | None,
) -> list[str]:
    """Scan, judge and sort every row: valid rows into ``spill``, the others into ``rejects``.
    Returns the ignored columns."""
    t0 = time.monotonic()
    try:
        names, header_lines, rest = parse_header(f)
    except ScanError as exc:
        raise Quarantine(str(exc)) from None
    positions, ignored = check_header(names)
    header = [n.strip().lower() for n in names]
    position = {name: i for i, name in enumerate(header)}
    seen = SeenIds()
    scanner = Scanner(f, len(names), header_lines + 1, rest, block_bytes=settings.block_bytes)
    try:
        # A background thread scans blocks and hands each to a pool that applies the row
        # rules (blocks are independent); this thread takes them in file order for
        # duplicates, spill and rejects.
        with ThreadPoolExecutor(CHECK_THREADS) as checkers:
            checked_blocks = checked_in_order(iter(scanner), positions, landing_date, checkers)
            for block, checked in prefetch(checked_blocks):
                verdicts = judge_duplicates(block, checked, seen, spill)
                record(block, verdicts, header, position, counts, rejects)
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
    return ignored


def _write_partitions(
    lake: Lake,
    settings: Settings,
    spill: DateSpill,
    days: list[int],
    lineage: dict[str, Any],
    stage: str,
    mode: int | None,
) -> list[tuple[str, str]]:
    """One staged Parquet file per partition (more past MAX_ROWS_PER_FILE); their moves."""
    t0 = time.monotonic()
    pa.default_memory_pool().release_unused()  # the scan's buffers, before writing
    moves: list[tuple[str, str]] = []
    # Parquet encoding and zstd release the GIL: write partitions two at a time.
    with ThreadPoolExecutor(WRITE_THREADS) as pool, spill.views() as runs:
        futures = [
            pool.submit(write_partition, lake, settings, spill, runs, day, lineage, stage, mode)
            for day in days
        ]
        for future in futures:
            moves.extend(future.result())
    log.info(
        "staged",
        extra={
            "files": len(moves),
            "seconds": round(time.monotonic() - t0, 3),
            "peak_rss_mb": peak_rss_mb(),
        },
    )
    return moves


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
        raise Quarantine(
            "the header names a column twice: " + ", ".join(repr(capped(n)) for n in twice)
        )
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


def judge_duplicates(
    block: Block, checked: rules.Checked, seen: SeenIds, spill: DateSpill
) -> Verdicts:
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
    return Verdicts(reason, column, n)


def record(
    block: Block,
    verdicts: Verdicts,
    header: list[str],
    position: dict[str, int],
    counts: Counts,
    rejects: RejectsWriter,
) -> None:
    """Count the block's rows and keep each rejected one with its reason, column and detail.
    ``header``: the normalised header names; ``position``: the index of each."""
    reason, column = verdicts.reason, verdicts.column
    counts.rows_in += block.rows_in
    counts.valid += verdicts.valid
    bad_idx = np.flatnonzero(reason != rules.OK)
    if len(bad_idx):
        taken = block.table.take(pa.array(bad_idx))
        rows = zip(*(c.to_pylist() for c in taken.columns), strict=True)
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
            rejects.add(lines[k], json_row(values), label, col, detail)
    for line, fields in block.bad:
        counts.rejected["invalid"] += 1
        rejects.add(
            line,
            json_row(fields),
            "invalid",
            None,
            f"the row has {len(fields)} field(s); the header has {len(header)}",
        )
    for line, fields, at in block.malformed:
        counts.rejected["invalid"] += 1
        name = header[at] if at < len(header) else None
        where = f"field {at + 1}" + (f" ({name})" if name else ", beyond the header")
        rejects.add(
            line,
            json_row(fields),
            "invalid",
            name,
            f"malformed quoting: a lone quote inside the quoted {where}; the row ends with "
            "that quote's line",
        )
