"""Landing real files into a tmp lake and reading the Parquet back (CONTRACT.md s.1 and s.2)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingestion import rules
from tests.integration.ingestion.landing_helpers import (
    HEADER,
    land_bytes,
    land_text,
    manifest_on_disk,
    row,
)

NOW = dt.datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=dt.UTC)


def test_valid_rows_land_typed_partitioned_with_lineage(tmp_path: Path) -> None:
    # Given a file with a BOM, CRLF, shuffled and noisy header names, an extra column, and
    # rows on two dates
    header = (
        " Status ,ORDER_ID,client_id,Client_Name,promo_code,product_id,product_description,"
        "product_price,product_ccf,product_volume,point_of_sale_channel,order_date"
    )
    rows = [
        'delivered,1,10,"Simpson, Homer",X1,3,"Duff ""Dry""",1.50,2,0.355,Online,2024-03-02',
        "CREATED,2,11,Marge,,4,Duff Lite,0,1,1.000, b2b ,2024-03-01",
    ]
    data = "\ufeff" + "\r\n".join([header, *rows]) + "\r\n"
    # When it lands
    landed = land_text(tmp_path, data, now=NOW)
    m = landed.manifest
    # Then the manifest says so, exactly as the contract's fields
    assert m["status"] == "landed"
    assert (m["rows_in"], m["valid"]) == (2, 2)
    assert m["rejected"] == {"missing": 0, "invalid": 0, "duplicate": 0}
    assert m["ignored_columns"] == ["promo_code"]
    assert m["partitions"] == ["2024-03-01", "2024-03-02"]
    assert m["source_file"] == str(landed.source.resolve())
    assert m["landed_at"] == "2026-05-04T03:02:01.123456Z"
    assert m["error"] is None
    assert m["ingest_id"] == "20260504T030201123456Z-" + m["sha256"][:12]
    assert manifest_on_disk(landed) == m
    # And the Parquet holds typed, normalised values and lineage, partitioned by pa_date
    by_id = {r["order_id"]: r for r in landed.valid}
    homer = by_id[1]
    assert homer["client_name"] == "Simpson, Homer"
    assert homer["product_description"] == 'Duff "Dry"'
    assert homer["product_price"] == Decimal("1.50")
    assert homer["total_amount"] == Decimal("3.00")
    assert homer["total_liters"] == Decimal("0.710")
    assert homer["point_of_sale_channel"] == "Online"
    assert homer["status"] == "delivered"
    assert homer["order_date"] == dt.date(2024, 3, 2)
    assert homer["pa_date"] == "2024-03-02"
    assert homer["source_file"] == m["source_file"]
    assert homer["source_line"] == 2
    assert homer["ingest_id"] == m["ingest_id"]
    assert homer["landed_at"] == NOW
    assert by_id[2]["point_of_sale_channel"] == "B2B"
    assert by_id[2]["status"] == "created"
    assert by_id[2]["product_price"] == Decimal("0.00")
    assert by_id[2]["source_line"] == 3
    # And each file's schema is the architecture's, pa_date only in the path
    files = landed.files("raw/orders")
    assert files == [
        f"raw/orders/pa_date=2024-03-01/{m['ingest_id']}-0.parquet",
        f"raw/orders/pa_date=2024-03-02/{m['ingest_id']}-0.parquet",
    ]
    schema = pq.read_schema(landed.lake / files[0])
    assert schema.remove_metadata() == rules.RAW_SCHEMA
    meta = pq.ParquetFile(landed.lake / files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    # And nothing is left in staging
    assert landed.files("_staging") == []


def test_rejected_rows_are_kept_with_line_raw_values_reason_column_detail(
    tmp_path: Path,
) -> None:
    # Given a file with a missing, an invalid, a short and a duplicate row, with empty lines
    # and a quoted newline shifting the physical lines
    lines = [
        HEADER,
        row(order_id="1", client_name='"two\nlines"'),  # line 2-3
        "",  # line 4
        row(order_id="2", client_name=""),  # line 5: missing
        row(order_id="56x9"),  # line 6: invalid
        "1,2,3",  # line 7: field count
        row(order_id=" 001 "),  # line 8: duplicate of 1
    ]
    landed = land_text(tmp_path, "\n".join(lines) + "\n", now=NOW)
    m = landed.manifest
    # Then conservation holds and each reject is stored as the contract says
    assert m["rows_in"] == 5
    assert m["valid"] == 1
    assert m["rejected"] == {"missing": 1, "invalid": 2, "duplicate": 1}
    assert m["rows_in"] == m["valid"] + sum(m["rejected"].values())
    got = [(r["source_line"], r["reason"], r["column"]) for r in landed.rejects]
    assert got == [
        (5, "missing", "client_name"),
        (6, "invalid", "order_id"),
        (7, "invalid", None),
        (8, "duplicate", "order_id"),
    ]
    assert json.loads(landed.rejects[1]["raw_values"])[0] == "56x9"
    assert json.loads(landed.rejects[2]["raw_values"]) == ["1", "2", "3"]
    assert json.loads(landed.rejects[3]["raw_values"])[0] == " 001 "
    assert "56x9" in landed.rejects[1]["detail"]
    assert "3 field" in landed.rejects[2]["detail"]
    for r in landed.rejects:
        assert r["source_file"] == m["source_file"]
        assert r["ingest_id"] == m["ingest_id"]
        assert r["landed_at"] == NOW
    assert landed.files("rejects") == [
        f"rejects/orders/ingest_date=2026-05-04/{m['ingest_id']}.parquet"
    ]
    assert [r["source_line"] for r in landed.valid] == [2]


def test_duplicates_compare_as_integers_and_first_valid_row_wins(tmp_path: Path) -> None:
    # Given order 7 first in an invalid row, then valid as ' 7 ', '007' and '7', across blocks
    body = [row(order_id="7", status="lost")]
    body += [row(order_id=str(i)) for i in range(100, 1600)]
    body += [row(order_id=" 7 ", client_name="First")]
    body += [row(order_id=str(i)) for i in range(1600, 3100)]
    body += [row(order_id="007", client_name="Second"), row(order_id="7", client_name="Third")]
    body += [row(order_id="150")]  # duplicate of an id seen many blocks earlier
    data = "\n".join([HEADER, *body]) + "\n"
    assert len(data) > 2 * 64 * 1024
    # When it lands with tiny blocks (so the rows are spread over many batches)
    landed = land_text(tmp_path, data, block_bytes=64 * 1024 + 1)
    landed_small = land_bytes(
        tmp_path / "small",
        data.encode(),
        block_bytes=64 * 1024,
        row_group_rows=50,
        buffer_bytes=32 * 1024,
    )
    for result in (landed, landed_small):
        m = result.manifest
        # Then the first valid row of order 7 wins; the invalid one does not count
        sevens = [r for r in result.valid if r["order_id"] == 7]
        assert [r["client_name"] for r in sevens] == ["First"]
        assert m["rejected"] == {"missing": 0, "invalid": 1, "duplicate": 3}
        assert m["valid"] == 3001
        dups = [r for r in result.rejects if r["reason"] == "duplicate"]
        assert [r["source_line"] for r in dups] == [3004, 3005, 3006]


def test_many_blocks_keep_exact_line_numbers(tmp_path: Path) -> None:
    # Given 3000 rows with quoted newlines and empty lines sprinkled in, read in 64 KiB blocks
    lines = [HEADER]
    expected = {}
    physical = 2
    for i in range(1, 3001):
        name = f'"Name {i}\nline two"' if i % 13 == 0 else f"Name {i}"
        expected[i] = physical
        lines.append(row(order_id=str(i), client_name=name))
        physical += 2 if i % 13 == 0 else 1
        if i % 17 == 0:
            lines.append("")
            physical += 1
    landed = land_text(
        tmp_path, "\n".join(lines) + "\n", block_bytes=64 * 1024, buffer_bytes=64 * 1024
    )
    # Then every row lands with the physical line it starts on (through sorted runs spilled
    # to disk, since the buffer is smaller than the file)
    assert landed.manifest["valid"] == 3000
    assert {r["order_id"]: r["source_line"] for r in landed.valid} == expected


def test_without_order_date_pa_date_is_utc_landing_date(tmp_path: Path) -> None:
    # Given a file without order_date, landed at 23:30 in UTC-5 (04:30 UTC next day)
    header = HEADER.removesuffix(",order_date")
    data = "\n".join([header, row(order_date=None), row(order_id="2", order_date=None)])
    now = dt.datetime(2024, 3, 8, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    landed = land_text(tmp_path, data, now=now)
    # Then pa_date is the UTC date and order_date is null
    assert landed.manifest["partitions"] == ["2024-03-09"]
    assert {r["pa_date"] for r in landed.valid} == {"2024-03-09"}
    assert {r["order_date"] for r in landed.valid} == {None}
    assert landed.manifest["landed_at"] == "2024-03-09T04:30:00.000000Z"


def test_header_only_file_lands_nothing(tmp_path: Path) -> None:
    landed = land_text(tmp_path, HEADER + "\r\n\r\n")
    m = landed.manifest
    assert (m["status"], m["rows_in"], m["valid"], m["partitions"]) == ("landed", 0, 0, [])
    assert landed.files("raw") == []
    assert landed.files("rejects") == []
    assert manifest_on_disk(landed) == m


def test_blank_lines_are_rows_and_rejected(tmp_path: Path) -> None:
    data = "\n".join([HEADER, "   ", ",,,,,,,,,,", "", row()]) + "\n"
    landed = land_text(tmp_path, data)
    m = landed.manifest
    assert (m["rows_in"], m["valid"]) == (3, 1)
    assert m["rejected"] == {"missing": 1, "invalid": 1, "duplicate": 0}
    got = [(r["source_line"], r["reason"], r["column"]) for r in landed.rejects]
    assert got == [(2, "invalid", None), (3, "missing", "client_id")]


def test_a_doubled_cr_before_the_lf_is_trimmed_not_a_cr_only_file(tmp_path: Path) -> None:
    # Given lines ended by CR CR LF (some Windows tools): the header's last name is "status\r"
    data = (HEADER + "\r\r\n" + row() + "\r\r\n" + row(order_id="2") + "\r\r\n").encode()
    landed = land_bytes(tmp_path, data, "crcrlf.csv")
    # Then header names and values are trimmed as ever: the file lands whole
    m = landed.manifest
    assert (m["status"], m["rows_in"], m["valid"], m["ignored_columns"]) == ("landed", 2, 2, [])


WHOLE_FILE_FAULTS = [
    (b"", "empty"),
    (b"\n\n\r\n", "no header"),
    (gzip.compress((HEADER + "\n" + row() + "\n").encode(), mtime=0), "gzip"),
    ((HEADER + "\n" + row() + "\n").encode() * 50 + b"1,\xff\xfe,3\n", "UTF-8"),
    ((HEADER + "\n" + row(client_name="Caf\xe9") + "\n").encode("latin-1"), "UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not"),
    (b'{"order_id": 1, "client_id": 2}\n', "lacks required"),
    ((HEADER.replace("status,", "") + "\n").encode(), "lacks required column(s): status"),
    ((HEADER + ", Order_ID \n").encode(), "twice: 'order_id'"),
    ((HEADER + "\n" + row() + '\n2,"open,3\n' + row() + "\n").encode(), "line 3 is still open"),
    ((HEADER + "\r" + row() + "\r").encode(), "CR-only line ends are not supported"),
]


# ids name the expected message: pytest-xdist workers must collect the same ids, and ids
# built from the bytes were unreadable (and, for gzip, held its timestamp)
@pytest.mark.parametrize(
    ("content", "needle"),
    WHOLE_FILE_FAULTS,
    ids=[f"{needle}#{n}" for n, (_, needle) in enumerate(WHOLE_FILE_FAULTS)],
)
def test_whole_file_faults_are_quarantined_byte_for_byte(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    # Given a file that is not an acceptable orders CSV
    landed = land_bytes(tmp_path, content, "bad file.csv")
    m = landed.manifest
    # Then nothing lands, the original is kept byte for byte, and the manifest says why
    assert m["status"] == "quarantined"
    assert needle in m["error"]
    assert (m["rows_in"], m["valid"], m["partitions"]) == (0, 0, [])
    assert m["rejected"] == {"missing": 0, "invalid": 0, "duplicate": 0}
    assert landed.files("raw") == [] and landed.files("rejects") == []
    kept = landed.lake / "quarantine" / m["ingest_id"] / "bad file.csv"
    assert kept.read_bytes() == content
    assert manifest_on_disk(landed) == m
    assert landed.files("_staging") == []


def test_same_object_twice_is_skipped_and_writes_nothing(tmp_path: Path) -> None:
    data = "\n".join([HEADER, row(), row(order_id="2")]) + "\n"
    first = land_text(tmp_path, data)
    before = first.files()
    second = land_text(tmp_path, data)
    assert second.manifest["status"] == "skipped"
    assert second.manifest["ingest_id"] == first.manifest["ingest_id"]
    assert second.files() == before
    assert len(second.valid) == 2


def test_changed_content_under_same_name_is_a_new_version(tmp_path: Path) -> None:
    first = land_text(tmp_path, "\n".join([HEADER, row()]) + "\n")
    second = land_text(tmp_path, "\n".join([HEADER, row(order_date="2024-03-05")]) + "\n")
    assert second.manifest["status"] == "landed"
    assert second.manifest["ingest_id"] != first.manifest["ingest_id"]
    assert sorted(r["pa_date"] for r in second.valid) == ["2024-03-01", "2024-03-05"]
    assert len(list((second.lake / "manifests").glob("*.json"))) == 2
