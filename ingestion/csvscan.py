"""Streaming CSV scanning with exact physical line numbers (CONTRACT.md section 1).

The file is read in blocks that end on a record boundary. For each block, numpy finds the line
breaks, quotes and commas; from them come the record boundaries, the physical line on which
each record starts (empty lines and line breaks inside quotes count), and the number of fields
of each record. pyarrow's multi-threaded CSV parser then splits the well-formed records of the
block into string columns.

Quotes are read strictly, never repaired. A walk over the quote positions (numpy, a window
at a time) tells opening, closing and doubled quotes from quotes that are text inside an
unquoted field (``Moe"s``) and from lone quotes inside a quoted field (``"Du"ff"``); the
records holding a lone quote are blanked out for the parser and read by :func:`parse_records`,
the line-oriented pure-Python reader that is the reference for what the fast path does. A
block with a lone carriage return, a quoted field open at the end of the file, or any
disagreement between the scan and the parser goes through that reader whole. Both paths
yield the same :class:`Block`.

The parsing rules (shared by both paths, CONTRACT.md section 1):

* records end at LF outside quotes; a CR right before that LF belongs to the line end, a lone
  CR is data;
* a quote is special only at the start of a field; inside a quoted field ``""`` is a quote and
  line breaks are data; the field ends at a quote followed by a comma or the line end;
* any other quote inside a quoted field is a lone quote: the record is malformed and ends with
  the physical line holding that quote (reading goes on at the next line);
* a record with no bytes (``\\n`` or ``\\r\\n`` alone) is an empty line: not a row;
* a quoted field still open at the end of the file is an error (the file is quarantined).
"""

from __future__ import annotations

