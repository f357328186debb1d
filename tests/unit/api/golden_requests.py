"""The requests whose answers were recorded from the API before the served-mart redesign.

``record(get)`` runs every request through ``get(path, query, key)`` and returns what came back:
status, content type and exact body text. Page walks follow each server's own ``next_cursor``
(a cursor is opaque: compared only as present or null). ``golden/responses.json`` was recorded
once from main's code at 1c8426d (its in-memory Arrow backend, cache off) over the build of
``ORDERS``; test_golden_responses.py compares today's answers with it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

GOLDEN = Path(__file__).with_name("golden") / "responses.json"
KEY = "golden-key-0123456789"
BUILT_AT = dt.datetime(2024, 4, 1, 12, 0, tzinfo=dt.UTC)
DATA_AS_OF = dt.datetime(2024, 4, 1, 11, 59, 30, 250000, tzinfo=dt.UTC)
ORDERS = {"n": 420, "clients": 40, "products": 6, "days": 20, "seed": 11}

SINGLE = [
    "/health",
    "/clients",
    "/clients?limit=7",
    "/products",
    "/sales/by-channel",
    "/sales/by-product-channel",
    "/status-summary",
    "/sales/daily",
    "/sales/daily?from=2024-03-05&to=2024-03-09",
    "/sales/daily?from=2024-03-19",
    "/sales/daily?to=2024-02-01",
    "/orders?limit=5",
    "/orders?client_id=13&limit=4",
    "/orders?client_id=000013&status=DELIVERED&limit=3",
    "/orders?product_id=2&channel=b2b&from=2024-03-03&to=2024-03-06&limit=1000",
    "/orders?status=broken&channel=Online&limit=6",
    "/orders?client_id=999999",
    "/orders?from=2024-03-10&to=2024-03-10",
    "/clients/13",
    "/clients/0000023",
    "/clients/13/orders?limit=3",
    "/clients/999999",
    "/clients/999999/orders",
    # errors
    "/clients/abc",
    "/clients/0",
    "/clients/99999999999999999999",
    "/clients/",
    "/nope",
    "/orders?limit=0",
    "/orders?limit=1001",
    "/orders?limit=abc",
    "/orders?status=lost",
    "/orders?channel=shop",
    "/orders?from=2024-02-30",
    "/orders?from=2024-03-10&to=2024-03-01",
    "/orders?chanel=B2B",
    "/orders?status=",
    "/orders?status=created&status=broken",
    "/orders?cursor=abc.def",
    "/clients?cursor=abc",
    "/sales/daily?from=x",
    "/products?limit=5",
    "/clients/13?limit=5",
]
WALKS = [
    "/clients?limit=9",
    "/orders?limit=150",
    "/orders?status=created&limit=60",
    "/orders?client_id=23&limit=10",
    "/clients/33/orders?limit=11",
]
NO_KEY = ["/clients", "/orders?limit=x", "/nope", "/health"]


def _split(path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    if "?" not in path:
        return path, ()
    base, qs = path.split("?", 1)
    return base, tuple(tuple(p.split("=", 1)) for p in qs.split("&"))  # type: ignore[misc]


_CURSOR = re.compile(r'"next_cursor":"[^"]*"')


def _answer(resp) -> dict:
    """Status, content type and the exact body text (number formatting included)."""
    text = resp.body.decode("utf-8")
    body = json.loads(text)
    if isinstance(body, dict) and "build_id" in body:  # /health's extras: not the contract's
        text = json.dumps({k: body[k] for k in ("status", "data_as_of")}, separators=(",", ":"))
    text = _CURSOR.sub('"next_cursor":"<cursor>"', text)
    return {"status": resp.status, "type": resp.headers.get("content-type"), "body": text}


def record(get) -> dict:
    out: dict[str, object] = {}
    for path in SINGLE:
        base, query = _split(path)
        out[path] = _answer(get(base, query, KEY))
    for path in NO_KEY:
        base, query = _split(path)
        out["nokey " + path] = _answer(get(base, query, None))
    for path in WALKS:
        base, query = _split(path)
        pages, cursor = [], None
        for _ in range(50):
            q = query + ((("cursor", cursor),) if cursor else ())
            resp = get(base, q, KEY)
            pages.append(_answer(resp))
            cursor = json.loads(resp.body).get("next_cursor")
            if not cursor:
                break
        out["walk " + path] = pages
    return out
