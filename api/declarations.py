"""Served-mart declarations: what each served mart's yml says about its routes.

A served mart declares, once, in its model's yml (``config.meta.serve``), the routes that read
it: path, order, filters, paging. Everything else comes from the model's own yml: columns
and their ``data_type`` (a ``decimal(p, s)`` is served rounded to ``s`` places), their
descriptions, ``accepted_values`` (a filter on the column takes those values, any case) and
``not_null`` tests. docs/serving.md is the recipe; an example::

    - name: mart_daily_sales
      config:
        meta:
          serve:
            schema: Daily                      # OpenAPI name of one item
            routes:
              - path: /sales/daily
                operation: sales_daily         # operationId; also the cache and cursor scope
                summary: Sales per pa_date
                order_by: [pa_date]            # "<column> desc" for descending
                filters:
                  - {column: pa_date, from: from, to: to}   # inclusive range, two params

``from_project`` reads the yml files (PyYAML: dbt's environment, the export, tests and
``make package``); the API itself only reads the JSON form (``to_json`` / ``from_json``), which
every local build carries as ``_served.json`` and the Lambda zip as ``api/served.json``.
This module imports nothing outside the standard library at import time.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

FORMAT_VERSION = 1
_TYPE = re.compile(
    r"^(bigint|integer|int|varchar|string|date|timestamp|decimal\((\d+),\s*(\d+)\))$"
)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PATH = re.compile(r"^(/[a-z0-9-]+|/\{[a-z_][a-z0-9_]*\})+$")


class DeclarationError(ValueError):
    """A served mart's declaration is malformed; the message names the model and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # as in the yml: bigint, varchar, date, decimal(38,2), ...
    description: str = ""
    values: tuple[str, ...] = ()  # accepted_values, when tested
    not_null: bool = False
    served_as: str = ""  # the item's field name when it differs (serve.rename)
    json_array: bool = False  # varchar holding a JSON array of strings (serve.json_arrays)

    @property
    def key(self) -> str:
        """The field name in a served item."""
        return self.served_as or self.name

    @property
    def kind(self) -> str:
        """int, decimal, text, date or timestamp."""
        t = self.data_type
        if t in ("bigint", "integer", "int"):
            return "int"
        if t.startswith("decimal"):
            return "decimal"
        if t in ("varchar", "string"):
            return "text"
        return t

    @property
    def scale(self) -> int:
        m = _TYPE.match(self.data_type)
        return int(m.group(3)) if m and m.group(3) else 0

    @property
    def precision(self) -> int:
        """A decimal's total digits (``decimal(p, s)``: every decimal is declared so)."""
        m = _TYPE.match(self.data_type)
        return int(m.group(2)) if m and m.group(2) else 0


@dataclass(frozen=True)
class Filter:
    column: str
    param: str | None = None  # equality filter: the query parameter (default: the column)
    range_from: str | None = None  # range filter: the two query parameters, inclusive
    range_to: str | None = None
    values: tuple[str, ...] = ()  # equality filter: accepted values when the column has none

    @property
    def params(self) -> tuple[str, ...]:
        if self.param is not None:
            return (self.param,)
        return tuple(p for p in (self.range_from, self.range_to) if p)


@dataclass(frozen=True)
class Route:
    path: str
    operation: str
    summary: str
    order_by: tuple[tuple[str, bool], ...]  # (column, descending)
    paged: bool = False
    one: bool = False  # answers one item (404 when absent) instead of a list
    filters: tuple[Filter, ...] = ()
    requires: str | None = None  # another served mart the path's id must exist in (else 404)

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(s[1:-1] for s in self.path.strip("/").split("/") if s.startswith("{"))


@dataclass(frozen=True)
class ServedMart:
    name: str
    schema: str
    columns: tuple[Column, ...]
    routes: tuple[Route, ...]
    description: str = ""
    nest: dict[str, dict[str, str]] = field(default_factory=dict)  # object -> field -> column

    def sorted_copies(self) -> dict[str, tuple[tuple[str, bool], ...]]:
        """The files a local build holds for this mart, by name, with their sort order: the
        mart in its first route's order, plus one copy per path parameter that a route
        filters on (``<mart>__by_<column>``), sorted by it and then the route's order, so a
        lookup by that id reads a few row groups instead of the whole file."""
        copies = {self.name: self.routes[0].order_by}
        for route in self.routes:
            for param in route.path_params:
                order = ((param, False), *[o for o in route.order_by if o[0] != param])
                copies.setdefault(f"{self.name}__by_{param}", order)
        return copies

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


# -- reading the yml (dbt side) ------------------------------------------------------------


def _tests(column: dict) -> list:
    return list(column.get("data_tests") or column.get("tests") or [])


