"""Section 6: each event is judged by the section 1 row rules, by the text of its values."""

from __future__ import annotations

import datetime as dt

import pytest

from realtime.events import judge
from tests.unit.realtime.helpers import Raw, event, records


def _one(data: bytes):
    judged = judge(records([data]))
    if judged.rejected:
        r = judged.rejected[0]
        return r.reason, r.column, r.detail
    return "ok", None, judged.values


@pytest.mark.parametrize(
    ("changes", "reason", "column"),
    [
        ({"product_price": Raw("2.500")}, "invalid", "product_price"),  # three decimals as written
        ({"product_price": "2.500"}, "invalid", "product_price"),
        ({"product_ccf": Raw("1e3")}, "invalid", "product_ccf"),  # an exponent is not plain digits
        ({"product_ccf": -1}, "invalid", "product_ccf"),
        ({"product_ccf": None}, "missing", "product_ccf"),
        ({"product_ccf": ""}, "missing", "product_ccf"),
        ({"product_ccf": ...}, "missing", "product_ccf"),  # key absent
        ({"client_id": True}, "invalid", "client_id"),
        ({"client_name": False}, "invalid", "client_name"),  # any text is fine, a bool is not
        ({"product_description": ["Duff"]}, "invalid", "product_description"),
        ({"status": {"s": "created"}}, "invalid", "status"),
        ({"status": "shipped"}, "invalid", "status"),
        ({"order_date": "2024-02-30"}, "invalid", "order_date"),
        ({"order_date": None}, "missing", "order_date"),
        # missing before invalid, whatever the column order
        ({"client_id": "x", "status": None}, "missing", "status"),
        # several invalid: the first in the required-column order
        ({"status": "x", "client_id": True}, "invalid", "client_id"),
    ],
)
def test_rule_faults_name_the_column(changes, reason, column):
    # Given an event breaking one rule; When judged; Then it is rejected as the CSV row would be
    got = _one(event(7, **changes))
    assert got[:2] == (reason, column)


def test_values_are_trimmed_normalised_and_keys_matched_like_headers():
    # Given keys in any case with spaces, and values with spaces and odd case
    data = (
        b'{" ORDER_ID ": " 007 ", "Client_Id": 10, "client_name": " Moe ", "product_id": 5,'
        b' "product_description": "Duff", "product_price": "2.50", "product_ccf": "004",'
        b' "product_volume": 0.5, "point_of_sale_channel": "B2b", "status": "DELIVERED",'
        b' "promo": 1, "order_date": " 2024-03-01 "}'
    )
    judged = judge(records([data]))
    assert judged.rejected == []
    v = {k: a.to_pylist()[0] for k, a in judged.values.items()}
    assert v["order_id"] == 7 and v["client_name"] == "Moe" and v["product_ccf"] == 4
    assert (v["point_of_sale_channel"], v["status"]) == ("B2B", "delivered")
    assert str(v["total_amount"]) == "10.00" and str(v["total_liters"]) == "2.000"
    assert v["pa_date"] == dt.date(2024, 3, 1) == v["order_date"]
    assert judged.ignored == ["promo"]


def test_without_order_date_pa_date_is_the_receipt_date_and_order_date_stays_null():
    at = dt.datetime(2024, 5, 1, 23, 59, 59, 999000, tzinfo=dt.UTC)
    judged = judge(records([event(1), event(2, order_date="2024-01-02")], at=at))
    # the first arrives at 23:59:59.999 + 1 ms = the next day
    assert judged.values["pa_date"].to_pylist() == [dt.date(2024, 5, 2), dt.date(2024, 1, 2)]
    assert judged.values["order_date"].to_pylist() == [None, dt.date(2024, 1, 2)]


def test_a_key_given_twice_is_invalid():
    twice = b'{"order_id": 1, "order_id": 1}'
    assert _one(twice)[:2] == ("missing", "client_id")  # missing still comes first
    body = event(1)[:-1] + b', "STATUS": "created"}'
    assert _one(body)[:2] == ("invalid", "status")
    unknown = event(1)[:-1] + b', "x": 1, "x ": 2}'
    assert _one(unknown)[:2] == ("invalid", None)


@pytest.mark.parametrize(
    ("data", "raw"),
    [
        (b"not json", "not json"),
        (b"[1, 2]", "[1, 2]"),
        (b"[]", "[]"),
        (b'"text"', '"text"'),
        (b"NaN", "NaN"),
        (b'{"order_id": 1', '{"order_id": 1'),
        (b'{"a": "caf\xe9"}', '{"a": "caf\\xe9"}'),
    ],
)
def test_whole_event_faults_keep_the_event_as_received(data, raw):
    judged = judge(records([data, event(9)]))
    # Then the bad event is one rejected row and the next event is still valid (no poison pill)
    assert [(r.index, r.reason, r.column) for r in judged.rejected] == [(0, "invalid", None)]
    assert judged.valid.tolist() == [1]
    from realtime.events import raw_text

    assert raw_text(data) == raw


def test_a_lone_surrogate_is_rejected_not_raised():
    judged = judge(records([event(1, client_name="\ud800x"), event(2)]))
    assert [(r.index, r.column) for r in judged.rejected] == [(0, "client_name")]
    assert judged.valid.tolist() == [1]
