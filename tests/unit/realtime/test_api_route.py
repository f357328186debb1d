"""GET /realtime/summary through the API core: no dbt build needed, key required, 400s."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from api.app import App, Request
from api.settings import Settings
from realtime.events import judge, latest_orders
from realtime.sqlite_store import Checkpoint, SqliteStore, store_path
from tests.unit.realtime.helpers import event, records

KEY = "rt-unit-key"


class NoBuild:
    """A backend with no build of the marts at all."""

    def snapshot(self):
        return None

    def close(self):
        pass


@pytest.fixture
def app(tmp_path):
    a = App(Settings(api_key=KEY, backend="local", lake=str(tmp_path)), NoBuild())
    yield a
    a.close()


def get(app, path, query=(), key=KEY):
    headers = {"x-api-key": key} if key else {}
    return app.handle(Request("GET", path, tuple(query), headers))


def test_summary_answers_without_a_build_and_moves_with_the_store(app, tmp_path):
    today = dt.datetime.now(dt.UTC).date()
    # Given no store yet: zeros, empty lists, nulls
    r = get(app, "/realtime/summary")
    assert r.status == 200
    assert r.json() == {
        "pa_date": today.isoformat(),
        "as_of": None,
        "last_event_at": None,
        "orders": 0,
        "units": 0,
        "liters": 0.0,
        "revenue": 0.0,
        "by_channel": [],
        "by_status": [],
    }
    # When events are applied
    store = SqliteStore(store_path(str(tmp_path)))
    recs = records(
        [
            event(1, order_date="2024-03-01", product_price="1.10", product_ccf=3),
            event(2, order_date="2024-03-01", point_of_sale_channel="b2b", status="broken"),
        ]
    )
    store.apply(latest_orders(recs, judge(recs)), Checkpoint("shard-0000", 3, 0))
    store.close()
    r = get(app, "/realtime/summary", [("date", "2024-03-01")])
    body = json.loads(r.body)
    # Then money has two decimals and litres three, as JSON numbers
    assert b'"revenue":13.30' in r.body.replace(b" ", b"")
    assert b'"liters":3.500' in r.body.replace(b" ", b"")
    assert body["orders"] == 2 and body["units"] == 7
    assert [c["channel"] for c in body["by_channel"]] == ["B2B", "Retail"]
    assert [(s["status"], s["orders"]) for s in body["by_status"]] == [
        ("broken", 1),
        ("created", 1),
    ]
    assert body["last_event_at"] == "2024-05-01T12:00:00.002000Z"
    assert body["as_of"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "key", "status"),
    [
        ([("date", "2024-02-30")], KEY, 400),
        ([("date", "2024-3-1")], KEY, 400),
        ([("day", "2024-03-01")], KEY, 400),
        ([("date", "2024-03-01")], None, 403),
        ([("date", "2024-03-01")], "wrong", 403),
    ],
)
def test_bad_requests(app, query, key, status):
    r = get(app, "/realtime/summary", query, key)
    assert r.status == status
    assert set(r.json()["error"]) == {"code", "message"}


def test_the_route_is_in_the_openapi_document(app):
    doc = get(app, "/openapi.json", key=None).json()
    op = doc["paths"]["/realtime/summary"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["date"]
    assert {"200", "400", "403"} <= set(op["responses"])
    assert "by_channel" in doc["components"]["schemas"]["RealtimeSummary"]["properties"]
