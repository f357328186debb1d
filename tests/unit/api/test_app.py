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
    _error(api_get(path, key=f" {API_UNIT_KEY[:-1]} "), 403, "forbidden")
    assert api_get(path).status in (200, 404)
    # And whitespace around the value is not part of it (RFC 9110, section 5.5)
    assert api_get(path, key=f" {API_UNIT_KEY}\t ").status == api_get(path).status


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


@pytest.mark.parametrize("key", [None, API_UNIT_KEY])
def test_health_tells_only_what_the_contract_lists(api_get, key):
    # Given a served build / When /health is asked, with or without the key
    body = api_get("/health", key=key).json()
    # Then status and data_as_of only: no build id, no cache counters
    assert body == {"status": "ok", "data_as_of": "2024-04-01T11:59:30Z"}


def test_data_answers_name_their_build_for_key_holders(api_get):
    assert api_get("/products").headers["x-duff-build"] == "unit-build-1"
    assert "x-duff-build" not in api_get("/products", key=None).headers
    assert "x-duff-build" not in api_get("/health").headers


def test_a_repeated_key_header_is_refused(api_unit_app):
    # Given the key sent twice (the front ends join the values and list the name)
    for value in (f"{API_UNIT_KEY}, {API_UNIT_KEY}", f"wrong, {API_UNIT_KEY}"):
        req = Request(
            "GET", "/products", (), {"x-api-key": value}, repeated_headers=frozenset({"x-api-key"})
        )
        # When a data route is asked / Then 403, saying why
        resp = api_unit_app.handle(req)
        _error(resp, 403, "forbidden")
        assert "more than once" in json.loads(resp.body)["error"]["message"]
    # and an open route does not care
    req = Request(
        "GET", "/health", (), {"x-api-key": "a, b"}, repeated_headers=frozenset({"x-api-key"})
    )
    assert api_unit_app.handle(req).status == 200


