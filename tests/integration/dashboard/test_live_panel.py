"""The dashboard's live panel in headless Chromium: send events, see the panel change by
itself (no reload, no click), with its as_of; the figures are the API's and the test's own."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ingestion.lake import LocalLake, NullCatalog
from ingestion.settings import Settings as IngestSettings
from realtime.consumer import Consumer
from realtime.localstream import LocalStream
from realtime.settings import Settings
from realtime.sqlite_store import SqliteStore, store_path
from tests.integration.dashboard.conftest import running_api, write_marts

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

READ_LIVE = """(() => {
  const rows = (id) => [...document.querySelectorAll(`#${id} tr`)].map((tr) =>
      Object.fromEntries([...tr.children].map((c) => [c.dataset.key, c.dataset.value])));
  const v = (id) => document.getElementById(id).dataset.value;
  return {
    state: document.getElementById("panel-live").dataset.state,
    day: document.getElementById("panel-live").dataset.day,
    orders: v("live-orders"), revenue: v("live-revenue"), liters: v("live-liters"),
    revenueText: document.getElementById("live-revenue").textContent,
    asOf: document.getElementById("live-as-of").dataset.value,
    asOfText: document.getElementById("live-as-of").textContent,
    msg: document.getElementById("live-msg").textContent,
    splitsShown: !document.querySelector("#panel-live .live-splits").hidden,
    channels: rows("live-channels-body"), statuses: rows("live-status-body"),
  };
})()"""


def _event(order_id: int, channel: str, status: str, price: str, units: int) -> bytes:
    return json.dumps(
        {
            "order_id": order_id,
            "client_id": 1,
            "client_name": "Moe",
            "product_id": 1,
            "product_description": "Duff",
            "product_price": price,
            "product_ccf": units,
            "product_volume": "0.5",
            "point_of_sale_channel": channel,
            "status": status,
        }
    ).encode()


def test_the_live_panel_moves_by_itself_when_events_arrive(dashboard_data, tmp_path, browser_tab):
    lake = tmp_path / "lake"
    write_marts(lake, dashboard_data)
    stream = LocalStream(lake / "stream", "orders", shards=2)
    store = SqliteStore(store_path(str(lake)))
    consumer = Consumer(
        stream,
        store,
        LocalLake(lake),
        NullCatalog(),
        Settings(lake=str(lake)),
        IngestSettings(lake=str(lake)),
    )
    with running_api(lake, dashboard_data) as server:
        page = browser_tab()
        page.goto(f"{server.url}/#key={server.api_key}")
        # Given no event yet: zeros, and the page says so
        page.wait_for("document.getElementById('panel-live').dataset.state === 'ready'")
        empty = page.evaluate(READ_LIVE)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert (empty["day"], empty["orders"], empty["asOf"]) == (today, "0", "")
        assert "No orders on the stream" in empty["msg"]
        assert not empty["splitsShown"]  # no empty tables under that line

        # When events are sent and consumed (one re-sent, one bad)
        stream.put(
            [
                _event(1, "retail", "created", "1.25", 4),
                _event(2, "b2b", "delivered", "10.00", 2),
                _event(1, "online", "created", "1.25", 8),  # a re-send replaces order 1
                b"{not json",
            ]
        )
        consumer.apply_once()
        # Then the panel changes by itself within its refresh interval
        page.wait_for("document.getElementById('live-orders').dataset.value === '2'", timeout=15)
        live = page.evaluate(READ_LIVE)
        assert Decimal(live["revenue"]) == Decimal("1.25") * 8 + Decimal("10.00") * 2
        assert live["revenueText"] == "30.00"
        assert Decimal(live["liters"]) == Decimal("5.000")
        assert [(c["channel"], c["orders"]) for c in live["channels"]] == [
            ("B2B", "1"),
            ("Online", "1"),
        ]
        assert [(s["status"], s["orders"]) for s in live["statuses"]] == [
            ("created", "1"),
            ("delivered", "1"),
        ]
        assert live["asOf"].startswith(today) and "as of" in live["asOfText"]
        assert live["splitsShown"]
        # and it shows exactly what the API answers
        api = server.get("/realtime/summary").json()
        assert (api["orders"], api["as_of"]) == (2, live["asOf"])
    store.close()
