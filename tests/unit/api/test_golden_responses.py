"""Every route of CONTRACT.md section 4 answers exactly as before the served-mart redesign.

Given the build ``golden_requests`` describes (orders drawn by the fake marts), when every
recorded request runs against today's API, twice (the second time from the cache), then
each status, content type and body text equals what main's code answered (recorded in
``golden/responses.json``; cursors compared as present or null, walks follow their own).
Twice over: as the API serves a small build (its marts copied into memory), and with the
build cut into parts of 16 rows read from their files, so that lookups by id and pages
after a cursor read only the parts that can hold their rows (api/backends/local.py).
"""

from __future__ import annotations

import json

import pytest

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings
from tests.support.fake_marts import make_orders, write_build
from tests.unit.api import golden_requests as G


@pytest.mark.parametrize(
    ("part_rows", "in_memory_bytes"),
    [(16_384, 8 * 1024 * 1024), (16, 0)],
    ids=["in-memory", "parts-of-16-rows"],
)
def test_every_recorded_answer_is_unchanged(tmp_path, part_rows, in_memory_bytes):
    o = G.ORDERS
    orders = make_orders(
        o["n"], clients=o["clients"], products=o["products"], days=o["days"], seed=o["seed"]
    )
    write_build(
        tmp_path,
        orders,
        built_at=G.BUILT_AT,
        data_as_of=G.DATA_AS_OF,
        build_id="golden-build",
        part_rows=part_rows,
    )
    backend = LocalBackend(tmp_path, in_memory_bytes=in_memory_bytes)
    backend.refresh()
    if in_memory_bytes == 0:  # every large relation is indexed by its parts
        indexed = backend.snapshot()._parts  # type: ignore[union-attr]
        assert len(indexed["mart_orders"].parts) == -(-o["n"] // 16)
        assert len(indexed["mart_orders__by_client_id"].parts) == -(-o["n"] // 16)
    app = App(Settings(api_key=G.KEY, backend="local", lake=str(tmp_path)), backend)

    def get(path, query, key):
        return app.handle(Request("GET", path, tuple(query), {"x-api-key": key} if key else {}))

    expected = json.loads(G.GOLDEN.read_text())
    for attempt in ("fresh", "cached"):
        got = record = G.record(get)
        assert sorted(record) == sorted(expected)
        for name in expected:
            assert got[name] == expected[name], f"{attempt}: {name}"
    backend.close()
