"""The routing table. It drives both dispatch (api.app) and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from api import params as P
from api import service

# kind -> (parser, OpenAPI schema)
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": P.INT64_MAX, "format": "int64"}
_KINDS: dict[str, tuple[Callable[[str, str], object], dict]] = {
    "id": (P.parse_id, _ID_SCHEMA),
    "limit": (
        lambda _n, raw: P.parse_limit(raw),
        {"type": "integer", "minimum": 1, "maximum": P.MAX_LIMIT, "default": P.DEFAULT_LIMIT},
    ),
    "cursor": (
        lambda _n, raw: raw,
        {"type": "string", "minLength": 1, "maxLength": 512},
    ),
    "date": (P.parse_date, {"type": "string", "format": "date"}),
    "status": (lambda _n, raw: P.parse_status(raw), {"type": "string", "enum": list(P.STATUSES)}),
    "channel": (
        lambda _n, raw: P.parse_channel(raw),
        {"type": "string", "enum": list(P.CHANNELS)},
    ),
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    description: str

    def parse(self, raw: str) -> object:
        return _KINDS[self.kind][0](self.name, raw)

    def schema(self) -> dict:
        return dict(_KINDS[self.kind][1])


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    summary: str
    response: str  # component schema name of the 200 body
    handler: Callable | None = None  # None: served by the app itself (health, openapi, static)
    query: tuple[Param, ...] = ()
    auth: bool = True
    paged: bool = False
    not_found: bool = False  # may answer 404 for an unknown id
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.path.strip("/").split("/")))

    @property
    def path_params(self) -> tuple[Param, ...]:
        return tuple(
            Param(s[1:-1], "id", "Numeric id (a positive integer).")
            for s in self.segments
            if s.startswith("{")
        )

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        found: dict[str, str] = {}
        for seg, part in zip(self.segments, parts, strict=True):
            if seg.startswith("{"):
                if not part:
                    return None
                found[seg[1:-1]] = part
            elif seg != part:
                return None
        return found


_LIMIT = Param("limit", "limit", "Page size, 1..1000 (default 100).")
_CURSOR = Param(
    "cursor",
    "cursor",
    "Opaque cursor from the previous page's next_cursor (same route and filters only).",
)
_FROM = Param("from", "date", "First pa_date included (YYYY-MM-DD).")
_TO = Param("to", "date", "Last pa_date included (YYYY-MM-DD).")

ROUTES: tuple[Route, ...] = (
    Route("health", "/health", "Liveness and data freshness", "Health", auth=False),
    Route("openapi", "/openapi.json", "This OpenAPI document", "OpenApi", auth=False),
    Route(
        "clients",
        "/clients",
        "Clients by total spend (descending, then client_id), paged",
        "ClientPage",
        service.list_clients,
        (_LIMIT, _CURSOR),
        paged=True,
    ),
    Route(
        "client",
        "/clients/{client_id}",
        "One client",
        "Client",
        service.get_client,
        not_found=True,
    ),
    Route(
        "client_orders",
        "/clients/{client_id}/orders",
        "The orders of one client by order_id, paged",
        "OrderPage",
        service.list_client_orders,
        (_LIMIT, _CURSOR),
        paged=True,
        not_found=True,
    ),
    Route(
        "orders",
        "/orders",
        "Orders by order_id, filtered and paged",
        "OrderPage",
        service.list_orders,
        (
            Param("client_id", "id", "Only this client's orders."),
            Param("product_id", "id", "Only this product's orders."),
            Param("status", "status", "created, delivered or broken (case-insensitive)."),
            Param("channel", "channel", "Retail, Online or B2B (case-insensitive)."),
            _FROM,
            _TO,
            _LIMIT,
            _CURSOR,
        ),
        paged=True,
    ),
    Route("products", "/products", "Sales by product", "ProductList", service.list_products),
    Route(
        "sales_by_channel",
        "/sales/by-channel",
        "Sales by point-of-sale channel",
        "ChannelList",
        service.sales_by_channel,
    ),
    Route(
        "sales_by_product_channel",
        "/sales/by-product-channel",
        "Sales by product and channel",
        "ProductChannelList",
        service.sales_by_product_channel,
    ),
    Route(
        "status_summary",
        "/status-summary",
        "Orders, units and revenue by status",
        "StatusList",
        service.status_summary,
    ),
    Route(
        "sales_daily",
        "/sales/daily",
        "Sales per pa_date",
        "DailyList",
        service.sales_daily,
        (_FROM, _TO),
    ),
    # Served from the real-time store by api.realtime (no dbt build): handler None.
    Route(
        "realtime_summary",
        "/realtime/summary",
        "Today's stream figures (section 6), or another date's",
        "RealtimeSummary",
        query=(Param("date", "date", "The pa_date (YYYY-MM-DD); default today, UTC."),),
    ),
)


_EXACT = {r.path: r for r in ROUTES if "{" not in r.path}


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    exact = _EXACT.get(path)
    if exact is not None:
        return exact, {}
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    for route in ROUTES:
        found = route.match(parts)
        if found is not None:
            return route, found
    return None
