"""Property tests: random rows and random bytes never crash landing and always conserve rows."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.csvscan import ScanError, Scanner, parse_header
from ingestion.lake import LocalLake
from ingestion.land import land
from ingestion.sample import COLUMNS
from ingestion.settings import Settings

VALUES = st.one_of(
    st.sampled_from(
        [
            "1",
            "007",
            " 42 ",
            "0",
            "-1",
            "1.5",
            "1e3",
            "NaN",
            "12.50",
            "0.355",
            "retail",
            " B2B ",
            "online",
            "delivered",
            "BROKEN",
            "created",
            "2024-02-29",
            "2023-02-29",
            "",
            "   ",
            "9223372036854775808",
            'say "hi"',
            "a,b",
            "two\nlines",
            "x\r\ny",
        ]
    ),
    st.text(max_size=12),
    st.integers(min_value=-5, max_value=10**20).map(str),
)


def record(ncols: int):
    return st.one_of(
        st.lists(VALUES, min_size=ncols, max_size=ncols),
        st.lists(VALUES, min_size=0, max_size=ncols + 2),
    )


def land_data(data: bytes) -> tuple[dict, list[int], list[int]]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f.csv"
        src.write_bytes(data)
        lake = Path(tmp) / "lake"
        m = land(str(src), settings=Settings(lake=str(lake)), lake=LocalLake(lake))
        valid_lines: list[int] = []
        for f in sorted((lake / "raw").rglob("*.parquet")) if (lake / "raw").exists() else []:
            valid_lines += pq.read_table(f, columns=["source_line"]).column(0).to_pylist()
        reject_lines: list[int] = []
        for f in (
            sorted((lake / "rejects").rglob("*.parquet")) if (lake / "rejects").exists() else []
        ):
            reject_lines += pq.read_table(f, columns=["source_line"]).column(0).to_pylist()
        assert not list((lake / "_staging").glob("*"))
        return m, sorted(valid_lines), sorted(reject_lines)


def oracle(text: str) -> list[int]:
    """Start lines of every record (not empty lines) as Python's csv module reads them, fed
    one LF-terminated line at a time (only LF ends a line; a lone CR is data)."""
    reader = csv.reader(re.findall(r"[^\n]*\n|[^\n]+$", text))
    next(reader)
    lines, line = [], reader.line_num + 1
    for rec in reader:
        if rec:
            lines.append(line)
        line = reader.line_num + 1
    return lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(record(len(COLUMNS)), max_size=25),
    empties=st.lists(st.integers(min_value=0, max_value=30), max_size=4),
    crlf=st.booleans(),
    quote_all=st.booleans(),
)
def test_random_rows_conserve_and_keep_lines(rows, empties, crlf, quote_all) -> None:
    # Given any rows (values of any kind, any field count), written as RFC 4180 CSV
    # (The writer's terminator is CRLF so that it quotes any value holding a CR; the file's
    # own line ends are then LF or CRLF.)
    out = io.StringIO()
    end = "\r\n" if crlf else "\n"
    writer = csv.writer(
        out, lineterminator="\r\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    writer.writerow(COLUMNS)
    lines = [out.getvalue()[:-2] + end]
    for i, values in enumerate(rows):
        out.seek(0)
        out.truncate()
        if not values:
            values = [" "]  # a row must not be an empty line
        writer.writerow(values)
        lines.append(out.getvalue()[:-2] + end)
        if i in empties:
            lines.append("\r\n" if crlf else "\n")
    text = "".join(lines)
    # When it lands
    m, valid_lines, reject_lines = land_data(text.encode("utf-8"))
    # Then it never crashes, conserves rows, and every row is kept on its physical line
    assert m["status"] == "landed"
    assert m["rows_in"] == m["valid"] + sum(m["rejected"].values())
    assert m["rows_in"] == len(rows)
    assert sorted(valid_lines + reject_lines) == oracle(text), repr(text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", ",".join(COLUMNS).encode() + b"\n"]),
    noise=st.binary(max_size=400),
)
def test_random_bytes_never_crash_and_conserve(prefix: bytes, noise: bytes) -> None:
    # Given arbitrary bytes, with or without a valid header before them
    m, valid_lines, reject_lines = land_data(prefix + noise)
    # Then landing answers with a manifest whose counts add up and match what was written
    assert m["status"] in ("landed", "quarantined")
    assert m["rows_in"] == m["valid"] + sum(m["rejected"].values())
    assert m["valid"] == len(valid_lines)
    assert sum(m["rejected"].values()) == len(reject_lines)
    if m["status"] == "quarantined":
        assert m["rows_in"] == 0 and m["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    noise=st.lists(
        st.sampled_from(['"', ",", "\n", "\r", "\r\n", "a", " ", '""', "1", "é"]), max_size=80
    )
)
def test_quote_and_line_break_noise_never_crashes(noise: list[str]) -> None:
    # Given a valid header followed by a storm of quotes, commas and line breaks
    data = (",".join(COLUMNS) + "\n" + "".join(noise)).encode()
    m, valid_lines, reject_lines = land_data(data)
    # Then rows are conserved and each kept row has a line after the header
    assert (
        m["rows_in"]
        == m["valid"] + sum(m["rejected"].values())
        == len(reject_lines) + len(valid_lines)
    )
    assert all(line >= 2 for line in valid_lines + reject_lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    noise=st.lists(
        st.sampled_from(['"', ",", "\n", "\r\n", "a", " ", '""', "1", "é", '"x"', 'a"b']),
        max_size=120,
    ),
    block_bytes=st.sampled_from([64, 97, 1 << 16]),
)
def test_fast_scan_agrees_with_the_reference_reader(noise: list[str], block_bytes: int) -> None:
    # Given a header and a storm of quotes (opening, closing, doubled, lone, inside unquoted
    # fields), commas and line breaks, read in blocks of any size
    data = ("a,b,c\n" + "".join(noise)).encode()

    def read(reference: bool) -> object:
        stream = io.BytesIO(data)
        names, header_lines, rest = parse_header(stream)
        scanner = Scanner(stream, len(names), header_lines + 1, rest, block_bytes=block_bytes)
        if reference:
            scanner._block = scanner._slow  # type: ignore[method-assign]
        rows = []
        try:
            for block in scanner:
                rows += zip(block.lines.tolist(), block.table.to_pylist(), strict=True)
                rows += [(line, fields) for line, fields in block.bad]
                rows += [(line, fields, at) for line, fields, at in block.malformed]
        except ScanError as exc:
            return str(exc)
        return sorted(rows, key=lambda r: r[0])

    # Then the numpy walk and the pure-Python reader give the same rows, lines and errors
    assert read(False) == read(True)