# The batch-scoped variants (tests/generic/*_in_batch.sql) state the same rule of the column;
# they only check it on the rows the latest build changed.
_ACCEPTED_VALUES = ("accepted_values", "accepted_values_in_batch")
_NOT_NULL = ("not_null", "not_null_in_batch")


def _accepted_values(column: dict) -> tuple[str, ...]:
    for test in _tests(column):
        name = next((n for n in _ACCEPTED_VALUES if isinstance(test, dict) and n in test), None)
        if name is not None:
            spec = test[name] or {}
            values = (spec.get("arguments") or {}).get("values", spec.get("values"))
            return tuple(str(v) for v in values or ())
    return ()


def _not_null(column: dict) -> bool:
    return any(
        t in _NOT_NULL or (isinstance(t, dict) and any(n in t for n in _NOT_NULL))
        for t in _tests(column)
    )


def _serve_spec(model: dict) -> dict | None:
    config = model.get("config") or {}
    meta = config.get("meta") or model.get("meta") or {}
    return meta.get("serve")


def _fail(model: str, message: str) -> DeclarationError:
    return DeclarationError(f"served mart {model}: {message}")


def parse_model(model: dict) -> ServedMart:
    """One model's yml entry (a dict) with ``config.meta.serve`` -> ServedMart (validated)."""
    name = model.get("name", "?")
    spec = _serve_spec(model) or {}
    columns = []
    for c in model.get("columns") or []:
        dtype = str(c.get("data_type", "")).strip().lower().replace(" ", "")
        if not _TYPE.match(dtype):
            raise _fail(name, f"column {c.get('name')!r}: data_type {dtype!r} cannot be served")
        columns.append(
            Column(
                name=c["name"],
                data_type=dtype,
                description=" ".join(str(c.get("description", "")).split()),
                values=_accepted_values(c),
                not_null=_not_null(c),
            )
        )
    if not columns:
        raise _fail(name, "list its columns with their data_type")
    by_name = {c.name: c for c in columns}
    names = set(by_name)
    rename = {str(k): str(v) for k, v in (spec.get("rename") or {}).items()}
    arrays = {str(c) for c in spec.get("json_arrays") or []}
    for col in [*rename, *arrays]:
        if col not in names:
            raise _fail(name, f"rename/json_arrays: no column {col!r}")
    for field_name in rename.values():
        if not _NAME.match(field_name) or field_name in names - set(rename):
            raise _fail(name, f"rename: {field_name!r} is not a free field name")
    for col in arrays:
        if by_name[col].kind != "text":
            raise _fail(name, f"json_arrays: {col!r} must be a varchar")
    columns = [
        replace(c, served_as=rename.get(c.name, ""), json_array=c.name in arrays) for c in columns
    ]
    nest = {
        str(k): {str(f): str(col) for f, col in v.items()}
        for k, v in (spec.get("nest") or {}).items()
    }
    for obj, fields in nest.items():
        for col in fields.values():
            if col not in names:
                raise _fail(name, f"nest {obj}: no column {col!r}")
    routes = []
    for r in spec.get("routes") or []:
        path = str(r.get("path", ""))
        if not _PATH.match(path):
            raise _fail(name, f"route path {path!r} is not /segments with {{id}} parameters")
        order = []
        for item in r.get("order_by") or []:
            col, _, direction = str(item).partition(" ")
            if col not in names:
                raise _fail(name, f"{path}: order_by {item!r}: {col!r} is not a column")
            if direction.strip() not in ("", "asc", "desc"):
                raise _fail(name, f"{path}: order_by {item!r}: the direction is asc or desc")
            order.append((col, direction.strip() == "desc"))
        filters = []
        for f in r.get("filters") or []:
            if isinstance(f, str):
                f = {"column": f}
            col = f.get("column")
            if col not in names:
                raise _fail(name, f"{path}: filter on unknown column {col!r}")
            if "from" in f or "to" in f:
                filters.append(Filter(col, range_from=f.get("from"), range_to=f.get("to")))
            else:
                values = tuple(str(v) for v in f.get("values") or ())
                key = rename.get(col, col)
                filters.append(Filter(col, param=f.get("param", key), values=values))
        route = Route(
            path=path,
            operation=str(r.get("operation") or ""),
            summary=str(r.get("summary") or ""),
            order_by=tuple(order),
            paged=bool(r.get("paged", False)),
            one=bool(r.get("one", False)),
            filters=tuple(filters),
            requires=r.get("requires"),
        )
        if not _NAME.match(route.operation):
            raise _fail(name, f"{path}: operation {route.operation!r} must be a snake_case name")
        for p in route.path_params:
            if p not in names:
                raise _fail(name, f"{path}: path parameter {p!r} is not a column")
            if by_name[p].data_type != "bigint":
                raise _fail(name, f"{path}: path parameter {p!r} must be a bigint column (an id)")
        if route.paged and not route.order_by:
            raise _fail(name, f"{path}: a paged route needs order_by (its keyset)")
        if route.one and (route.paged or len(route.path_params) != 1):
            raise _fail(name, f"{path}: a one-item route has exactly one path id and no paging")
        routes.append(route)
    if not routes:
        raise _fail(name, "serve.routes is empty")
    return ServedMart(
        name=name,
        schema=str(spec.get("schema") or "".join(w.title() for w in name.split("_"))),
        columns=tuple(columns),
        routes=tuple(routes),
        description=" ".join(str(model.get("description", "")).split()),
        nest=nest,
    )


