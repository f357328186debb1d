"""Every route of a live server (uvicorn on 127.0.0.1) against numbers computed from the orders."""

from urllib.parse import urlencode


def walk(client, path, params, limit):
    """All items of a paged route, following next_cursor; checks the paging invariants."""
    items, cursor, pages = [], None, 0
    while True:
        query = dict(params, limit=limit)
        if cursor:
            query["cursor"] = cursor
        status, body = client.get(f"{path}?{urlencode(query)}")
        assert status == 200, body
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert len(body["items"]) == limit  # no short page before the last


def test_health(api_it_client):
    status, body = api_it_client.get("/health", key=None)
    assert status == 200
    assert body["status"] == "ok"
    assert body["data_as_of"] == "2024-04-02T05:58:01Z"


def test_clients_walk_every_client_once_in_spend_order(api_it_client, api_it_world):
    # Given the expected clients ordered by spend desc then client_id (with exact ties)
    expected = api_it_world["expected"]["clients"]
    # When walking /clients with a page size that splits the tie groups
    items, pages = walk(api_it_client, "/clients", {}, 7)
    # Then every client appears exactly once, in order, with exact numbers
    assert [c["client_id"] for c in items] == [c["client_id"] for c in expected]
    assert pages == -(-len(expected) // 7)
    assert items == expected
    tie = [c["client_id"] for c in items if c["total_spend"] == 10]
    assert tie == [900_001, 900_002]


def test_top_product_ties(api_it_client):
    _s, c4 = api_it_client.get("/clients/900004")
    _s, c5 = api_it_client.get("/clients/900005")
    assert c4["top_product"]["product_id"] == 2  # same units, higher spend
    assert c5["top_product"]["product_id"] == 2  # same units and spend, lower product_id


def test_one_client_and_its_orders(api_it_client, api_it_world):
    expected = api_it_world["expected"]
    some = expected["clients"][3]
    status, body = api_it_client.get(f"/clients/{some['client_id']}")
    assert status == 200 and body == some
    items, _ = walk(api_it_client, f"/clients/{some['client_id']}/orders", {}, 9)
    assert items == [o for o in expected["orders"] if o["client_id"] == some["client_id"]]
    assert len(items) == some["orders"]


def test_orders_unfiltered_walk(api_it_client, api_it_world):
    items, pages = walk(api_it_client, "/orders", {}, 1000)
    assert items == api_it_world["expected"]["orders"]
    assert pages == 4  # 3007 orders


def test_orders_filtered_walk(api_it_client, api_it_world):
    # Given filters in mixed case / When walked / Then exactly the matching orders
    params = {"status": "DELIVERED", "channel": "b2b", "from": "2024-03-02", "to": "2024-03-09"}
    items, _ = walk(api_it_client, "/orders", params, 13)
    expected = [
        o
        for o in api_it_world["expected"]["orders"]
        if o["status"] == "delivered"
        and o["channel"] == "B2B"
        and "2024-03-02" <= o["pa_date"] <= "2024-03-09"
    ]
    assert items == expected and len(expected) > 13


def test_orders_by_client_and_product(api_it_client, api_it_world):
    o = api_it_world["expected"]["orders"][100]
    params = {"client_id": o["client_id"], "product_id": o["product_id"]}
    items, _ = walk(api_it_client, "/orders", params, 2)
    assert items == [
        x
        for x in api_it_world["expected"]["orders"]
        if x["client_id"] == o["client_id"] and x["product_id"] == o["product_id"]
    ]


def test_aggregates(api_it_client, api_it_world):
    e = api_it_world["expected"]
    assert api_it_client.get("/products") == (200, {"items": e["products"]})
    assert api_it_client.get("/sales/by-channel") == (200, {"items": e["channels"]})
    assert api_it_client.get("/sales/by-product-channel") == (
        200,
        {"items": e["product_channels"]},
    )
    assert api_it_client.get("/status-summary") == (200, {"items": e["statuses"]})
    assert api_it_client.get("/sales/daily") == (200, {"items": e["daily"]})
    window = [d for d in e["daily"] if "2024-03-05" <= d["pa_date"] <= "2024-03-07"]
    assert api_it_client.get("/sales/daily?from=2024-03-05&to=2024-03-07") == (
        200,
        {"items": window},
    )


def test_money_and_litres_are_numbers_with_fixed_decimals(api_it_world):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", api_it_world["server"].port)
    conn.request("GET", "/orders?limit=1", headers={"x-api-key": "integration-key-7f3a"})
    raw = conn.getresponse().read().decode()
    conn.close()
    import re

    assert re.search(r'"unit_price":\d+\.\d{2}[,}]', raw)
    assert re.search(r'"liters":\d+\.\d{3}[,}]', raw)
    assert re.search(r'"order_id":\d+,', raw)


def test_errors_over_http(api_it_client):
    assert api_it_client.get("/clients")[0] == 200
    assert api_it_client.get("/clients", key=None)[0] == 403
    assert api_it_client.get("/clients", key="wrong")[0] == 403
    assert api_it_client.get("/clients/abc")[0] == 400
    assert api_it_client.get("/clients/12345678")[0] == 404
    assert api_it_client.get("/orders?limit=1001")[0] == 400
    assert api_it_client.get("/orders?from=2024-02-30")[0] == 400
    assert api_it_client.get("/orders?status=%ff")[0] == 400
    assert api_it_client.get("/orders?cursor=eyJmIjoiIn0.AAAA")[0] == 400
    assert api_it_client.get("/does-not-exist")[0] == 404
    status, body = api_it_client.get("/orders?channel=nope")
    assert status == 400 and body["error"]["code"] == "invalid_parameter"
