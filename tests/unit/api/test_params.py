import datetime as dt

import pytest

from api.errors import ApiError
from api.params import parse_date, parse_id, parse_limit
from api.routes import _enum_parser

# the enum filters the served marts' accepted_values declare (api/routes.py)
parse_status = _enum_parser("status", ("created", "delivered", "broken"))
parse_channel = _enum_parser("channel", ("Retail", "Online", "B2B"))


@pytest.mark.parametrize("raw,expected", [("1", 1), ("007", 7), (str(2**63 - 1), 2**63 - 1)])
def test_ids_accept_positive_int64(raw, expected):
    # Given a well-formed id / When parsed / Then it is that integer
    assert parse_id("client_id", raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["abc", "0", "-1", "+1", "1.5", "1e3", " 1", "", str(2**63), "١٢", "9" * 30, "5968\n", "1\r\n"],
)
def test_ids_refuse_anything_else_with_400(raw):
    # Given a malformed id / When parsed / Then a 400 naming the parameter
    with pytest.raises(ApiError) as err:
        parse_id("client_id", raw)
    assert err.value.status == 400
    assert "client_id" in err.value.message


@pytest.mark.parametrize(
    "raw", ["0", "1001", "-5", "abc", "10.0", "99999999999999999999", "1\n", "10\n\n"]
)
def test_limit_outside_1_to_1000_is_400(raw):
    with pytest.raises(ApiError) as err:
        parse_limit(raw)
    assert err.value.status == 400


def test_limit_bounds_are_inclusive():
    assert parse_limit("1") == 1
    assert parse_limit("1000") == 1000


@pytest.mark.parametrize(
    "raw", ["2024-02-30", "2023-02-29", "2024-13-01", "2024-1-01", "20240101", "2024-02-01\n"]
)
def test_impossible_or_malformed_dates_are_400(raw):
    with pytest.raises(ApiError) as err:
        parse_date("from", raw)
    assert err.value.status == 400


def test_real_dates_parse():
    assert parse_date("to", "2024-02-29") == dt.date(2024, 2, 29)


@pytest.mark.parametrize(
    "raw,canon", [("DELIVERED", "delivered"), ("Broken", "broken"), ("created", "created")]
)
def test_status_is_case_insensitive_and_canonical(raw, canon):
    assert parse_status(raw) == canon


@pytest.mark.parametrize("raw,canon", [("b2b", "B2B"), ("RETAIL", "Retail"), ("online", "Online")])
def test_channel_is_case_insensitive_and_canonical(raw, canon):
    assert parse_channel(raw) == canon


@pytest.mark.parametrize(
    "raw", ["shipped", "' or 1=1 --", "B2C", "broken\n", "\tB2B", "Online\x0b"]
)
def test_unknown_status_or_channel_is_400(raw):
    # (surrounding spaces are ignored, other whitespace is not)
    with pytest.raises(ApiError):
        parse_status(raw)
    with pytest.raises(ApiError):
        parse_channel(raw)


def test_surrounding_spaces_are_ignored():
    assert parse_status(" Delivered  ") == "delivered"
    assert parse_channel(" b2b") == "B2B"
