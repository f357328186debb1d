"""Where Trino (Athena engine 3) and DuckDB disagree, the Athena twin answers as Trino does.

Each case is a Trino query and the value Trino returns (Trino's documentation: "Mathematical
functions and operators" for division, "Aggregate functions" for sum's types, "Date and time"
for timestamp(p), "ORDER BY clause" for NULLS LAST, "Binary functions" for md5/to_hex), run
through the twin's engine with no table, so no AWS endpoint is needed. A case fails if the
twin ran plain DuckDB semantics: that is what each asserts against.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from tests.athena_twin import trino
from tests.athena_twin.engine import AthenaTwin, WorkGroup, format_value


@pytest.fixture(scope="module")
def twin() -> AthenaTwin:
    return AthenaTwin("http://127.0.0.1:9", [WorkGroup("primary", "s3://results/", False)])


def run(twin: AthenaTwin, sql: str):
    ex = twin.start(sql, "default", "primary", None)
    assert ex.state == "SUCCEEDED", ex.reason
    return ex


def test_integer_division_truncates_toward_zero(twin):
    # Trino: 7 / 2 = 3 and -7 / 2 = -3 (bigint); plain DuckDB answers 3.5 and -3.5
    ex = run(twin, "select 7 / 2 as a, -7 / 2 as b, cast(7 as bigint) / 2 as c")
    assert ex.rows == [(3, -3, 3)]
    assert duckdb.sql("select 7 / 2").fetchone()[0] == 3.5  # what the twin corrects


def test_decimal_division_keeps_decimals(twin):
    ex = run(twin, "select cast(7 as decimal(10, 2)) / 2 as a")
    assert ex.rows[0][0] == Decimal("3.5")


def test_sum_of_decimals_is_decimal_38_with_the_same_scale(twin):
    # Trino: sum(decimal(p, s)) is decimal(38, s)
    ex = run(
        twin,
        "select sum(x) as total from (values cast(1.25 as decimal(12, 2)), "
        "cast(2.50 as decimal(12, 2))) as t(x)",
    )
    assert trino.trino_type(ex.columns[0][1]) == ("decimal", 38, 2)
    assert ex.rows == [(Decimal("3.75"),)]
    assert format_value(ex.rows[0][0], ex.columns[0][1]) == {"VarCharValue": "3.75"}


def test_sum_of_integers_is_a_bigint(twin):
    # Trino: sum(integer) and sum(bigint) are bigint; DuckDB's are HUGEINT
    ex = run(twin, "select sum(x) as total from (values 1, 2, 3) as t(x)")
    assert ex.columns == [("total", "BIGINT")]
    assert ex.rows == [(6,)]


def test_timestamp_is_milliseconds_and_timestamp6_microseconds(twin):
    # Trino: `timestamp` is timestamp(3); timestamp(6) keeps microseconds
    ex = run(
        twin,
        "select cast(timestamp '2024-03-01 10:00:00.123456' as timestamp) as ms, "
        "cast(timestamp '2024-03-01 10:00:00.123456' as timestamp(6)) as us",
    )
    (ms_type, us_type) = (t for _, t in ex.columns)
    assert trino.trino_type(ms_type)[:2] == ("timestamp", 3)
    assert trino.trino_type(us_type)[:2] == ("timestamp", 6)
    assert ex.rows[0][1] == dt.datetime(2024, 3, 1, 10, 0, 0, 123456)
    assert ex.rows[0][0].microsecond == 123000
    # and Athena's result set prints them with their own precision
    assert format_value(ex.rows[0][0], ms_type) == {"VarCharValue": "2024-03-01 10:00:00.123"}
    assert format_value(ex.rows[0][1], us_type) == {"VarCharValue": "2024-03-01 10:00:00.123456"}


def test_nulls_sort_last_in_both_directions(twin):
    # Trino: NULLS LAST is the default for ASC and for DESC
    asc = run(twin, "select x from (values 2, null, 1) as t(x) order by x")
    desc = run(twin, "select x from (values 2, null, 1) as t(x) order by x desc")
    assert [r[0] for r in asc.rows] == [1, 2, None]
    assert [r[0] for r in desc.rows] == [2, 1, None]


def test_md5_of_utf8_as_hex_is_dbt_athenas_hash(twin):
    # dbt-athena's hash(): lower(to_hex(md5(to_utf8(x)))); Trino's to_hex is upper case
    ex = run(
        twin,
        "select lower(to_hex(md5(to_utf8('1')))) as lower_hex, to_hex(md5(to_utf8('1'))) as hex",
    )
    assert ex.rows == [("c4ca4238a0b923820dcc509a6f75849b", "C4CA4238A0B923820DCC509A6F75849B")]


def test_what_the_twin_cannot_model_is_refused(twin):
    # Iceberg time travel and metadata tables need snapshots the twin does not keep
    for sql in (
        'select * from "db"."t" for version as of 1',
        'select * from "db"."t$snapshots"',
    ):
        ex = twin.start(sql, "default", "primary", None)
        assert ex.state == "FAILED"
        assert ex.reason.startswith("ATHENA TWIN REFUSES"), ex.reason


def test_at_timezone_is_at_time_zone(twin):
    # Trino: at_timezone(ts, zone) is ts AT TIME ZONE zone (the twin stores views' SQL with
    # the function form, as sqlglot writes it); a UTC instant read back as a UTC wall time
    ex = run(
        twin,
        "select cast(at_timezone(from_iso8601_timestamp_nanos('2024-03-01T10:00:00.123456+02:00'),"
        " 'UTC') as timestamp(6)) as a",
    )
    assert ex.rows == [(dt.datetime(2024, 3, 1, 8, 0, 0, 123456),)]
