"""The routing table: the app's own routes plus every route the served marts declare.

``Router(marts)`` turns a build's served-mart declarations (api/declarations.py) into
endpoints with typed parameters; it drives both dispatch (api.app) and the OpenAPI document
(api.openapi), so they cannot drift from each other or from the marts' yml.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from api import params as P
from api.cursors import MAX_CURSOR_LENGTH
from api.declarations import Column, Route, ServedMart
from api.errors import bad_request

_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": P.INT64_MAX, "format": "int64"}


def _enum_parser(name: str, values: tuple[str, ...]) -> Callable[[str], str]:
    by_lower = {v.lower(): v for v in values}
    message = f"{name}: must be one of " + ", ".join(values) + " (any case)"

    def parse(raw: str) -> str:
        value = by_lower.get(raw.strip(" ").lower())  # spaces only: a newline is not a value
        if value is None:
            raise bad_request(message)
        return value

    return parse


def _text(name: str, raw: str) -> str:
    if len(raw) > 200:
        raise bad_request(f"{name}: at most 200 characters")
    return raw


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # id, limit, cursor, date, enum, text
    description: str
    values: tuple[str, ...] = ()
    parser: Callable[[str], object] = field(compare=False, repr=False, default=None)  # type: ignore[assignment]

    def parse(self, raw: str) -> object:
        if self.kind == "id":
            return P.parse_id(self.name, raw)
        if self.kind == "limit":
            return P.parse_limit(raw)
        if self.kind == "date":
            return P.parse_date(self.name, raw)
        if self.kind == "enum":
            return self.parser(raw)
        if self.kind == "cursor":  # the codec checks it, up to MAX_CURSOR_LENGTH (the schema's)
            return raw
        return _text(self.name, raw)

    def schema(self) -> dict:
        if self.kind == "id":
            return dict(_ID_SCHEMA)
        if self.kind == "limit":
            return {
                "type": "integer",
                "minimum": 1,
                "maximum": P.MAX_LIMIT,
                "default": P.DEFAULT_LIMIT,
            }
        if self.kind == "cursor":
            return {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH}
        if self.kind == "date":
            return {"type": "string", "format": "date"}
        if self.kind == "enum":
            return {"type": "string", "enum": list(self.values)}
        return {"type": "string", "maxLength": 200}


def column_param(name: str, col: Column, description: str) -> Param:
    if col.kind == "int":
        return Param(name, "id", description)
    if col.kind == "date":
        return Param(name, "date", description)
    if col.values:
        return Param(name, "enum", description, col.values, _enum_parser(name, col.values))
    return Param(name, "text", description)


LIMIT = Param("limit", "limit", "Page size, 1..1000 (default 100).")
CURSOR = Param(
    "cursor",
    "cursor",
    "Opaque cursor from the previous page's next_cursor (same route and filters only).",
)


@dataclass(frozen=True)
class Endpoint:
    name: str  # operationId
    path: str
    summary: str
    response: str  # component schema name of the 200 body
    route: Route | None = None  # None: served by the app itself (health, openapi)
    query: tuple[Param, ...] = ()
    path_params: tuple[Param, ...] = ()
    ranges: tuple[tuple[str, str], ...] = ()  # (from, to) parameter pairs
    auth: bool = True
    paged: bool = False
    not_found: bool = False  # may answer 404 for an unknown id
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.path.strip("/").split("/")))

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


BUILTINS: tuple[Endpoint, ...] = (
    Endpoint("health", "/health", "Liveness and data freshness", "Health", auth=False),
    Endpoint("openapi", "/openapi.json", "This OpenAPI document", "OpenApi", auth=False),
    # Served from the real-time store by api.realtime: no dbt build behind it.
    Endpoint(
        "realtime_summary",
        "/realtime/summary",
        "Today's stream figures (section 6), or another date's",
        "RealtimeSummary",
        query=(Param("date", "date", "The pa_date (YYYY-MM-DD); default today, UTC."),),
    ),
)
_BUILTIN_PATHS = {e.path: e for e in BUILTINS}


def response_schema(mart: ServedMart, route: Route) -> str:
    if route.one:
        return mart.schema
    return mart.schema + ("Page" if route.paged else "List")


def endpoint(mart: ServedMart, route: Route) -> Endpoint:
    query: list[Param] = []
    ranges = []
    for f in route.filters:
        col = mart.column(f.column)
        if f.param is not None:
            what = f"Only rows with this {col.key}."
            if f.values:  # the filter's own accepted values (the column holds others too)
                parse = _enum_parser(f.param, f.values)
                query.append(Param(f.param, "enum", what, f.values, parse))
            else:
                query.append(column_param(f.param, col, what))
        if f.range_from:
            query.append(column_param(f.range_from, col, f"First {f.column} included."))
        if f.range_to:
            query.append(column_param(f.range_to, col, f"Last {f.column} included."))
        if f.range_from and f.range_to:
            ranges.append((f.range_from, f.range_to))
    if route.paged:
        query += [LIMIT, CURSOR]
    path_params = tuple(
        column_param(name, mart.column(name), "Numeric id (a positive integer).")
        for name in route.path_params
    )
    return Endpoint(
        name=route.operation,
        path=route.path,
        summary=route.summary,
        response=response_schema(mart, route),
        route=route,
        query=tuple(query),
        path_params=path_params,
        ranges=tuple(ranges),
        paged=route.paged,
        not_found=route.one or route.requires is not None,
    )


class Router:
    """The app's own routes and those of one build's served marts."""

    def __init__(self, marts: Iterable[ServedMart] = ()) -> None:
        self.marts = tuple(marts)
        self.endpoints: tuple[Endpoint, ...] = BUILTINS + tuple(
            endpoint(m, r) for m in self.marts for r in m.routes
        )
        self._exact = {e.path: e for e in self.endpoints if "{" not in e.path}
        self._patterns = [e for e in self.endpoints if "{" in e.path]

    def match(self, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        exact = self._exact.get(path)
        if exact is not None:
            return exact, {}
        if not path.startswith("/"):
            return None
        parts = path[1:].split("/")
        for e in self._patterns:
            found = e.match(parts)
            if found is not None:
                return e, found
        return None


def match_builtin(path: str) -> Endpoint | None:
    return _BUILTIN_PATHS.get(path)
