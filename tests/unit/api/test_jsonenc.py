import datetime as dt
import json
from decimal import Decimal

from api.jsonenc import decimal_num, dumps, iso_utc


def test_decimals_are_exact_json_numbers_rounded_half_up():
    # Given money and litres beyond float precision / When encoded
    body = dumps(
        {
            "a": decimal_num(Decimal("12345678901234567890.125"), 2),
            "b": decimal_num(Decimal("0.0005"), 3),
            "c": decimal_num(Decimal("7"), 2),
        }
    )
    # Then the text is the exact rounded decimal, and it parses as numbers
    assert body == b'{"a":12345678901234567890.13,"b":0.001,"c":7.00}'
    parsed = json.loads(body, parse_float=Decimal)
    assert parsed["a"] == Decimal("12345678901234567890.13")


def test_strings_are_escaped():
    assert json.loads(dumps({"n": 'a"b\\c\u00fc\x00'})) == {"n": 'a"b\\c\u00fc\x00'}


def test_timestamps_are_utc_with_z():
    aware = dt.datetime(2024, 3, 8, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert iso_utc(aware) == "2024-03-08T10:00:00Z"
    assert iso_utc(dt.datetime(2024, 3, 8, 10, 0, 0, 5)) == "2024-03-08T10:00:00.000005Z"