def from_project(project_dir: str | Path) -> list[ServedMart]:
    """Every model under ``models/`` whose yml declares ``config.meta.serve``, by name."""
    import yaml  # dbt's dependency; not on the API's import path

    found: dict[str, ServedMart] = {}
    for path in sorted(Path(project_dir, "models").rglob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in doc.get("models") or []:
            if _serve_spec(model) is not None:
                mart = parse_model(model)
                if mart.name in found:
                    raise _fail(mart.name, f"declared twice ({path})")
                found[mart.name] = mart
    marts = [found[n] for n in sorted(found)]
    check(marts)
    return marts


def _overlap(a: str, b: str) -> bool:
    """Whether one request path can reach both routes. The router (api.routes.Router) takes a
    path without parameters first, then the first pattern whose segments match, before it
    reads a parameter's value: so two patterns overlap where each pair of segments is equal or
    has a parameter, and a path without parameters overlaps a pattern only where its segment
    against a parameter is digits (an id the pattern serves too: ``/clients/1003``)."""
    sa, sb = a.strip("/").split("/"), b.strip("/").split("/")
    if len(sa) != len(sb):
        return False
    patterns = "{" in a and "{" in b
    for x, y in zip(sa, sb, strict=True):
        if x == y or (x.startswith("{") and y.startswith("{")):
            continue
        if x.startswith("{") or y.startswith("{"):
            literal = y if x.startswith("{") else x
            if patterns or literal.isdigit():
                continue
        return False
    return True


def check(marts: list[ServedMart]) -> None:
    """No two routes can answer one request path (nor a route the API's own routes answer),
    operations are unique across marts, and ``requires`` names a served mart."""
    from api.routes import BUILTINS  # routes imports this module

    # the API's own routes, and the dashboard's page and files (answered before routing)
    paths: list[tuple[str, str]] = [(e.path, "the API itself") for e in BUILTINS]
    paths += [("/", "the dashboard")]
    ops: dict[str, str] = {e.name: "the API itself" for e in BUILTINS}
    names = {m.name for m in marts}
    for m in marts:
        for r in m.routes:
            if r.path.startswith("/static/"):
                raise _fail(m.name, f"route {r.path}: /static/ is the dashboard's files")
            for path, owner in paths:
                if _overlap(r.path, path):
                    what = "is already" if r.path == path else f"would answer requests of {path},"
                    raise _fail(m.name, f"route {r.path} {what} served by {owner}")
            if r.operation in ops:
                raise _fail(
                    m.name,
                    f"{r.path}: operation {r.operation!r} is already used by {ops[r.operation]}",
                )
            paths.append((r.path, m.name))
            ops[r.operation] = m.name
            if r.requires is not None and r.requires not in names:
                raise _fail(m.name, f"{r.path}: requires {r.requires!r}, not a served mart")


# -- the JSON form (what the API reads) ----------------------------------------------------


def to_json(marts: list[ServedMart]) -> str:
    return json.dumps({"version": FORMAT_VERSION, "marts": [asdict(m) for m in marts]}, indent=1)


def from_json(text: str) -> list[ServedMart]:
    doc = json.loads(text)
    if doc.get("version") != FORMAT_VERSION:
        raise DeclarationError(f"served-mart declarations of version {doc.get('version')!r}")
    marts = []
    for m in doc["marts"]:
        routes = tuple(
            Route(
                **{
                    **r,
                    "order_by": tuple((c, bool(d)) for c, d in r["order_by"]),
                    "filters": tuple(
                        Filter(**{**f, "values": tuple(f.get("values", ()))}) for f in r["filters"]
                    ),
                }
            )
            for r in m["routes"]
        )
        columns = tuple(Column(**{**c, "values": tuple(c["values"])}) for c in m["columns"])
        marts.append(ServedMart(**{**m, "routes": routes, "columns": columns}))
    check(marts)
    return marts
