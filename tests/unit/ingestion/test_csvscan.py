"""The streaming CSV scanner: records, fields and physical line numbers (CONTRACT.md s.1)."""

from __future__ import annotations

import csv
import io

import pytest

from ingestion.csvscan import ScanError, Scanner, parse_header, parse_records


def scan(data: bytes, block_bytes: int = 1 << 16) -> tuple[list[str], list[tuple]]:
    """Header names and [(line, fields, ok)] for every row, via the real Scanner."""
    stream = io.BytesIO(data)
    names, header_lines, rest = parse_header(stream)
    scanner = Scanner(stream, len(names), header_lines + 1, rest, block_bytes=block_bytes)
    rows: list[tuple] = []
    for block in scanner:
        for line, values in zip(block.lines.tolist(), block.table.to_pylist(), strict=True):
            rows.append((line, list(values.values()), True))
        for line, fields in block.bad:
            rows.append((line, fields, False))
    return names, sorted(rows)


def test_bom_crlf_and_quoting() -> None:
    # Given a CSV with a BOM, CRLF line ends, a quoted comma, a doubled quote and a newline
    # inside quotes
    data = '\ufeffa,b,c\r\n1,"x, y",3\r\n2,"say ""hi""",3\r\n3,"two\r\nlines",3\r\n4,5,6'
    names, rows = scan(data.encode())
    # Then the header has no BOM and values are unquoted; the line of a row is where it starts
    assert names == ["a", "b", "c"]
    assert rows == [
        (2, ["1", "x, y", "3"], True),
        (3, ["2", 'say "hi"', "3"], True),
        (4, ["3", "two\r\nlines", "3"], True),
        (6, ["4", "5", "6"], True),
    ]


def test_empty_lines_count_but_are_not_rows_and_blank_lines_are_rows() -> None:
    # Given empty lines (LF and CRLF), a line of spaces and a line of commas
    data = b"a,b,c\n\n1,2,3\r\n\r\n   \n,,\n\n"
    _, rows = scan(data)
    # Then empty lines are skipped but counted; the spaces line has the wrong field count and
    # the commas line has the right one (and will be rejected as missing)
    assert rows == [
        (3, ["1", "2", "3"], True),
        (5, ["   "], False),
        (6, ["", "", ""], True),
    ]


def test_field_count_mismatch_is_reported_with_fields() -> None:
    data = b"a,b,c\n1,2\n1,2,3,4\n1,2,3\n"
    _, rows = scan(data)
    assert rows == [
        (2, ["1", "2"], False),
        (3, ["1", "2", "3", "4"], False),
        (4, ["1", "2", "3"], True),
    ]


def test_header_only_file_has_no_rows() -> None:
    assert scan(b"a,b,c\r\n") == (["a", "b", "c"], [])
    assert scan(b"a,b,c") == (["a", "b", "c"], [])


def test_no_header_is_a_scan_error() -> None:
    with pytest.raises(ScanError):
        parse_header(io.BytesIO(b""))
    with pytest.raises(ScanError):
        parse_header(io.BytesIO(b"\n\r\n\n"))


def test_header_with_quoted_newline_shifts_lines() -> None:
    # Given a header whose quoted name spans two lines
    data = b'a,"b\nb",c\n1,2,3\n'
    names, rows = scan(data)
    # Then the first row is on line 3
    assert names == ["a", "b\nb", "c"]
    assert rows == [(3, ["1", "2", "3"], True)]


def test_malformed_quotes_use_the_reference_reader() -> None:
    # Given quotes in the middle of unquoted fields and text after a closing quote
    data = b'a,b,c\n1,ab"c,3\n2,"x"y,3\n3, "q",3\n'
    _, rows = scan(data)
    # Then the quotes are literal where RFC 4180 does not make them special
    assert rows == [
        (2, ["1", 'ab"c', "3"], True),
        (3, ["2", "xy", "3"], True),
        (4, ["3", ' "q"', "3"], True),
    ]


def test_unterminated_quote_runs_to_end_of_file() -> None:
    data = b'a,b,c\n1,2,3\n4,"open,6\n7,8,9\n'
    _, rows = scan(data)
    assert rows[0] == (2, ["1", "2", "3"], True)
    assert rows[1][0] == 3
    assert rows[1][2] is False  # 2 fields: the quoted one swallowed the rest


def test_lone_carriage_return_is_data() -> None:
    data = b"a,b,c\n1,x\ry,3\n"
    _, rows = scan(data)
    assert rows == [(2, ["1", "x\ry", "3"], True)]


@pytest.mark.parametrize("block_bytes", [64, 100, 1 << 16])
def test_blocks_boundaries_do_not_change_results(block_bytes: int) -> None:
    # Given a file with multi-line quoted values, read in tiny blocks
    lines = ["id,text,n"]
    for i in range(200):
        text = f'"row {i}\nsecond, line"' if i % 7 == 0 else f"plain {i}"
        lines.append(f"{i},{text},{i * 2}")
        if i % 11 == 0:
            lines.append("")
    data = ("\n".join(lines) + "\n").encode()
    _, rows = scan(data, block_bytes=block_bytes)
    # Then every block size gives the rows Python's csv module gives, with the same lines
    expected = []
    reader = csv.reader(io.StringIO(data.decode(), newline=""))
    next(reader)
    line = 2
    for rec in reader:
        start = line
        line = reader.line_num + 1
        if rec:
            expected.append((start, rec, True))
    assert rows == expected


def test_parse_records_reports_incomplete_tail() -> None:
    records, consumed = parse_records(b'1,2\n3,"4\n5', eof=False)
    assert records == [(0, [b"1", b"2"])]
    assert consumed == 4


def test_block_with_only_short_rows() -> None:
    # Given data rows that all have the wrong field count (pyarrow would keep none of them)
    _, rows = scan(b"a,b,c\n \n\t\nx\n")
    # Then each is still a row, on its own line, with its fields as read
    assert rows == [(2, [" "], False), (3, ["\t"], False), (4, ["x"], False)]
