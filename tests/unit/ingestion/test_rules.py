"""Row rules of CONTRACT.md section 1, checked on ingestion.rules.check (pure, vectorised)."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from ingestion import rules

GOOD = {
    "client_id": "10",
    "client_name": "Homer Simpson",
    "order_id": "7",
    "product_id": "3",
    "product_description": "Duff Beer 6-pack",
    "product_price": "12.50",
    "product_ccf": "4",
    "product_volume": "2.130",
    "point_of_sale_channel": "retail",
    "status": "delivered",
    "order_date": "2024-03-01",
}
TODAY = dt.date(2026, 1, 15)


def check_rows(rows: list[dict[str, str]], with_date: bool = True) -> rules.Checked:
    cols = [c for c in rules.CHECK_ORDER if with_date or c != "order_date"]
    raw = {c: pa.array([r[c] for r in rows], pa.string()) for c in cols}
    return rules.check(raw, TODAY)


def verdict(**changes: str) -> tuple[str, str | None]:
    """(reason, column) for GOOD with some values replaced; ('ok', None) when valid."""
    checked = check_rows([{**GOOD, **changes}])
    reason = int(checked.reason[0])
    if reason == rules.OK:
        return "ok", None
    return rules.REASONS[reason], rules.CHECK_ORDER[int(checked.column[0])]


def test_good_row_is_valid_and_normalised() -> None:
    # Given a row that satisfies every rule, with noise the contract accepts
    row = {
        **GOOD,
        "client_name": "  Homer Simpson ",
        "point_of_sale_channel": " B2b ",
        "status": "DELIVERED ",
        "order_id": " 007 ",
    }
    # When it is checked
    checked = check_rows([row])
    v = checked.values
    # Then it is valid and every value has its contract type and spelling
    assert int(checked.reason[0]) == rules.OK
    assert v["order_id"].to_pylist() == [7]
    assert v["client_name"].to_pylist() == ["Homer Simpson"]
    assert v["point_of_sale_channel"].to_pylist() == ["B2B"]
    assert v["status"].to_pylist() == ["delivered"]
    assert v["product_price"].type == pa.decimal128(12, 2)
    assert v["product_price"].to_pylist() == [decimal.Decimal("12.50")]
    assert v["product_volume"].type == pa.decimal128(10, 3)
    assert v["product_ccf"].type == pa.int32()
    assert v["order_date"].to_pylist() == [dt.date(2024, 3, 1)]
    assert v["pa_date"].to_pylist() == [dt.date(2024, 3, 1)]


def test_derived_totals_are_exact_decimals() -> None:
    # Given prices and volumes whose float products are inexact
    rows = [
        {**GOOD, "product_price": "0.10", "product_ccf": "3", "product_volume": "0.333"},
        {
            **GOOD,
            "product_price": "9999999999.99",
            "product_ccf": "2147483647",
            "product_volume": "9999999.999",
        },
    ]
    # When checked
    v = check_rows(rows).values
    # Then the totals are exact decimals of the contract's types
    assert v["total_amount"].type == pa.decimal128(22, 2)
    assert v["total_liters"].type == pa.decimal128(20, 3)
    assert v["total_amount"].to_pylist() == [
        decimal.Decimal("0.30"),
        decimal.Decimal("9999999999.99") * 2147483647,
    ]
    assert v["total_liters"].to_pylist() == [
        decimal.Decimal("0.999"),
        decimal.Decimal("9999999.999") * 2147483647,
    ]


def test_pa_date_is_landing_date_without_order_date_column() -> None:
    # Given a batch from a file without an order_date column
    checked = check_rows([GOOD, GOOD], with_date=False)
    # Then pa_date is the UTC landing date and order_date is null
    assert checked.values["pa_date"].to_pylist() == [TODAY, TODAY]
    assert checked.values["order_date"].to_pylist() == [None, None]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        # ids: integer > 0 fitting int64; leading zeros fine
        ("order_id", "56x9", "invalid"),
        ("order_id", "1.5", "invalid"),
        ("order_id", "-1", "invalid"),
        ("order_id", "+1", "invalid"),
        ("order_id", "0", "invalid"),
        ("order_id", "000", "invalid"),
        ("order_id", "1e3", "invalid"),
        ("order_id", "1,000", "invalid"),
        ("order_id", "١٢", "invalid"),  # non-ASCII digits
        ("order_id", "9223372036854775807", "ok"),
        ("order_id", "0009223372036854775807", "ok"),
        ("order_id", "9223372036854775808", "invalid"),
        ("client_id", "99999999999999999999", "invalid"),
        ("product_id", "0042", "ok"),
        ("client_id", "   ", "missing"),
        ("order_id", "", "missing"),
        # text columns
        ("client_name", "", "missing"),
        ("product_description", "  \t ", "missing"),
        # price: decimal >= 0, <= 10 integer and 2 decimal digits
        ("product_price", "0", "ok"),
        ("product_price", "0.00", "ok"),
        ("product_price", "1234567890.12", "ok"),
        ("product_price", "00001234567890.12", "ok"),
        ("product_price", "12345678901", "invalid"),
        ("product_price", "1.999", "invalid"),
        ("product_price", "1.500", "invalid"),
        ("product_price", "-1.00", "invalid"),
        ("product_price", "+1.00", "invalid"),
        ("product_price", "1e3", "invalid"),
        ("product_price", "NaN", "invalid"),
        ("product_price", "inf", "invalid"),
        ("product_price", "12,50", "invalid"),
        ("product_price", "1,234.00", "invalid"),
        ("product_price", "$5", "invalid"),
        # ccf: integer > 0 fitting int32
        ("product_ccf", "2.5", "invalid"),
        ("product_ccf", "0", "invalid"),
        ("product_ccf", "-3", "invalid"),
        ("product_ccf", "2147483647", "ok"),
        ("product_ccf", "2147483648", "invalid"),
        ("product_ccf", "007", "ok"),
        # volume: decimal > 0, <= 7 integer and 3 decimal digits
        ("product_volume", "0", "invalid"),
        ("product_volume", "0.000", "invalid"),
        ("product_volume", "0.001", "ok"),
        ("product_volume", "1234567.123", "ok"),
        ("product_volume", "12345678", "invalid"),
        ("product_volume", "1.1234", "invalid"),
        ("product_volume", "NaN", "invalid"),
        ("product_volume", "Infinity", "invalid"),
        ("product_volume", "", "missing"),
        # enums, case- and whitespace-insensitive
        ("point_of_sale_channel", "ONLINE", "ok"),
        ("point_of_sale_channel", " Retail ", "ok"),
        ("point_of_sale_channel", "phone", "invalid"),
        ("point_of_sale_channel", "", "missing"),
        ("status", "Broken", "ok"),
        ("status", "lost", "invalid"),
        ("status", "", "missing"),
        # real calendar dates
        ("order_date", "2024-02-29", "ok"),
        ("order_date", "2023-02-29", "invalid"),
        ("order_date", "2024-02-30", "invalid"),
        ("order_date", "2024-04-31", "invalid"),
        ("order_date", "2024-13-01", "invalid"),
        ("order_date", "2024/03/01", "invalid"),
        ("order_date", "2024-3-1", "invalid"),
        ("order_date", "01-03-2024", "invalid"),
        ("order_date", "2024-03-01T00:00", "invalid"),
        ("order_date", "", "missing"),
    ],
)
def test_value_rules(column: str, value: str, expected: str) -> None:
    # Given a valid row with one value replaced
    # When it is checked
    reason, col = verdict(**{column: value})
    # Then the verdict and the faulty column are what the contract says
    assert reason == expected
    assert col == (None if expected == "ok" else column)


def test_normalised_channel_spellings() -> None:
    # Given every channel in odd case
    rows = [{**GOOD, "point_of_sale_channel": c} for c in ("rEtAiL", "online", "B2B", "b2b")]
    # Then they normalise to the canonical spelling
    assert check_rows(rows).values["point_of_sale_channel"].to_pylist() == [
        "Retail",
        "Online",
        "B2B",
        "B2B",
    ]


def test_missing_wins_over_invalid_and_column_order_decides() -> None:
    # Given rows with several faults
    rows = [
        # invalid order_id, missing status: missing wins even though order_id comes first
        {**GOOD, "order_id": "x", "status": ""},
        # two invalid: client_id comes before order_id in the contract's list
        {**GOOD, "order_id": "x", "client_id": "-1"},
        # two missing: client_name before product_description
        {**GOOD, "product_description": "", "client_name": " "},
        # invalid date and invalid status: status (required list) before order_date
        {**GOOD, "order_date": "2024-02-30", "status": "lost"},
        # missing date and invalid price: missing wins
        {**GOOD, "order_date": "", "product_price": "abc"},
    ]
    checked = check_rows(rows)
    got = [
        (rules.REASONS[int(r)], rules.CHECK_ORDER[int(c)])
        for r, c in zip(checked.reason, checked.column, strict=True)
    ]
    assert got == [
        ("missing", "status"),
        ("invalid", "client_id"),
        ("missing", "client_name"),
        ("invalid", "status"),
        ("missing", "order_date"),
    ]


@pytest.mark.parametrize(
    ("column", "value", "reason", "needle"),
    [
        ("order_id", "56x9", rules.INVALID, "'56x9'"),
        ("order_id", "-1", rules.INVALID, "sign"),
        ("product_price", "1.999", rules.INVALID, "3 decimal digits"),
        ("product_ccf", "0", rules.INVALID, "zero"),
        ("order_date", "2024-02-30", rules.INVALID, "not a real calendar date"),
        ("order_date", "2024/02/03", rules.INVALID, "YYYY-MM-DD"),
        ("status", "lost", rules.INVALID, "created, delivered, broken"),
        ("client_name", " ", rules.MISSING, "empty"),
    ],
)
def test_explain_is_readable(column: str, value: str, reason: int, needle: str) -> None:
    # When a rejected value is explained, the detail names the column and the problem
    detail = rules.explain(column, value, reason)
    assert column in detail
    assert needle in detail


def test_empty_batch_gives_empty_columns() -> None:
    # Given a block whose every record was malformed (no row reaches the rules)
    checked = check_rows([])
    # Then every normalised column is empty and typed
    assert len(checked.reason) == 0
    assert checked.values["total_amount"].type == rules.AMOUNT_TYPE
    assert len(checked.values["total_liters"]) == 0


def test_texts_differing_by_spaces_share_one_dictionary_value() -> None:
    # Given the same client name written with and without surrounding spaces
    rows = [{**GOOD, "client_name": n} for n in ("Homer", " Homer ", "Homer  ", "Marge")]
    names = check_rows(rows).values["client_name"]
    # Then the values are trimmed, and the dictionary holds each distinct name once
    assert names.to_pylist() == ["Homer", "Homer", "Homer", "Marge"]
    assert sorted(names.dictionary.to_pylist()) == ["Homer", "Marge"]
