"""The streaming CSV scanner: records, fields and physical line numbers (CONTRACT.md s.1)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from ingestion.csvscan import (
    ScanError,
    Scanner,
    _bit_words,
    _bits_at,
    _count_before,
    _quoted_words,
    parse_header,
    parse_records,
)


def scan(
    data: bytes, block_bytes: int = 1 << 16, reference: bool = False
) -> tuple[list[str], list[tuple]]:
    """Header names and [(line, fields, ok)] for every row, via the real Scanner; ok is True,
    False (field count) or ("malformed", index of the field with a lone quote). With
    ``reference`` every block goes through the pure-Python reader."""
    stream = io.BytesIO(data)
    names, header_lines, rest = parse_header(stream)
    scanner = Scanner(stream, len(names), header_lines + 1, rest, block_bytes=block_bytes)
    if reference:
        scanner._block = scanner._slow  # type: ignore[method-assign]
    rows: list[tuple] = []
    for block in scanner:
        for line, values in zip(block.lines.tolist(), block.table.to_pylist(), strict=True):
            rows.append((line, list(values.values()), True))
        for line, fields in block.bad:
            rows.append((line, fields, False))
        for line, fields, at in block.malformed:
            rows.append((line, fields, ("malformed", at)))
    return names, sorted(rows, key=lambda r: r[0])


def scan_both(data: bytes, block_bytes: int = 1 << 16) -> tuple[list[str], list[tuple]]:
    """``scan`` through the fast path, checked against the reference reader."""
    fast = scan(data, block_bytes)
    assert fast == scan(data, block_bytes, reference=True)
    return fast


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


def test_a_quote_inside_an_unquoted_field_is_text() -> None:
    # Given quotes inside unquoted fields (Moe"s, a space before a quote, a doubled quote)
    data = b'a,b,c\n1,Moe"s,3\n2, "q",3\n3,x"",3\n4,"ok",5\n'
    _, rows = scan_both(data)
    # Then they are kept as text and the quoted field after them still reads as quoted
    assert rows == [
        (2, ["1", 'Moe"s', "3"], True),
        (3, ["2", ' "q"', "3"], True),
        (4, ["3", 'x""', "3"], True),
        (5, ["4", "ok", "5"], True),
    ]


def test_a_lone_quote_in_a_quoted_field_makes_the_row_malformed() -> None:
    # Given "Du"ff" (a lone quote) on line 3, between good rows
    data = b'a,b,c\n1,x,3\n2,"Du"ff",3\n4,y,5\n'
    _, rows = scan_both(data)
    # Then that row is malformed at field 2, read up to its line end; the next line reads on
    assert rows == [
        (2, ["1", "x", "3"], True),
        (3, ["2", '"Du"ff",3'], ("malformed", 1)),
        (4, ["4", "y", "5"], True),
    ]


def test_text_after_a_closing_quote_is_a_lone_quote() -> None:
    data = b'a,b,c\n2,"x"y,3\n5,6,7\n'
    _, rows = scan_both(data)
    assert rows == [(2, ["2", '"x"y,3'], ("malformed", 1)), (3, ["5", "6", "7"], True)]


def test_reading_resumes_after_the_line_of_the_lone_quote() -> None:
    # Given a quoted field that spans lines 2-3 and holds a lone quote on line 3, a quoted
    # comma after it on that line, an empty line and CRLF line ends
    data = b'a,b,c\r\n1,"two\r\nli"nes,"p,q"\r\n\r\n7,"8",9\r\n10,11,12\r\n'
    _, rows = scan_both(data)
    # Then the malformed row starts on line 2, and the next row is on line 5
    assert rows == [
        (2, ["1", '"two\r\nli"nes,"p,q"'], ("malformed", 1)),
        (5, ["7", "8", "9"], True),
        (6, ["10", "11", "12"], True),
    ]


def test_a_lone_quote_beyond_the_header_is_malformed_too() -> None:
    data = b'a,b\n1,2,"x"y\n3,4\n'
    _, rows = scan_both(data)
    assert rows == [(2, ["1", "2", '"x"y'], ("malformed", 2)), (3, ["3", "4"], True)]


@pytest.mark.parametrize("block_bytes", [64, 100, 1 << 16])
def test_many_malformed_rows_agree_with_the_reference_at_any_block_size(block_bytes: int) -> None:
    # Given good rows, text quotes and lone quotes interleaved, some spanning lines
    lines = ["id,text,n"]
    for i in range(300):
        kinds = [
            f'{i},"ok ""{i}""",1',
            f'{i},Moe"s {i},2',
            f'{i},"Du"ff{i}",3',
            f'{i},"multi\nline "x" {i}",4',
            f'{i},"fine\nline",5',
            "",
        ]
        lines.append(kinds[i % len(kinds)])
    data = ("\n".join(lines) + "\n").encode()
    _, rows = scan_both(data, block_bytes=block_bytes)
    # Then every block size gives the same rows, lines and malformed fields
    assert rows == scan(data, 1 << 20)[1]
    malformed = [r for r in rows if r[2] is not True]
    assert len(malformed) == 100
    assert all(r[2] == ("malformed", 1) for r in malformed)
    assert [r[0] for r in malformed[:3]] == [4, 5, 12]


