"""The API's domain: every data route answered from its served mart's declaration.

One function, ``answer``, serves every route declared in a served mart's yml
(api/declarations.py): it builds one parameterised SQL statement (the same text on DuckDB
locally and on Athena; every client value a bound parameter), runs it on the request's
snapshot and renders the rows as the contract's JSON. ``snap`` is one consistent build: a
request uses exactly one snapshot, so no answer mixes two builds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from api.cursors import CursorCodec, fingerprint, invalid_cursor
from api.declarations import Column, Route, ServedMart
from api.errors import not_found
from api.jsonenc import Num, date_text, integer, iso_utc, num_text, text
from api.params import parse_key_decimal, parse_key_int

Params = dict[str, Any]


class Snapshot(Protocol):
    """One consistent build of the served marts, and the one place engines differ."""

    build_id: str
    data_as_of: dt.datetime | None
    marts: Mapping[str, ServedMart]  # the declarations this build was exported with

    def table(self, mart: str, key: Sequence[str] = ()) -> str:
        """The SQL name of a served mart's relation in this build; ``key``: the columns the
        statement looks rows up by (an engine may keep a copy sorted by them)."""

    def windows(
        self,
        mart: str,
        order: Sequence[tuple[str, bool]],
        equal: Mapping[str, object],
        after: object,
        need: int,
    ) -> Iterator[tuple[str, bool]]:
        """SQL sources of a statement on ``mart`` (the columns of ``equal`` held to those
        values, ordered by ``order``, after a row whose first order value is ``after`` if not
        None), each with whether it holds every row. A source that does not holds rows that
        all sort after the previous sources' rows, so a statement that wants ``need`` rows
        may stop at the first sources that yield them; one that does starts the statement
        over. An engine that reads the whole relation anyway yields its table once."""

    def query(self, sql: str, params: Sequence[object]) -> list[tuple]:
        """Rows of ``sql`` with ``?`` placeholders bound to ``params`` (ints and text)."""


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[object, ...]


def _placeholder(col: Column) -> str:
    """A bound parameter of the column's type: decimals and dates go as text, cast in SQL
    (Athena's ExecutionParameters are literals; DuckDB binds the same text the same way)."""
    if col.kind == "decimal":
        return f"cast(? as {col.data_type})"
    if col.kind == "date":
        return "cast(? as date)"
    if col.kind == "timestamp":
        return "cast(? as timestamp)"
    return "?"


def _bind(col: Column, value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _key_value(col: Column, value: object) -> object:
    """A row's order value as it goes into a cursor (JSON: ints, exact decimal text)."""
    if col.kind == "int":
        return int(value)  # type: ignore[call-overload]
    if col.kind == "decimal":
        return format(Decimal(value), "f")  # type: ignore[arg-type]
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _parse_key_value(col: Column, raw: object) -> object:
    """A cursor key read back as a value of the column's type; ValueError for anything the
    column cannot hold (a signed cursor is trusted to be ours, but the key still never
    reaches SQL unchecked: a cast that fails there would be a 500)."""
    if col.kind == "int":
        return parse_key_int(raw)
    if col.kind == "decimal":
        value = parse_key_decimal(raw)
        integer_digits = col.precision - col.scale
        if value.as_tuple().exponent < -col.scale or abs(value) >= Decimal(10) ** integer_digits:
            raise ValueError("decimal out of the column's range in cursor")
        return value
    if not isinstance(raw, str) or len(raw) > 200:
        raise ValueError("bad text in cursor")
    if col.kind == "date":
        return dt.date.fromisoformat(raw)
    if col.kind == "timestamp":
        return dt.datetime.fromisoformat(raw)
    return raw


def select_sql(
    snap: Snapshot,
    mart: ServedMart,
    route: Route,
    p: Params,
    after: Sequence[object] | None = None,
    limit: int | None = None,
    source: str | None = None,
) -> Statement:
    """The route's statement: its mart's columns, filtered, in its order, keyset-paged."""
    conds: list[str] = []
    args: list[object] = []
    fixed: set[str] = set()  # columns an equality holds to one value
    for name in route.path_params:
        col = mart.column(name)
        conds.append(f"{name} = {_placeholder(col)}")
        args.append(_bind(col, p[name]))
        fixed.add(name)
    for f in route.filters:
        col = mart.column(f.column)
        if f.param is not None and p.get(f.param) is not None:
            if col.kind == "text" and not f.values and not col.values:
                # free text (an ingest_id): matched in any case, as every filter value is
                # (CONTRACT.md section 4); two spellings may match, so the column stays in
                # the order
                conds.append(f"lower({f.column}) = {_placeholder(col)}")
                args.append(_bind(col, str(p[f.param]).lower()))
            else:
                conds.append(f"{f.column} = {_placeholder(col)}")
                args.append(_bind(col, p[f.param]))
                fixed.add(f.column)
        for param, op in ((f.range_from, ">="), (f.range_to, "<=")):
            if param is not None and p.get(param) is not None:
                conds.append(f"{f.column} {op} {_placeholder(col)}")  # bare column: pruning
                args.append(_bind(col, p[param]))
    if after is not None:  # strictly after the last row of the previous page
        alternatives = []
        for i, (name, desc) in enumerate(route.order_by):
            parts = []
            for prev, _ in route.order_by[:i]:
                parts.append(f"{prev} = {_placeholder(mart.column(prev))}")
            parts.append(f"{name} {'<' if desc else '>'} {_placeholder(mart.column(name))}")
            alternatives.append(" and ".join(parts))
            args.extend(
                _bind(mart.column(c), after[j]) for j, (c, _) in enumerate(route.order_by[: i + 1])
            )
        conds.append("(" + " or ".join(f"({a})" for a in alternatives) + ")")
    source = source or snap.table(mart.name, route.path_params)
    sql = f"select {', '.join(c.name for c in mart.columns)} from {source}"
    if conds:
        sql += " where " + " and ".join(conds)
    # A column the statement holds to one value orders nothing: leaving it out of ORDER BY
    # gives the same rows in the same order, and spares the engine a sort key (DuckDB sorts
    # a client's lookup by the id it filters on otherwise; with no key left, no sort at all).
    order = [(c, d) for c, d in route.order_by if c not in fixed]
    if order:
        sql += " order by " + ", ".join(f"{c}{' desc' if d else ''}" for c, d in order)
    if limit is not None:
        sql += f" limit {int(limit)}"  # the only number in the text: the server's own int
    return Statement(sql, tuple(args))


def _json_array(value: object) -> str:
    """A stored JSON array of strings, re-encoded (so a malformed one cannot break the item)."""
    if value is None:
        return "null"
    items = json.loads(value)  # type: ignore[arg-type]
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"not a JSON array of strings: {value!r}")
    return "[" + ",".join(text(i) for i in items) + "]"


def _timestamp_text(value: object) -> str:
    stamp = iso_utc(value)  # type: ignore[arg-type]
    return "null" if stamp is None else f'"{stamp}"'


def _value_renderer(col: Column):
    """``render(value) -> str``: the JSON text of one value of ``col`` (its kind and scale
    looked up once, not per value)."""
    if col.json_array:
        return _json_array
    kind = col.kind
    if kind == "int":
        return integer
    if kind == "decimal":
        return partial(num_text, places=col.scale)
    if kind == "date":
        return date_text
    if kind == "timestamp":
        return _timestamp_text
    return text


def item_renderer(mart: ServedMart):
    """``render(row) -> Num``: one row as the item's JSON text, in the declared column order,
    a nested object at its first column (null when all its columns are null)."""
    position = {c.name: i for i, c in enumerate(mart.columns)}
    nested_in = {col: obj for obj, fields in mart.nest.items() for col in fields.values()}
    # ("col", (index, '"key":', value renderer)) or ("obj", ('"key":', [fields as for col]))
    plan: list[tuple[str, object]] = []
    placed: set[str] = set()
    for col in mart.columns:
        obj = nested_in.get(col.name)
        if obj is None:
            plan.append(
                ("col", (position[col.name], encode_key(col.key) + ":", _value_renderer(col)))
            )
        elif obj not in placed:
            placed.add(obj)
            fields = [
                (position[c], encode_key(f) + ":", _value_renderer(mart.column(c)))
                for f, c in mart.nest[obj].items()
            ]
            plan.append(("obj", (encode_key(obj) + ":", fields)))
    flat = [spec for what, spec in plan if what == "col"]
    if len(flat) == len(plan):  # no nested object: one pass over the columns

        def render_flat(row: Sequence[object]) -> Num:
            return Num("{" + ",".join([k + f(row[i]) for i, k, f in flat]) + "}")  # type: ignore[misc]

        return render_flat

    def render(row: Sequence[object]) -> Num:
        parts = []
        for what, spec in plan:
            if what == "col":
                i, key, fn = spec  # type: ignore[misc]
                parts.append(key + fn(row[i]))
            else:
                key, fields = spec  # type: ignore[misc]
                if all(row[i] is None for i, _k, _f in fields):
                    parts.append(key + "null")
                else:
                    inner = ",".join([k + f(row[i]) for i, k, f in fields])
                    parts.append(key + "{" + inner + "}")
        return Num("{" + ",".join(parts) + "}")

    return render


def encode_key(name: str) -> str:
    return text(name)


_RENDERERS: dict[int, Any] = {}


def _renderer(mart: ServedMart):
    found = _RENDERERS.get(id(mart))
    if found is None or found[0] is not mart:
        if len(_RENDERERS) > 256:  # each build brings its own declarations: drop old ones
            _RENDERERS.clear()
        found = (mart, item_renderer(mart))
        _RENDERERS[id(mart)] = found
    return found[1]


def _entity(param: str) -> str:
    return param[:-3] if param.endswith("_id") else param


def health(snap: Snapshot | None) -> dict:
    if snap is None:
        return {"status": "unavailable", "data_as_of": None}
    return {"status": "ok", "data_as_of": iso_utc(snap.data_as_of), "build_id": snap.build_id}


def _fetch(
    snap: Snapshot,
    mart: ServedMart,
    route: Route,
    p: Params,
    after: Sequence[object] | None,
    limit: int,
) -> list[tuple]:
    """Up to ``limit`` rows of the route's statement, read window by window (the engine's
    sources in order, ``Snapshot.windows``) until that many are found."""
    rows: list[tuple] = []
    equal = {n: p[n] for n in route.path_params}
    for f in route.filters:  # an equality filter: a copy sorted by it may serve the statement
        if f.param is not None and p.get(f.param) is not None:
            equal.setdefault(f.column, p[f.param])
    first = after[0] if after is not None else None
    for source, whole in snap.windows(mart.name, route.order_by, equal, first, limit):
        if whole:
            rows = []
        st = select_sql(snap, mart, route, p, after, limit - len(rows), source)
        rows += snap.query(st.sql, st.params)
        if len(rows) >= limit:
            break
    return rows


def _require_parent(snap: Snapshot, route: Route, p: Params) -> None:
    """404 when the path's id is absent from the route's parent mart (e.g. a client's orders
    for an unknown client). Asked only when the route's own statement found no rows: a row
    carrying the id already shows the parent exists, so most requests run one query."""
    parent = snap.marts[route.requires]  # type: ignore[index]
    for name in route.path_params:
        col = parent.column(name)
        found = any(
            snap.query(
                f"select {name} from {source} where {name} = {_placeholder(col)} limit 1",
                [_bind(col, p[name])],
            )
            for source, _whole in snap.windows(parent.name, (), {name: p[name]}, None, 1)
        )
        if not found:
            raise not_found(f"{_entity(name)} {p[name]} not found")


def answer(snap: Snapshot, route: Route, p: Params, codec: CursorCodec) -> object:
    """The JSON body of one data route (a Num item, or a dict of items)."""
    mart = next(m for m in snap.marts.values() if route in m.routes)
    render = _renderer(mart)
    if route.one:
        rows = _fetch(snap, mart, route, p, None, 2)
        if not rows:
            name = route.path_params[0]
            raise not_found(f"{_entity(name)} {p[name]} not found")
        return render(rows[0])
    if not route.paged:
        st = select_sql(snap, mart, route, p)
        rows = snap.query(st.sql, st.params)
        if not rows and route.requires is not None:
            _require_parent(snap, route, p)
        return {"items": [render(r) for r in rows]}
    limit = p["limit"]
    filters = [(n, p[n]) for n in route.path_params]
    filters += [(n, p[n]) for f in route.filters for n in f.params if p.get(n) is not None]
    fp = fingerprint(route.operation, filters)
    order_cols = [mart.column(c) for c, _ in route.order_by]
    after = None
    if p.get("cursor") is not None:
        key = codec.decode(p["cursor"], fp)
        try:
            if len(key) != len(order_cols):
                raise ValueError
            after = [_parse_key_value(c, v) for c, v in zip(order_cols, key, strict=True)]
        except ValueError:
            raise invalid_cursor() from None
    rows = _fetch(snap, mart, route, p, after, limit + 1)
    if not rows and route.requires is not None:
        _require_parent(snap, route, p)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        idx = [mart.columns.index(c) for c in order_cols]
        last = rows[-1]
        next_cursor = codec.encode(
            fp, [_key_value(c, last[i]) for c, i in zip(order_cols, idx, strict=True)]
        )
    return {"items": [render(r) for r in rows], "next_cursor": next_cursor}
