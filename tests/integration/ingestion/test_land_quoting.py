"""Strict quoting when landing (CONTRACT.md section 1): never repaired, one row lost at most."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.ingestion.landing_helpers import HEADER, land_text, row


def test_a_lone_quote_rejects_its_row_and_reading_resumes_on_the_next_line(
    tmp_path: Path,
) -> None:
    # Given "Du"ff" as a product description on line 3, a lone quote inside a quoted field
    # that spans lines 4-5, a name written Moe"s (a quote inside an unquoted field), an empty
    # line first and good rows after each
    lines = [
        "",
        HEADER,
        row(order_id="1"),
        row(order_id="2", product_description='"Du"ff"'),
        row(order_id="3", client_name='"Barney\nGum"ble"', product_price="-1"),
        row(order_id="4", client_name='Moe"s'),
        row(order_id="5", client_name='"Simpson, ""Homer"""'),
    ]
    landed = land_text(tmp_path, "\n".join(lines) + "\n")
    m = landed.manifest
    # Then the header is line 2 (the first non-empty one); both malformed rows are invalid
    # whatever else is wrong with them, and the rows after them keep their physical lines
    assert (m["status"], m["rows_in"], m["valid"]) == ("landed", 5, 3)
    assert m["rejected"] == {"missing": 0, "invalid": 2, "duplicate": 0}
    assert [(r["order_id"], r["source_line"], r["client_name"]) for r in landed.valid] == [
        (1, 3, "Homer"),
        (4, 7, 'Moe"s'),
        (5, 8, 'Simpson, "Homer"'),
    ]
    by_line = {r["source_line"]: r for r in landed.rejects}
    assert sorted(by_line) == [4, 5]
    du = by_line[4]
    assert (du["reason"], du["column"]) == ("invalid", "product_description")
    assert "malformed quoting" in du["detail"]
    assert json.loads(du["raw_values"]) == [
        "2",
        "10",
        "Homer",
        "3",
        '"Du"ff",1.50,2,0.355,retail,delivered,2024-03-01',
    ]
    barney = by_line[5]
    assert (barney["reason"], barney["column"]) == ("invalid", "client_name")
    assert json.loads(barney["raw_values"])[2].startswith('"Barney\nGum"ble"')


def test_a_lone_quote_beyond_the_header_has_no_column(tmp_path: Path) -> None:
    # Given a row with one field more than the header, that field quoted with a lone quote
    landed = land_text(tmp_path, "\n".join([HEADER, row() + ',"x"y', row(order_id="2")]) + "\n")
    # Then the row is invalid for its quoting, with no column; the next row lands
    (reject,) = landed.rejects
    assert (reject["source_line"], reject["column"]) == (2, None)
    assert "malformed quoting" in reject["detail"]
    assert [r["order_id"] for r in landed.valid] == [2]