def test_a_quoted_field_open_at_the_end_of_the_file_is_an_error() -> None:
    data = b'a,b,c\n1,2,3\n4,"open,6\n7,8,9\n'
    with pytest.raises(ScanError, match="line 3 is still open at the end of the file"):
        scan(data)
    with pytest.raises(ScanError, match="still open"):
        scan(data, reference=True)


def test_first_non_empty_line_is_the_header() -> None:
    # Given two empty lines (LF and CRLF) before the header
    data = b"\n\r\na,b\n1,2\n"
    names, rows = scan_both(data)
    # Then the header is line 3 and the first row line 4
    assert names == ["a", "b"]
    assert rows == [(4, ["1", "2"], True)]


def test_header_faults_are_scan_errors() -> None:
    with pytest.raises(ScanError, match="CR-only line ends are not supported"):
        parse_header(io.BytesIO(b"a,b,c\r1,2,3\r4,5,6\r"))
    with pytest.raises(ScanError, match=r"header \(line 1\) has malformed quoting"):
        parse_header(io.BytesIO(b'a,"b"x,c\n1,2,3\n'))
    with pytest.raises(ScanError, match="still open"):
        parse_header(io.BytesIO(b'a,"b,c\n1,2,3\n'))


@pytest.mark.parametrize(
    ("data", "names", "rest"),
    [
        # a doubled CR before the LF (some Windows tools): the name keeps a CR, trimmed later
        (b"a,b,c\r\r\n1,2,3\r\r\n", ["a", "b", "c\r"], b"1,2,3\r\r\n"),
        # a CR inside a quoted name, the header ended by LF
        (b'a,"b\rx",c\n1,2,3\n', ["a", "b\rx", "c"], b"1,2,3\n"),
        # a file of only a header, closed by one CR
        (b"a,b,c\r", ["a", "b", "c"], b""),
    ],
)
def test_a_lone_cr_in_a_header_an_lf_ends_is_not_a_cr_only_file(data, names, rest) -> None:
    got, _lines, after = parse_header(io.BytesIO(data))
    assert (got, after) == (names, rest)


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
    assert [(r.line, r.fields, r.malformed) for r in records] == [(0, [b"1", b"2"], None)]
    assert consumed == 4


def test_block_with_only_short_rows() -> None:
    # Given data rows that all have the wrong field count (pyarrow would keep none of them)
    _, rows = scan(b"a,b,c\n \n\t\nx\n")
    # Then each is still a row, on its own line, with its fields as read
    assert rows == [(2, [" "], False), (3, ["\t"], False), (4, ["x"], False)]


def test_well_quoted_blocks_stay_on_the_fast_path_past_one_window_of_quotes() -> None:
    # Given 5,000 rows of doubled quotes and quoted commas (over 20,000 quotes, several
    # windows of the quote walk), and a few Moe"s and one "Du"ff" among them
    lines = ["id,name,n"]
    for i in range(5000):
        if i == 2500:
            lines.append(f'{i},"Du"ff",1')
        elif i % 1000 == 7:
            lines.append(f'{i},Moe"s {i},1')
        else:
            lines.append(f'{i},"Moe ""Big"" {i}, Springfield",1')
    data = ("\n".join(lines) + "\n").encode()
    stream = io.BytesIO(data)
    names, header_lines, rest = parse_header(stream)
    scanner = Scanner(stream, len(names), header_lines + 1, rest, block_bytes=1 << 22)
    blocks = list(scanner)
    # Then no block needs the pure-Python reader, and the rows are the reference reader's
    assert (scanner.fast_blocks, scanner.slow_blocks) == (1, 0)
    assert sum(b.table.num_rows for b in blocks) == 4999
    assert [(line, at) for b in blocks for line, _f, at in b.malformed] == [(2502, 1)]
    assert scan(data, 1 << 22) == scan(data, 1 << 22, reference=True)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000, 4099])
def test_quote_parity_words_match_a_byte_wise_scan(n: int) -> None:
    # Given quotes at random bytes (dense and sparse, so stretches stay open across several
    # 64-bit words) and commas at others
    rng = np.random.default_rng(n)
    for density in (0.5, 0.02, 0.002):
        q = np.flatnonzero(rng.random(n) < density)
        commas = np.flatnonzero(rng.random(n) < 0.3)
        flips = np.zeros(n, dtype=np.uint8)
        flips[q] = 1
        quoted = np.bitwise_xor.accumulate(flips).view(bool)
        words = _quoted_words(q, n)
        every = np.arange(n)
        # Then the word form says "inside quotes" exactly where the byte-wise XOR does
        assert np.array_equal(_bits_at(words, every), quoted)
        # And the separating commas before any position (the end included) are counted alike
        mask = np.zeros(n, dtype=bool)
        mask[commas] = True
        outside = _bit_words(mask) & ~words
        kept = commas[~quoted[commas]]
        ends = np.append(every, n)
        assert np.array_equal(_count_before(outside, ends), np.searchsorted(kept, ends))