import re
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
    ``bad`` holds the records with another field count: (line, fields as read).
    ``malformed`` holds the records with a lone quote inside a quoted field: (line, fields as
    read, index of that field); the last field runs to the end of the lone quote's line.
    """

    table: pa.Table
    lines: np.ndarray
    bad: list[tuple[int, list[str]]] = field(default_factory=list)
    nbytes: int = 0
    malformed: list[tuple[int, list[str], int]] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return self.table.num_rows + len(self.bad) + len(self.malformed)


def _decode(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


@dataclass
class Record:
    """One record read by :func:`parse_records`: the LFs in the buffer before its start, its
    fields as read, and the index of the field holding a lone quote (None when well formed)."""

    line: int
    fields: list[bytes]
    malformed: int | None = None


class UnclosedQuote(ScanError):
    """A quoted field is still open at the end of the file (the file is quarantined)."""

    def __init__(self, line_offset: int) -> None:
        super().__init__("a quoted field is still open at the end of the file")
        self.line_offset = line_offset  # LFs before the record's start, in the buffer read

    def at(self, first_line: int) -> ScanError:
        return ScanError(
            f"a quoted field in the record starting on line {first_line + self.line_offset} "
            "is still open at the end of the file (an unbalanced quote)"
        )


def parse_records(buf: bytes, eof: bool, limit: int | None = None) -> tuple[list[Record], int]:
    """Split ``buf`` into records: ([Record], consumed), strictly (CONTRACT.md section 1).

    ``Record.line`` counts LFs in ``buf`` before the record. ``consumed`` is the number of
    bytes of complete records (including their line ends); the rest must be read again with
    more data, unless ``eof``. Empty lines are skipped (not records). At most ``limit`` records.
    A lone quote inside a quoted field ends the record at the end of its physical line; a
    quoted field still open at ``eof`` raises :class:`UnclosedQuote`.
    """
    records: list[Record] = []
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
            records.append(Record(start_line, first.removesuffix(b"\r").split(b",")))
            pos = line_end + 1
            line += 1
            continue
        # The character-level path, for a record that has quotes somewhere.
        fields: list[bytes] = []
        complete = True
        malformed: int | None = None
        while True:
            if pos < n and buf[pos] == QUOTE:
                field_start = pos
                parts: list[bytes] = []
                pos += 1
                while True:
                    q = buf.find(b'"', pos)
                    if q < 0:
                        if not eof:
                            complete = False
                            break
                        raise UnclosedQuote(start_line)
                    parts.append(buf[pos:q])
                    line += buf.count(b"\n", pos, q)
                    after = buf[q + 1 : q + 3]
                    if after[:1] == b'"':  # a doubled quote: one quote of text
                        parts.append(b'"')
                        pos = q + 2
                        continue
                    if not eof and (len(after) == 0 or after == b"\r"):
                        complete = False  # what follows the quote is not read yet
                        break
                    if after[:1] in (b"", b",", b"\n") or after == b"\r\n":
                        pos = q + 1  # the closing quote
                        break
                    # A lone quote: the record ends with the physical line holding it.
                    nl = buf.find(b"\n", q)
                    if nl < 0 and not eof:
                        complete = False
                        break
                    line_end = n if nl < 0 else nl
                    malformed = len(fields)
                    parts = [buf[field_start:line_end].removesuffix(b"\r")]
                    pos = line_end
                    break
                if not complete:
                    break
                fields.append(b"".join(parts))
                if malformed is not None:
                    if pos < n:  # the LF
                        pos += 1
                        line += 1
                    break
                if pos < n and buf[pos] == CR:
                    pos += 1  # the CR of a CRLF after a closing quote
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
        records.append(Record(start_line, fields, malformed))
    return records, pos


_END = 256  # "no byte": the quote is the last byte of the buffer
_WINDOW = 4096  # quotes judged in the first step of the quote walk (then doubling)


def _walk_quotes(
    a: np.ndarray, q: np.ndarray, nl: np.ndarray, eof: bool
) -> tuple[np.ndarray, list[int], list[int]]:
    """Tell the quotes of a block apart (CONTRACT.md section 1): returns (the indices in ``q``
    of quotes that are text inside unquoted fields, the indices of lone quotes inside quoted
    fields, and for each lone quote the position where reading resumes: after the LF ending
    its line, or ``len(a)`` when there is none).

    Quotes alternate between opening and closing a field; the parity restarts after a text
    quote and after the line of a lone quote. The walk judges the quotes a window at a time,
    so a block with a few odd quotes costs little more than one with none."""
    n = len(a)
    prev = np.where(q > 0, a[np.maximum(q - 1, 0)], LF)
    nxt = np.where(q + 1 < n, a[np.minimum(q + 1, n - 1)], _END)
    nxt2 = np.where(q + 2 < n, a[np.minimum(q + 2, n - 1)], _END)
    open_ok = (prev == COMMA) | (prev == LF)
    after_quote = prev == QUOTE
    close_ok = (
        (nxt == COMMA)
        | (nxt == LF)
        | (nxt == QUOTE)
        | (nxt == _END)
        | ((nxt == CR) & ((nxt2 == LF) | ((nxt2 == _END) & (not eof))))
    )
    literal: list[int] = []
    lone: list[int] = []
    resume: list[int] = []
    origin = 0  # the quote where the parity restarts (outside any quoted field)
    low = 0  # the first quote not judged yet
    window = _WINDOW
    while low < len(q):
        hi = min(low + window, len(q))
        idx = np.arange(low, hi)
        opening = ((idx - origin) & 1) == 0
        ok = np.where(
            opening, open_ok[low:hi] | (after_quote[low:hi] & (idx > origin)), close_ok[low:hi]
        )
        bad = np.flatnonzero(~ok)
        if not len(bad):
            low = hi
            window *= 2  # clean so far: judge more at once
            continue
        window = _WINDOW
        k = low + int(bad[0])
        if opening[bad[0]]:  # a quote inside an unquoted field (Moe"s): text
            literal.append(k)
            origin = low = k + 1
            continue
        lone.append(k)
        j = int(np.searchsorted(nl, q[k], side="right"))
        at = int(nl[j]) + 1 if j < len(nl) else n
        resume.append(at)
        origin = low = int(np.searchsorted(q, at))
    return np.array(literal, dtype=np.int64), lone, resume


_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def _bit_words(mask: np.ndarray) -> np.ndarray:
    """``mask`` packed into 64-bit words, bit ``i`` of word ``w`` holding ``mask[64 * w + i]``,
    with at least one whole word past the end (so a position equal to ``len(mask)`` has one)."""
    packed = np.packbits(mask, bitorder="little")
    packed = np.concatenate([packed, np.zeros(8 + (-len(packed) % 8), np.uint8)])
    return packed.view("<u8")


def _quoted_words(q: np.ndarray, n: int) -> np.ndarray:
    """The bit words of "inside a quoted stretch" over ``n`` bytes: an odd number of the field
    quotes ``q`` at or before the byte. A prefix XOR inside each word (six shifts) and one
    across words: about ten times cheaper than a byte-wise XOR scan of the block."""
    flips = np.zeros(n, dtype=bool)
    flips[q] = True
    x = _bit_words(flips)
    for shift in (1, 2, 4, 8, 16, 32):
        x ^= x << np.uint64(shift)
    carry = np.bitwise_xor.accumulate((x >> np.uint64(63)).astype(np.uint8))
    x[1:] ^= carry[:-1].astype(np.uint64) * _ONES  # the parity of every word before
    return x


def _bits_at(words: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The bits of ``words`` at the byte positions ``pos``, as bools."""
    return ((words[pos >> 6] >> (pos & 63).astype(np.uint64)) & np.uint64(1)).astype(bool)


