"""The local backend's pre-rendered order JSON: exact, and held in 64-bit-offset text."""

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa

from api.backends.local import LocalBackend
from api.fake_marts import make_orders, write_build
from api.service import ORDER_COLUMNS, OrderFilter


def test_order_json_is_large_string_and_matches_the_rows(tmp_path):
    # Given a build of 300 orders
    orders = make_orders(300, clients=7, products=4, days=5, seed=3)
    write_build(tmp_path, orders, built_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC), build_id="b")
    backend = LocalBackend(tmp_path)
    backend.refresh()
    snap = backend.snapshot()
    # When every order is rendered by the pre-rendered path and by the row path
    everything = OrderFilter()
    pairs = snap.orders_json_page(everything, None, 1000)
    rows = snap.orders_page(everything, None, 1000)
    # Then the text column has 64-bit offsets (10 M orders are over 2 GB of JSON, beyond
    # what a plain string array holds: ArrowCapacityError) ...
    assert snap._order_json.type == pa.large_string()
    assert len(pairs) == len(rows) == 300
    # ... and each item is the row's values, exactly
    for (order_id, text), row in zip(pairs, rows, strict=True):
        item = json.loads(text, parse_float=Decimal)
        assert order_id == row[0] == item["order_id"]
        assert list(item) == list(ORDER_COLUMNS)
        for name, value in zip(ORDER_COLUMNS, row, strict=True):
            assert str(item[name]) == str(value), name
