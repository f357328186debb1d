"""Routing, auth, validation and error bodies of the core app (CONTRACT.md section 4)."""

import json
import logging

import pytest

from api.app import App, Request

API_UNIT_KEY = "unit-test-key-0123456789"  # as in conftest.py


def _error(resp, status, code):
    assert resp.status == status, resp.body
    body = json.loads(resp.body)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert resp.headers["content-type"] == "application/json"


DATA_ROUTES = [
    "/clients",
    "/clients/13",
    "/clients/13/orders",
    "/orders",
    "/products",
    "/sales/by-channel",
    "/sales/by-product-channel",
    "/status-summary",
    "/sales/daily",
]


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_data_routes_need_the_key(api_get, path):
    # Given no key, a wrong key, and a key of another length / When a data route is asked
    # Then 403 forbidden with the error body
    _error(api_get(path, key=None), 403, "forbidden")
    _error(api_get(path, key=API_UNIT_KEY[:-1] + "X"), 403, "forbidden")
    _error(api_get(path, key=""), 403, "forbidden")
    assert api_get(path).status in (200, 404)


@pytest.mark.parametrize("path", ["/health", "/openapi.json"])
def test_open_routes_need_no_key(api_get, path):
    assert api_get(path, key=None).status == 200


def test_the_key_is_never_logged(api_get, caplog):
    # Given logs at DEBUG / When requests with right and wrong keys are served
    caplog.set_level(logging.DEBUG)
    api_get("/clients")
    api_get("/clients", key="wrong-key-value")
    # Then neither key appears in any log record
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert API_UNIT_KEY not in text and "wrong-key-value" not in text


def test_health_reports_data_as_of_and_cache(api_get):
    body = api_get("/health", key=None).json()
    assert body["status"] == "ok"
    assert body["data_as_of"] == "2024-04-01T11:59:30Z"
    assert body["build_id"] == "unit-build-1"
    assert {"hits", "misses"} <= set(body["cache"])


def test_unknown_route_is_404(api_get):
    for path in ("/nope", "/clients/13/orders/1", "/clients/", "//clients", "/Clients", "/static/"):
        _error(api_get(path), 404, "not_found")


def test_unknown_but_well_formed_id_is_404(api_get):
    _error(api_get("/clients/999999"), 404, "not_found")
    _error(api_get("/clients/999999/orders"), 404, "not_found")


@pytest.mark.parametrize(
    "path,query",
    [
        ("/clients/abc", ()),
        ("/clients/0", ()),
        ("/clients/-1", ()),
        ("/clients/99999999999999999999", ()),
        ("/clients/1%20or%201=1", ()),
        ("/clients", (("limit", "0"),)),
        ("/clients", (("limit", "1001"),)),
        ("/clients", (("limit", ""),)),
        ("/clients", (("limit", "10"), ("limit", "20"))),
        ("/orders", (("status", "shipped"),)),
        ("/orders", (("channel", "' or ''='"),)),
        ("/orders", (("from", "2024-02-30"),)),
        ("/orders", (("from", "2024-03-05"), ("to", "2024-03-04"))),
        ("/sales/daily", (("from", "2024-03-05"), ("to", "2024-03-04"))),
        ("/orders", (("client_id", "x"),)),
        ("/orders", (("product_id", "1.0"),)),
    ],
)
def test_malformed_values_are_400(api_get, path, query):
    _error(api_get(path, query), 400, "invalid_parameter")


def test_unknown_query_parameter_is_400(api_get):
    _error(api_get("/orders", (("chanel", "B2B"),)), 400, "unknown_parameter")
    _error(api_get("/products", (("limit", "5"),)), 400, "unknown_parameter")


def test_foreign_cursor_is_400(api_get):
    _error(api_get("/orders", (("cursor", "abc.def"),)), 400, "invalid_cursor")
    # a real cursor of /orders is refused on /clients and with other filters
    cursor = api_get("/orders", (("limit", "2"),)).json()["next_cursor"]
    _error(api_get("/clients", (("cursor", cursor),)), 400, "invalid_cursor")
    _error(api_get("/orders", (("cursor", cursor), ("status", "broken"))), 400, "invalid_cursor")
    assert api_get("/orders", (("cursor", cursor), ("limit", "7"))).status == 200


def test_methods_other_than_get_are_405_with_allow(api_get):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        resp = api_get("/clients", method=method)
        _error(resp, 405, "method_not_allowed")
        assert resp.headers["allow"] == "GET, HEAD"
    _error(api_get("/nope", method="POST"), 404, "not_found")


def test_head_is_get_without_body(api_get):
    get = api_get("/products")
    head = api_get("/products", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(get.body))


def test_case_insensitive_filters_answer_in_canonical_spelling(api_get):
    items = api_get("/orders", (("status", "DELIVERED"), ("channel", "b2b"))).json()["items"]
    assert items
    assert {i["status"] for i in items} == {"delivered"}
    assert {i["channel"] for i in items} == {"B2B"}


def test_unexpected_errors_are_500_without_trace(api_unit_app, caplog):
    # Given a backend that blows up
    class Boom:
        def snapshot(self):
            raise RuntimeError("secret internals /etc/passwd")

        def close(self):
            pass

    app = App(api_unit_app.settings, Boom())
    resp = app.handle(Request("GET", "/products", (), {"x-api-key": API_UNIT_KEY}))
    # Then a plain 500 error body, the details only in the server log
    _error(resp, 500, "internal")
    assert b"secret internals" not in resp.body and b"Traceback" not in resp.body
    assert "secret internals" in caplog.text


def test_no_build_yet_is_503_not_empty_200(tmp_path):
    from api.backends.local import LocalBackend
    from api.settings import Settings

    app = App(
        Settings(api_key=API_UNIT_KEY, backend="local", lake=str(tmp_path)),
        LocalBackend(tmp_path),
    )
    resp = app.handle(Request("GET", "/clients", (), {"x-api-key": API_UNIT_KEY}))
    _error(resp, 503, "unavailable")
    health = app.handle(Request("GET", "/health"))
    assert health.status == 503
    assert health.json()["data_as_of"] is None


def test_cache_counts_hits_and_misses(api_get):
    api_get("/products")
    api_get("/products")
    api_get("/status-summary")
    stats = api_get("/health").json()["cache"]
    assert stats["hits"] == 1
    assert stats["misses"] == 2