def _count_before(words: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """For each position in ``pos``, the number of bits of ``words`` set before it."""
    counts = np.bitwise_count(words)
    before = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(counts, out=before[1:])
    w = pos >> 6
    below = (np.uint64(1) << (pos & 63).astype(np.uint64)) - np.uint64(1)
    return before[w] + np.bitwise_count(words[w] & below)


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
        n = len(a)
        cr = np.flatnonzero(a == CR)
        if len(cr):
            after = cr + 1
            inside = after < n
            if not np.all(a[after[inside]] == LF):
                self.slow_blocks += 1  # a lone CR: parsers disagree on it
                return self._slow(buf, eof)
        nl = np.flatnonzero(a == LF)
        q = np.flatnonzero(a == QUOTE)
        span_starts: list[int] = []
        span_stops: list[int] = []
        if len(q):
            literal, lone, resume = _walk_quotes(a, q, nl, eof)
            lone_at = q[lone].tolist()
            keep = np.ones(len(q), dtype=bool)
            keep[literal] = False
            for k, at in zip(lone, resume, strict=True):
                keep[k : int(np.searchsorted(q, at))] = False  # the lone quote and its line
            q = q[keep]
            segment = 0
            for at_quote, at in zip(lone_at, resume, strict=True):
                # The malformed record starts after the last record end before its lone quote:
                # an LF of this segment with an even number of field quotes before it.
                lfs = nl[int(np.searchsorted(nl, segment)) : int(np.searchsorted(nl, at_quote))]
                qs = q[int(np.searchsorted(q, segment)) : int(np.searchsorted(q, at_quote))]
                even = (np.searchsorted(qs, lfs) & 1) == 0
                start = int(lfs[even][-1]) + 1 if even.any() else segment
                span_starts.append(start)
                span_stops.append(at)
                segment = at
            if span_starts:
                drop = np.zeros(len(q), dtype=bool)
                for start, stop in zip(span_starts, span_stops, strict=True):
                    drop[int(np.searchsorted(q, start)) : int(np.searchsorted(q, stop))] = True
                q = q[~drop]
        # Inside a quoted stretch: an odd number of field quotes at or before the byte.
        if len(q):
            quoted = _quoted_words(q, n)
            nl_quoted = _bits_at(quoted, nl)
            ends = nl[~nl_quoted]
        else:
            quoted = None
            ends = nl
        if span_starts:
            inside = np.zeros(len(ends), dtype=bool)
            for start, stop in zip(span_starts, span_stops, strict=True):
                inside[int(np.searchsorted(ends, start)) : int(np.searchsorted(ends, stop - 1))] = (
                    True
                )
            ends = ends[~inside]
        if eof:
            if len(q) & 1:
                self.slow_blocks += 1  # a quoted field open at EOF: the reader says where
                return self._slow(buf, eof)
            if n and a[-1] != LF:
                ends = np.append(ends, n)
            consumed = n
        else:
            consumed = int(ends[-1]) + 1 if len(ends) else 0
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
        # the previous one's LF, never on a comma), so the count of separating commas before
        # each record's end gives every record's commas.
        commas = _bit_words(a == COMMA)
        nl_all = nl[nl < consumed]
        newlines_in_quotes = False
        if quoted is not None:
            commas &= ~quoted  # the commas that separate fields
            newlines_in_quotes = bool(nl_quoted[: len(nl_all)].any())  # nl_all: a prefix of nl
        upto = _count_before(commas, ends)
        nfields = np.diff(upto, prepend=0) + 1
        lf_ends = len(ends) - int(eof and len(ends) > 0 and ends[-1] >= n)
        if lf_ends == len(nl_all):  # every LF ends a record: record i starts on line i
            lines = self.line + np.arange(len(ends))
        else:
            lines = self.line + np.searchsorted(nl_all, starts)
        malformed = np.isin(starts, np.array(span_starts, dtype=starts.dtype))
        good = ~empty & ~malformed & (nfields == self.ncols)
        bad = ~empty & ~malformed & (nfields != self.ncols)
        if not good.any():
            table = pa.table({name: pa.array([], pa.string()) for name in self.names})
        else:
            data = memoryview(buf)[:consumed]
            if span_starts:
                # Blank the malformed records out: to the parser they are empty lines.
                cleaned = a[:consumed].copy()
                for start, stop in zip(span_starts, span_stops, strict=True):
                    cleaned[start : min(stop, consumed)] = LF
                data = memoryview(cleaned)
            try:
                table = pacsv.read_csv(
                    pa.py_buffer(data),
                    read_options=self.read_options,
                    # No line break inside quotes: the parser may split the block at any LF
                    # (a third less work than quote-aware splitting).
                    parse_options=self.parse_options if newlines_in_quotes else self.line_options,
                    convert_options=self.convert_options,
                )
            except pa.ArrowInvalid:
                table = None
        if table is None or table.num_rows != int(good.sum()):
            # The parser and the scan disagree (should not happen): trust the reference reader.
            self.slow_blocks += 1
            return self._slow(buf[:consumed] if not eof else buf, True)
        bad_rows: list[tuple[int, list[str]]] = []
        for i in np.flatnonzero(bad):
            # With its line end: a closing quote before a CRLF is then seen to close.
            recs, _ = parse_records(buf[int(starts[i]) : int(ends[i]) + 1], eof=True, limit=1)
            fields = recs[0].fields if recs else [b""]
            bad_rows.append((int(lines[i]), [_decode(f) for f in fields]))
        malformed_rows: list[tuple[int, list[str], int]] = []
        for i in np.flatnonzero(malformed):
            recs, _ = parse_records(buf[int(starts[i]) : int(ends[i]) + 1], eof=True, limit=1)
            if not recs or recs[0].malformed is None:
                self.slow_blocks += 1  # the walk and the reader disagree: trust the reader
                return self._slow(buf[:consumed] if not eof else buf, True)
            rec = recs[0]
            malformed_rows.append((int(lines[i]), [_decode(f) for f in rec.fields], rec.malformed))
        self.fast_blocks += 1
        self._lf_count = len(nl_all)
        block = Block(table, lines[good].astype(np.int64), bad_rows, consumed, malformed_rows)
        return block, consumed

    def _slow(self, buf: bytes, eof: bool) -> tuple[Block | None, int]:
        try:
            records, consumed = parse_records(buf, eof)
        except UnclosedQuote as exc:
            raise exc.at(self.line) from None
        if not records:
            return None, consumed
        offsets = np.fromiter((r.line for r in records), dtype=np.int64, count=len(records))
        lines = self.line + offsets
        cols: list[list[str]] = [[] for _ in range(self.ncols)]
        good_lines: list[int] = []
        bad: list[tuple[int, list[str]]] = []
        malformed: list[tuple[int, list[str], int]] = []
        for rec, line in zip(records, lines.tolist(), strict=True):
            if rec.malformed is not None:
                malformed.append((line, [_decode(f) for f in rec.fields], rec.malformed))
            elif len(rec.fields) == self.ncols:
                for col, value in zip(cols, rec.fields, strict=True):
                    col.append(_decode(value))
                good_lines.append(line)
            else:
                bad.append((line, [_decode(f) for f in rec.fields]))
        table = pa.table(
            {name: pa.array(col, pa.string()) for name, col in zip(self.names, cols, strict=True)}
        )
        block = Block(table, np.array(good_lines, dtype=np.int64), bad, consumed, malformed)
        return block, consumed


def parse_header(stream: BinaryIO, max_bytes: int = 1 << 20) -> tuple[list[str], int, bytes]:
    """Read the header, the first non-empty record: (names as written, the physical lines up to
    and including it, bytes read past it).

    A leading UTF-8 byte-order mark is dropped. Raises :class:`ScanError` when there is no
    header (the file is empty or holds only line breaks), when the header has a lone quote or
    an unclosed one, and when its line ends are CR alone, i.e. no LF ends it and a CR stands
    alone in it (not supported: the whole file would read as one header line).
    """
    buf = b""
    eof = False
    while True:
        if not eof:
            chunk = stream.read(64 * 1024)
            eof = not chunk
            buf += chunk
        data = buf.removeprefix(BOM)
        try:
            records, consumed = parse_records(data, eof, limit=1)
        except UnclosedQuote as exc:
            raise exc.at(1) from None
        ended_by_lf = bool(records) and data[consumed - 1 : consumed] == b"\n"
        if not ended_by_lf and (records or eof or len(buf) > max_bytes):
            # No LF ends the header: CR alone ends lines (a lone CR inside a header that an
            # LF ends is text, trimmed from a name like any space; one CR closing a file of
            # only a header is its line end).
            head = data[: consumed or len(data)]
            if re.search(rb"\r(?!\n)", head.removesuffix(b"\r") if eof else head):
                raise ScanError(
                    "CR-only line ends are not supported: save the file with LF or CRLF line ends"
                )
        if records:
            rec = records[0]
            if rec.malformed is not None:
                raise ScanError(f"the header (line {rec.line + 1}) has malformed quoting")
            names = [_decode(f) for f in rec.fields]
            lines = data.count(b"\n", 0, consumed)
            if consumed and data[consumed - 1 : consumed] != b"\n":
                lines += 1
            return names, max(lines, rec.line + 1), data[consumed:]
        if eof:
            raise ScanError("the file has no header line (it is empty)")
        if len(buf) > max_bytes:
            raise ScanError(f"no complete header line in the first {max_bytes} bytes")
