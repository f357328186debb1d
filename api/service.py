"""The API's domain: one function per data route, over a backend snapshot.

Each function validates the cursor against the route and filters, asks the snapshot for rows
(plain tuples; the snapshot is the adapter: SQL on Athena, in-memory Arrow locally) and shapes
them into the contract's JSON items. ``snap`` is one consistent view of one build: a request
uses exactly one snapshot, so no answer mixes two builds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from api.cursors import CursorCodec, fingerprint, invalid_cursor
from api.errors import not_found
from api.jsonenc import Num, date_text, decimal_num, integer, iso_utc, num_text, text
from api.params import parse_key_decimal, parse_key_int


@dataclass(frozen=True)
class OrderFilter:
    """Validated filters of an orders query (None: not filtered)."""

    client_id: int | None = None
    product_id: int | None = None
    status: str | None = None
    channel: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


class Snapshot(Protocol):
    """One consistent build of the marts. Rows are tuples in the column orders below.

    Money and litres are Decimals or their exact decimal text; dates are dates or ISO text.
    """

    build_id: str
    data_as_of: dt.datetime | None

    def clients_page(self, after: tuple[Decimal, int] | None, limit: int) -> list[tuple]:
        """CLIENT_COLUMNS rows by total_spend desc, client_id; strictly after ``after``."""

    def client(self, client_id: int) -> tuple | None: ...

    def orders_page(self, f: OrderFilter, after: int | None, limit: int) -> list[tuple]:
        """ORDER_COLUMNS rows matching ``f`` by order_id, with order_id > ``after``."""

    def products(self) -> list[tuple]: ...

    def channel_sales(self) -> list[tuple]: ...

    def product_channel_sales(self) -> list[tuple]: ...

    def status_summary(self) -> list[tuple]: ...

    def daily_sales(self, date_from: dt.date | None, date_to: dt.date | None) -> list[tuple]: ...


Params = dict[str, Any]

CLIENT_COLUMNS = (
    "client_id",
    "client_name",
    "orders",
    "units",
    "liters",
    "total_spend",
    "top_product_id",
    "top_product_description",
    "top_product_units",
)
ORDER_COLUMNS = (
    "order_id",
    "client_id",
    "product_id",
    "product_description",
    "units",
    "unit_price",
    "total_amount",
    "liters",
    "channel",
    "status",
    "pa_date",
)
PRODUCT_COLUMNS = ("product_id", "product_description", "orders", "units", "liters", "revenue")
CHANNEL_COLUMNS = ("channel", "orders", "units", "liters", "revenue")
PRODUCT_CHANNEL_COLUMNS = (
    "product_id",
    "product_description",
    "channel",
    "orders",
    "units",
    "liters",
    "revenue",
)
STATUS_COLUMNS = ("status", "orders", "units", "revenue")
DAILY_COLUMNS = ("pa_date", "orders", "units", "liters", "revenue")


def _client_item(r: tuple) -> Num:
    """One client as JSON text (rendered directly: lists of up to 1000 are common)."""
    if r[6] is None:
        top = "null"
    else:
        top = (
            f'{{"product_id":{integer(r[6])},"product_description":{text(r[7])},'
            f'"units":{integer(r[8])}}}'
        )
    return Num(
        f'{{"client_id":{integer(r[0])},"client_name":{text(r[1])},"orders":{integer(r[2])},'
        f'"units":{integer(r[3])},"liters":{num_text(r[4], 3)},'
        f'"total_spend":{num_text(r[5], 2)},"top_product":{top}}}'
    )


def _order_item(r: tuple) -> Num:
    """One order as JSON text."""
    return Num(
        f'{{"order_id":{integer(r[0])},"client_id":{integer(r[1])},'
        f'"product_id":{integer(r[2])},"product_description":{text(r[3])},'
        f'"units":{integer(r[4])},"unit_price":{num_text(r[5], 2)},'
        f'"total_amount":{num_text(r[6], 2)},"liters":{num_text(r[7], 3)},'
        f'"channel":{text(r[8])},"status":{text(r[9])},"pa_date":{date_text(r[10])}}}'
    )


def _page(rows: list[tuple], limit: int, make_key, codec: CursorCodec, fp: str):
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = codec.encode(fp, make_key(rows[-1])) if more and rows else None
    return rows, next_cursor


def health(snap: Snapshot | None) -> dict:
    if snap is None:
        return {"status": "unavailable", "data_as_of": None}
    return {"status": "ok", "data_as_of": iso_utc(snap.data_as_of), "build_id": snap.build_id}


def list_clients(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    limit = p["limit"]
    fp = fingerprint("clients", [])
    after = None
    if p.get("cursor") is not None:
        key = codec.decode(p["cursor"], fp)
        try:
            if len(key) != 2:
                raise ValueError
            after = (parse_key_decimal(key[0]), parse_key_int(key[1]))
        except ValueError:
            raise invalid_cursor() from None
    fast = getattr(snap, "clients_json_page", None)
    if fast is not None:  # (total_spend, client_id, item JSON) rendered by the backend
        triples, nxt = _page(
            fast(after, limit + 1), limit, lambda r: [format(Decimal(r[0]), "f"), r[1]], codec, fp
        )
        return {"items": [Num(t[2]) for t in triples], "next_cursor": nxt}
    rows, nxt = _page(
        snap.clients_page(after, limit + 1),
        limit,
        lambda r: [format(Decimal(r[5]), "f"), r[0]],  # exact text of the spend
        codec,
        fp,
    )
    return {"items": [_client_item(r) for r in rows], "next_cursor": nxt}


def _client_row(snap: Snapshot, client_id: int) -> tuple:
    row = snap.client(client_id)
    if row is None:
        raise not_found(f"client {client_id} not found")
    return row


def get_client(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    return _client_item(_client_row(snap, p["client_id"]))


def _orders_page(snap: Snapshot, route: str, p: Params, f: OrderFilter, codec: CursorCodec):
    limit = p["limit"]
    fp = fingerprint(route, [(k, v) for k, v in vars(f).items() if v is not None])
    after = None
    if p.get("cursor") is not None:
        key = codec.decode(p["cursor"], fp)
        try:
            if len(key) != 1:
                raise ValueError
            after = parse_key_int(key[0])
        except ValueError:
            raise invalid_cursor() from None
    fast = getattr(snap, "orders_json_page", None)
    rendered = fast(f, after, limit + 1) if fast is not None else None
    if rendered is not None:  # (order_id, item JSON) pairs rendered by the backend
        pairs, nxt = _page(rendered, limit, lambda r: [r[0]], codec, fp)
        return {"items": [Num(text) for _oid, text in pairs], "next_cursor": nxt}
    rows, nxt = _page(snap.orders_page(f, after, limit + 1), limit, lambda r: [r[0]], codec, fp)
    return {"items": [_order_item(r) for r in rows], "next_cursor": nxt}


def list_orders(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    f = OrderFilter(
        client_id=p.get("client_id"),
        product_id=p.get("product_id"),
        status=p.get("status"),
        channel=p.get("channel"),
        date_from=p.get("from"),
        date_to=p.get("to"),
    )
    return _orders_page(snap, "orders", p, f, codec)


def list_client_orders(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    _client_row(snap, p["client_id"])  # 404 for an unknown client
    return _orders_page(snap, "client_orders", p, OrderFilter(client_id=p["client_id"]), codec)


def list_products(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    return {
        "items": [
            {
                "product_id": r[0],
                "product_description": r[1],
                "orders": r[2],
                "units": r[3],
                "liters": decimal_num(r[4], 3),
                "revenue": decimal_num(r[5], 2),
            }
            for r in snap.products()
        ]
    }


def sales_by_channel(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    return {
        "items": [
            {
                "channel": r[0],
                "orders": r[1],
                "units": r[2],
                "liters": decimal_num(r[3], 3),
                "revenue": decimal_num(r[4], 2),
            }
            for r in snap.channel_sales()
        ]
    }


def sales_by_product_channel(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    return {
        "items": [
            {
                "product_id": r[0],
                "product_description": r[1],
                "channel": r[2],
                "orders": r[3],
                "units": r[4],
                "liters": decimal_num(r[5], 3),
                "revenue": decimal_num(r[6], 2),
            }
            for r in snap.product_channel_sales()
        ]
    }


def status_summary(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    return {
        "items": [
            {"status": r[0], "orders": r[1], "units": r[2], "revenue": decimal_num(r[3], 2)}
            for r in snap.status_summary()
        ]
    }


def sales_daily(snap: Snapshot, p: Params, codec: CursorCodec) -> dict:
    return {
        "items": [
            {
                "pa_date": r[0].isoformat(),
                "orders": r[1],
                "units": r[2],
                "liters": decimal_num(r[3], 3),
                "revenue": decimal_num(r[4], 2),
            }
            for r in snap.daily_sales(p.get("from"), p.get("to"))
        ]
    }
