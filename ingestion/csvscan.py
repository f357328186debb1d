"""Streaming CSV scanning with exact physical line numbers (CONTRACT.md section 1).

The file is read in blocks that end on a record boundary. For each block, numpy finds the line
breaks, quotes and commas; from them come the record boundaries, the physical line on which
each record starts (empty lines and line breaks inside quotes count), and the number of fields
of each record. pyarrow's multi-threaded CSV parser then splits the well-formed records of the
block into string columns.

That fast path is only taken when the numpy reading of the block is certain to agree with the
parser: every quote stands where RFC 4180 allows it (opening a field, closing it, or doubled
inside it) and no lone carriage return appears. Any other block goes through
:func:`parse_records`, a line-oriented pure-Python RFC 4180 reader that is the reference for
what the fast path does. Both paths yield the same :class:`Block`.

The parsing rules (shared by both paths):

* records end at LF outside quotes; a CR right before that LF belongs to the line end;
* a quote is special only at the start of a field; inside a quoted field ``""`` is a quote and
  line breaks are data; text after a closing quote up to the next comma is kept literally;
* a record with no bytes (``\\n`` or ``\\r\\n`` alone) is an empty line: not a row;
* a quoted field still open at the end of the file ends there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

LF, CR, QUOTE, COMMA = 10, 13, 34, 44
BOM = b"\xef\xbb\xbf"


class ScanError(Exception):
    """The file cannot be read as CSV at all (a reason for quarantine)."""


@dataclass
class Block:
    """The records of one block of the file.

    ``table`` holds the records whose field count matches the header, as string columns
    ``c0..c{n-1}`` exactly as read (not trimmed); ``lines`` their starting physical lines.
    ``bad`` holds the other records: (line, fields as read).
    """

    table: pa.Table
    lines: np.ndarray
    bad: list[tuple[int, list[str]]] = field(default_factory=list)
    nbytes: int = 0

    @property
    def rows_in(self) -> int:
        return self.table.num_rows + len(self.bad)


def _decode(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def parse_records(
    buf: bytes, eof: bool, limit: int | None = None
) -> tuple[list[tuple[int, list[bytes]]], int]:
    """Split ``buf`` into records: ([(line offset of the record's start, fields)], consumed).

    The line offset counts LFs in ``buf`` before the record. ``consumed`` is the number of
    bytes of complete records (including their line ends); the rest must be read again with
    more data, unless ``eof``. Empty lines are skipped (not records). At most ``limit`` records.
    """
    records: list[tuple[int, list[bytes]]] = []
    n = len(buf)
    pos = 0
    line = 0
    while pos < n:
        if limit is not None and len(records) >= limit:
            break
        start, start_line = pos, line
        nl = buf.find(b"\n", pos)
        line_end = n if nl < 0 else nl
        if nl < 0 and not eof:
            break  # the record's line is not complete yet
        first = buf[pos:line_end]
        if first in (b"", b"\r"):  # an empty line: not a row
            pos = line_end + 1
            line += 1
            continue
        if b'"' not in first:
            records.append((start_line, first.removesuffix(b"\r").split(b",")))
            pos = line_end + 1
            line += 1
            continue
        # The character-level path, for a record that has quotes somewhere.
        fields: list[bytes] = []
        complete = True
        while True:
            if pos < n and buf[pos] == QUOTE:
                parts: list[bytes] = []
                pos += 1
                while True:
                    q = buf.find(b'"', pos)
                    if q < 0:
                        if not eof:
                            complete = False
                        parts.append(buf[pos:])
                        line += buf.count(b"\n", pos)
                        pos = n
                        break
                    parts.append(buf[pos:q])
                    line += buf.count(b"\n", pos, q)
                    if q + 1 < n and buf[q + 1] == QUOTE:
                        parts.append(b'"')
                        pos = q + 2
                        continue
                    if q + 1 >= n and not eof:
                        complete = False
                    pos = q + 1
                    break
                if not complete:
                    break
                # Literal text after the closing quote, up to the field's end.
                nl = buf.find(b"\n", pos)
                line_end = n if nl < 0 else nl
                c = buf.find(b",", pos, line_end)
                end = line_end if c < 0 else c
                if end == line_end and nl < 0 and not eof:
                    complete = False
                    break
                tail = buf[pos:end]
                if c < 0:
                    tail = tail.removesuffix(b"\r")
                fields.append(b"".join(parts) + tail)
                pos = end
            else:
                nl = buf.find(b"\n", pos)
                line_end = n if nl < 0 else nl
                if nl < 0 and not eof:
                    complete = False
                    break
                c = buf.find(b",", pos, line_end)
                end = line_end if c < 0 else c
                value = buf[pos:end]
                if c < 0:
                    value = value.removesuffix(b"\r")
                fields.append(value)
                pos = end
            # pos is at a comma, a LF, or the end of the buffer.
            if pos < n and buf[pos] == COMMA:
                pos += 1
                if pos >= n and not eof:
                    complete = False
                    break
                if pos >= n:  # a trailing comma at EOF: one more, empty field
                    fields.append(b"")
                    break
                continue
            if pos < n:  # LF
                pos += 1
                line += 1
            break
        if not complete:
            pos, line = start, start_line
            break
        records.append((start_line, fields))
    return records, pos


def _cut_fast(a: np.ndarray, eof: bool) -> tuple[np.ndarray, np.ndarray, int, np.ndarray] | None:
    """Record ends (positions of their LF, or len at EOF) of a block, if the fast path applies.

    Returns (record_ends, quote_positions, consumed, lf_positions), or None when the block
    needs the reference reader.
    """
    n = len(a)
    cr = np.flatnonzero(a == CR)
    if len(cr):
        after = cr + 1
        inside = after < n
        if not np.all(a[after[inside]] == LF):
            return None  # a lone CR: parsers disagree on it; use the reference reader
        if not eof and not np.all(inside):
            pass  # a CR as the last byte: its LF comes with the next read; cut before it
    nl = np.flatnonzero(a == LF)
    q = np.flatnonzero(a == QUOTE)
    if len(q):
        before = np.searchsorted(q, q)  # quotes before each quote = its index
        opening = (before & 1) == 0
        prev = np.where(q > 0, a[np.maximum(q - 1, 0)], LF)
        nxt = np.where(q + 1 < n, a[np.minimum(q + 1, n - 1)], LF)
        ok_open = (prev == COMMA) | (prev == LF) | (prev == QUOTE) | (q == 0)
        ok_close = (nxt == COMMA) | (nxt == LF) | (nxt == CR) | (nxt == QUOTE) | (q + 1 == n)
        # An opening quote after a quote is only right when that quote closed a field
        # (a doubled quote); after a comma/LF/start it must open a field.
        if not np.all(np.where(opening, ok_open, ok_close)):
            return None
        # A quote right after a closing quote must itself be "opening" (part of "" pair).
        ends = nl[(np.searchsorted(q, nl) & 1) == 0]
        odd_at_end = len(q) & 1
    else:
        ends = nl
        odd_at_end = 0
    if eof:
        if odd_at_end:
            return None  # a quoted field open at EOF: the reference reader ends it there
        if n and a[-1] != LF:
            ends = np.append(ends, n)
        consumed = n
    else:
        consumed = int(ends[-1]) + 1 if len(ends) else 0
        if consumed and a[consumed - 2 : consumed - 1].tobytes() == b"\r":
            pass
    return ends, q, consumed, nl


class Scanner:
    """Read the data records of a CSV stream after its header, block by block."""

    def __init__(
        self,
        stream: BinaryIO,
        ncols: int,
        first_line: int,
        initial: bytes = b"",
        block_bytes: int = 16 * 1024 * 1024,
        max_record_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.stream = stream
        self.ncols = ncols
        self.line = first_line  # physical line of the next unread byte
        self.carry = initial
        self.block_bytes = block_bytes
        self.max_record_bytes = max_record_bytes
        self.names = [f"c{i}" for i in range(ncols)]
        self.read_options = pacsv.ReadOptions(
            column_names=self.names, block_size=1 << 20, use_threads=True
        )
        self.convert_options = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in self.names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,
        )
        self.parse_options = pacsv.ParseOptions(
            newlines_in_values=True,
            ignore_empty_lines=True,
            invalid_row_handler=lambda _row: "skip",
        )
        self.line_options = pacsv.ParseOptions(
            newlines_in_values=False,
            ignore_empty_lines=True,
            invalid_row_handler=lambda _row: "skip",
        )
        self.fast_blocks = 0
        self.slow_blocks = 0
        self._lf_count: int | None = None  # LFs in the bytes the last fast block consumed

    def __iter__(self) -> Iterator[Block]:
        eof = False
        want = self.block_bytes
        while True:
            buf = self.carry
            if not eof:
                chunk = self.stream.read(max(want - len(buf), min(self.block_bytes, 1 << 16)))
                if not chunk:
                    eof = True
                else:
                    buf = buf + chunk if buf else chunk
            if not buf:
                return
            block, consumed = self._block(buf, eof)
            self.carry = buf[consumed:]
            if self._lf_count is not None:  # counted by the fast path
                self.line += self._lf_count
                self._lf_count = None
            else:
                self.line += buf.count(b"\n", 0, consumed)
            if block is not None and block.rows_in:
                yield block
            if consumed == 0:
                if eof:
                    return
                if len(buf) >= self.max_record_bytes:
                    raise ScanError(
                        f"a record starting on line {self.line} is longer than "
                        f"{self.max_record_bytes} bytes (an unbalanced quote?)"
                    )
                want = len(buf) * 2
            else:
                want = self.block_bytes
            if eof and not self.carry:
                return

    def _block(self, buf: bytes, eof: bool) -> tuple[Block | None, int]:
        a = np.frombuffer(buf, dtype=np.uint8)
        cut = _cut_fast(a, eof)
        if cut is None:
            self.slow_blocks += 1
            return self._slow(buf, eof)
        ends, q, consumed, nl = cut
        if consumed == 0:
            return None, 0
        ends = ends[ends < consumed] if not eof else ends
        starts = np.empty_like(ends)
        if len(ends):
            starts[0] = 0
            starts[1:] = ends[:-1] + 1
        length = ends - starts
        empty = length == 0
        one = np.flatnonzero(length == 1)
        empty[one[a[starts[one]] == CR]] = True
        # Fields = commas outside quotes + 1. Records are contiguous (each starts right after
        # the previous one's LF, never on a comma), so one search gives every record's commas.
        commas = np.flatnonzero(a[:consumed] == COMMA)
        upto = np.searchsorted(commas, ends)
        nfields = np.diff(upto, prepend=0) + 1
        if len(q):
            # Quote i opens a quoted stretch when i is even; it closes at quote i+1 (or the
            # end of the block). Remove the commas inside each stretch from its record.
            opens = q[0::2]
            closes = np.append(q[1::2], consumed)[: len(opens)]
            inside = np.searchsorted(commas, closes) - np.searchsorted(commas, opens)
            record = np.searchsorted(ends, opens)
            keep = record < len(ends)
            nfields -= np.bincount(record[keep], weights=inside[keep], minlength=len(ends)).astype(
                nfields.dtype
            )
        nl_all = nl[nl < consumed]
        lf_ends = len(ends) - int(eof and len(ends) > 0 and ends[-1] >= len(a))
        one_line_records = lf_ends == len(nl_all)
        if one_line_records:  # every LF ends a record: record i starts on line i
            lines = self.line + np.arange(len(ends))
        else:
            lines = self.line + np.searchsorted(nl_all, starts)
        good = ~empty & (nfields == self.ncols)
        bad = ~empty & (nfields != self.ncols)
        if not good.any():
            table = pa.table({name: pa.array([], pa.string()) for name in self.names})
        else:
            try:
                table = pacsv.read_csv(
                    pa.py_buffer(memoryview(buf)[:consumed]),
                    read_options=self.read_options,
                    # No line break inside quotes: the parser may split the block at any LF
                    # (a third less work than quote-aware splitting).
                    parse_options=self.line_options if one_line_records else self.parse_options,
                    convert_options=self.convert_options,
                )
            except pa.ArrowInvalid:
                table = None
        if table is None or table.num_rows != int(good.sum()):
            # The parser and the scan disagree (should not happen): trust the reference reader.
            self.slow_blocks += 1
            return self._slow(buf[:consumed] if not eof else buf, True)
        self.fast_blocks += 1
        self._lf_count = len(nl_all)
        bad_rows: list[tuple[int, list[str]]] = []
        for i in np.flatnonzero(bad):
            recs, _ = parse_records(buf[int(starts[i]) : int(ends[i])], eof=True, limit=1)
            fields = recs[0][1] if recs else [b""]
            bad_rows.append((int(lines[i]), [_decode(f) for f in fields]))
        return Block(table, lines[good].astype(np.int64), bad_rows, consumed), consumed

    def _slow(self, buf: bytes, eof: bool) -> tuple[Block | None, int]:
        records, consumed = parse_records(buf, eof)
        if not records:
            return None, consumed
        offsets = np.fromiter((r[0] for r in records), dtype=np.int64, count=len(records))
        lines = self.line + offsets
        cols: list[list[str]] = [[] for _ in range(self.ncols)]
        good_lines: list[int] = []
        bad: list[tuple[int, list[str]]] = []
        for (_, fields), line in zip(records, lines.tolist(), strict=True):
            if len(fields) == self.ncols:
                for col, value in zip(cols, fields, strict=True):
                    col.append(_decode(value))
                good_lines.append(line)
            else:
                bad.append((line, [_decode(f) for f in fields]))
        table = pa.table(
            {name: pa.array(col, pa.string()) for name, col in zip(self.names, cols, strict=True)}
        )
        return Block(table, np.array(good_lines, dtype=np.int64), bad, consumed), consumed


def parse_header(stream: BinaryIO, max_bytes: int = 1 << 20) -> tuple[list[str], int, bytes]:
    """Read the header record: (names as written, lines it spans, bytes read past it).

    A leading UTF-8 byte-order mark is dropped. Raises :class:`ScanError` when there is no
    header (the file is empty or holds only line breaks).
    """
    buf = b""
    eof = False
    skipped_lines = 0
    while True:
        if not eof:
            chunk = stream.read(64 * 1024)
            eof = not chunk
            buf += chunk
        data = buf.removeprefix(BOM)
        records, consumed = parse_records(data, eof, limit=1)
        if records:
            offset, fields = records[0]
            skipped_lines = offset
            names = [_decode(f) for f in fields]
            lines = data.count(b"\n", 0, consumed) - skipped_lines
            if consumed and data[consumed - 1 : consumed] != b"\n":
                lines += 1
            return names, skipped_lines + max(lines, 1), data[consumed:]
        if eof:
            raise ScanError("the file has no header line (it is empty)")
        if len(buf) > max_bytes:
            raise ScanError(f"no complete header line in the first {max_bytes} bytes")