@pytest.mark.parametrize(
    "path,query",
    [
        ("/clients/13\n", ()),
        ("/clients/13/orders\n", ()),
        ("/orders", (("limit", "1\n"),)),
        ("/orders", (("client_id", "13\n"),)),
        ("/orders", (("from", "2024-03-01\n"),)),
        ("/orders", (("status", "delivered\n"),)),
        ("/orders", (("channel", "B2B\n"),)),
        ("/sales/daily", (("to", "2024-03-01\n"),)),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(api_get, path, query):
    # (a regex `$` matches before a final newline; values must match whole)
    resp = api_get(path, query)
    assert resp.status in (400, 404), resp.body
    _error(resp, resp.status, "invalid_parameter" if resp.status == 400 else "not_found")


def test_the_access_log_escapes_what_the_client_sent(api_get, caplog):
    # Given a path holding a newline (a forged log line) and a terminal escape
    caplog.set_level(logging.INFO, logger="duff.api.access")
    api_get("/nope\n2026-12-04 INFO duff.api.access GET /admin 200\x1b[2J\u2028")
    # Then one record, with every control character escaped
    (record,) = [r for r in caplog.records if r.name == "duff.api.access"]
    text = record.getMessage()
    assert "\n" not in text and "\x1b" not in text and "\u2028" not in text
    assert "/nope\\n2026-12-04 INFO" in text and "\\x1b[2J" in text


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


def test_cache_counts_hits_and_misses(api_get, api_unit_app):
    api_unit_app.metrics.emf()  # start from zero
    api_get("/products")
    api_get("/products")
    api_get("/status-summary")
    assert api_unit_app.cache.stats()["hits"] == 1
    doc = api_unit_app.metrics.emf()  # what the metrics log line carries
    assert (doc["CacheHits"], doc["CacheMisses"]) == (1, 2)


def test_handle_cached_answers_only_what_needs_no_query(api_unit_app):
    # Given an app with an empty cache
    app = api_unit_app
    app.metrics.emf()  # start from zero
    key = {"x-api-key": API_UNIT_KEY}
    products = Request("GET", "/products", (), key)
    # When a data route is not cached yet / Then the fast path declines, counting nothing
    assert app.handle_cached(products) is None
    assert app.cache.stats()["misses"] == 0
    assert app.metrics.emf() is None  # no request counted yet
    # When the full path has answered it once / Then the fast path gives the same answer
    full = app.handle(products)
    cached = app.handle_cached(products)
    assert cached is not None
    assert (cached.status, cached.body, cached.headers) == (full.status, full.body, full.headers)
    assert (app.cache.stats()["hits"], app.cache.stats()["misses"]) == (1, 1)
    # Refusals and the app's own routes need no query either
    _error(app.handle_cached(Request("GET", "/products")), 403, "forbidden")
    _error(
        app.handle_cached(Request("GET", "/orders", (("limit", "0"),), key)),
        400,
        "invalid_parameter",
    )
    health = app.handle_cached(Request("GET", "/health"))
    assert health is not None and health.status == 200
    assert app.handle_cached(Request("GET", "/clients/13", (), key)) is None


def test_a_clients_orders_take_one_query_and_an_unknown_client_still_404s(api_get, monkeypatch):
    from api.backends.local import LocalSnapshot

    # Given the snapshot's queries recorded
    seen: list[str] = []
    real = LocalSnapshot.query

    def recording(self, sql, params):
        seen.append(sql)
        return real(self, sql, params)

    monkeypatch.setattr(LocalSnapshot, "query", recording)
    # When a client with orders is asked for them
    resp = api_get("/clients/13/orders", (("limit", "2"),))
    # Then the page came from one statement on the orders (its rows show the client exists)
    assert resp.status == 200
    items = json.loads(resp.body)["items"]
    assert len(items) == 2 and {i["client_id"] for i in items} == {13}
    assert len(seen) == 1 and "mart_orders" in seen[0]
    # And for an unknown client the empty page is followed by the client lookup: 404
    seen.clear()
    _error(api_get("/clients/999999/orders"), 404, "not_found")
    assert len(seen) == 2 and "mart_client_sales" in seen[1]


def _resigned(api_get, path, key):
    """A cursor for ``path`` (its fingerprint taken from one the server issued) carrying
    ``key``, signed with the server's own secret: what a key holder who reads the code can
    make. Its key must still be checked against the columns it pages by."""
    from api.cursors import CursorCodec, _b64d
    from api.settings import Settings

    issued = api_get(path, (("limit", "1"),)).json()["next_cursor"]
    fp = json.loads(_b64d(issued.split(".")[0]))["f"]
    secret = Settings(api_key=API_UNIT_KEY, backend="local", lake="lake").cursor_secret
    return CursorCodec(secret).encode(fp, key)


@pytest.mark.parametrize(
    ("path", "key"),
    [
        # /clients pages by total_spend (decimal(38,2)) desc, then client_id
        ("/clients", ["1" * 40, 1]),
        ("/clients", ["1.005", 1]),
        ("/clients", ["abc", 1]),
        ("/clients", ["10.00", "x"]),
        ("/orders", ["2024-13-45"]),
        ("/orders", []),
    ],
)
def test_a_signed_cursor_whose_key_the_columns_cannot_hold_is_400(api_get, path, key):
    _error(api_get(path, (("cursor", _resigned(api_get, path, key)),)), 400, "invalid_cursor")


def test_a_signed_timestamp_key_that_is_not_a_timestamp_is_400(api_get):
    # /quality/files pages by landed_at (timestamp) desc, then ingest_id
    from api.cursors import CursorCodec, fingerprint
    from api.settings import Settings

    secret = Settings(api_key=API_UNIT_KEY, backend="local", lake="lake").cursor_secret
    for key in (["abc", "x"], ["2026-13-45T00:00:00", "x"], ["", ""], [1, "x"]):
        cursor = CursorCodec(secret).encode(fingerprint("quality_files", []), key)
        resp = api_get("/quality/files", (("cursor", cursor),))
        _error(resp, 400, "invalid_cursor")
    good = CursorCodec(secret).encode(
        fingerprint("quality_files", []), ["2026-12-07T05:03:03.752741", "x"]
    )
    assert api_get("/quality/files", (("cursor", good),)).status == 200
