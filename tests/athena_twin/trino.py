"""Trino SQL as DuckDB runs it, with Trino's semantics where the two engines differ.

sqlglot transpiles the syntax; this module fixes what a plain transpile gets wrong for the SQL
dbt-athena and our models send (each case has a unit test in tests/unit/athena_twin/):

- integer division: Trino's ``7 / 2`` is 3 (truncated toward zero); the twin's DuckDB session
  sets ``integer_division`` so ``/`` on two integers does the same (see ``SESSION_SETTINGS``).
- timestamp precision: Trino's ``timestamp`` is ``timestamp(3)`` (milliseconds), distinct from
  ``timestamp(6)``; DuckDB's ``TIMESTAMP`` is microseconds. Casts are mapped to
  ``TIMESTAMP_MS`` / ``TIMESTAMP`` / ``TIMESTAMP_S`` / ``TIMESTAMP_NS`` so a value keeps the
  precision Trino gives it, and the engine can tell a timestamp(6) column from a timestamp(3)
  one (Hive tables refuse the first: see engine.py).
- sums: Trino's ``sum(bigint)`` is a bigint, DuckDB's a HUGEINT: result columns of integer
  sums are cast back to bigint (``trino_type``/``bigint_casts``).

What the twin does not model is refused loudly (``Unsupported``): Iceberg time travel and
metadata tables (``FOR VERSION AS OF``, ``"t$snapshots"``).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

DType = exp.DataType.Type

SESSION_SETTINGS = (
    "SET integer_division = true",
    "SET TimeZone = 'UTC'",
    # every file the twin writes has a new name, so cached footers never go stale
    "SET enable_http_metadata_cache = true",
    "SET parquet_metadata_cache = true",
)

# Trino timestamp(p) -> the DuckDB type holding exactly that precision.
_TIMESTAMP_BY_PRECISION = {0: "TIMESTAMP_S", 3: "TIMESTAMP_MS", 6: "TIMESTAMP", 9: "TIMESTAMP_NS"}


class Unsupported(Exception):
    """SQL the twin cannot execute faithfully: it refuses rather than guess."""


def parse(sql: str) -> exp.Expression:
    try:
        trees = [t for t in sqlglot.parse(sql, read="trino") if t is not None]
    except sqlglot.errors.ParseError as e:
        raise Unsupported(f"not Trino SQL the twin can parse: {e}") from e
    if len(trees) != 1:
        raise Unsupported(f"expected one statement, got {len(trees)}")
    return trees[0]


def _timestamp_precision(node: exp.DataType) -> int:
    if not node.expressions:
        return 3  # Trino: timestamp = timestamp(3)
    return int(node.expressions[0].this.this)


def refuse_unsupported(tree: exp.Expression) -> None:
    """Raise ``Unsupported`` for what needs Iceberg snapshots, which the twin does not keep."""
    for node in tree.find_all(exp.Table):
        if isinstance(node.this, exp.Identifier) and "$" in node.name:
            raise Unsupported(f"Iceberg metadata table {node.name!r}: the twin keeps no snapshots")
    if tree.find(exp.Version):
        raise Unsupported("time travel (FOR VERSION/TIMESTAMP AS OF): the twin keeps no snapshots")


def to_duckdb(tree: exp.Expression) -> str:
    """DuckDB SQL for a Trino tree, with the semantic fixes above."""
    refuse_unsupported(tree)
    tree = tree.copy()
    for node in list(tree.find_all(exp.Subquery)):
        # Trino accepts a parenthesised relation, `from ("db"."t")` (dbt-athena's
        # get_partition_batches sends one); DuckDB only a parenthesised query.
        if isinstance(node.this, exp.Table) and not node.alias:
            node.replace(node.this)
    for node in list(tree.find_all(exp.Anonymous)):
        # Trino's at_timezone(ts, zone) is `ts AT TIME ZONE zone`; sqlglot writes the latter
        # as the former (a view's stored SQL) but does not read it back.
        if node.name.lower() == "at_timezone" and len(node.expressions) == 2:
            this, zone = node.expressions
            node.replace(exp.AtTimeZone(this=this, zone=zone))
    for node in list(tree.find_all(exp.DataType)):
        if node.this == DType.TIMESTAMP:
            precision = _timestamp_precision(node)
            if precision not in _TIMESTAMP_BY_PRECISION:
                raise Unsupported(f"timestamp({precision})")
            node.replace(exp.DataType.build(_TIMESTAMP_BY_PRECISION[precision], dialect="duckdb"))
    return tree.sql("duckdb")


def trino_type(duckdb_type: str) -> tuple[str, int, int]:
    """(Athena result type name, precision, scale) of a DuckDB column type."""
    t = duckdb_type.upper()
    m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t)
    if m:
        return "decimal", int(m.group(1)), int(m.group(2))
    simple = {
        "BIGINT": ("bigint", 19),
        "HUGEINT": ("bigint", 19),
        "INTEGER": ("integer", 10),
        "SMALLINT": ("smallint", 5),
        "TINYINT": ("tinyint", 3),
        "VARCHAR": ("varchar", 2147483647),
        "BOOLEAN": ("boolean", 0),
        "DOUBLE": ("double", 17),
        "FLOAT": ("real", 7),
        "DATE": ("date", 0),
        "TIMESTAMP_S": ("timestamp", 0),
        "TIMESTAMP_MS": ("timestamp", 3),
        "TIMESTAMP": ("timestamp", 6),
        "TIMESTAMP_NS": ("timestamp", 9),
        "TIMESTAMP WITH TIME ZONE": ("timestamp with time zone", 3),
        "BLOB": ("varbinary", 0),
        '"NULL"': ("unknown", 0),
        "NULL": ("unknown", 0),
    }
    if t not in simple:
        raise Unsupported(f"no Athena type for DuckDB {duckdb_type}")
    name, precision = simple[t]
    return name, precision, 0


def glue_type(duckdb_type: str) -> str:
    """The Hive type Athena writes into Glue for a column of this DuckDB type."""
    name, precision, scale = trino_type(duckdb_type)
    return {
        "decimal": f"decimal({precision},{scale})",
        "varchar": "string",
        "integer": "int",
        "real": "float",
        "varbinary": "binary",
    }.get(name, name)


def duckdb_type_of_glue(glue: str, *, iceberg: bool) -> str:
    """The DuckDB type a Glue column reads as: Hive timestamps are timestamp(3) in Athena
    (the Hive connector's MILLISECONDS precision), Iceberg timestamps timestamp(6)."""
    g = glue.strip().lower()
    if g == "timestamp":
        return "TIMESTAMP" if iceberg else "TIMESTAMP_MS"
    if g in ("string",) or g.startswith(("varchar", "char")):
        return "VARCHAR"
    if g in ("int", "integer"):
        return "INTEGER"
    if g == "float":
        return "FLOAT"
    if g == "binary":
        return "BLOB"
    if g.startswith("struct<") and g.endswith(">"):
        fields = []
        for field in _top_level(g[len("struct<") : -1]):
            name, _, inner = field.partition(":")
            fields.append(f'"{name.strip()}" {duckdb_type_of_glue(inner, iceberg=iceberg)}')
        return f"STRUCT({', '.join(fields)})"
    if g.startswith("array<") and g.endswith(">"):
        return duckdb_type_of_glue(g[len("array<") : -1], iceberg=iceberg) + "[]"
    if g.startswith("decimal") or g in (
        "bigint",
        "smallint",
        "tinyint",
        "boolean",
        "double",
        "date",
    ):
        return g.upper()
    raise Unsupported(f"Glue type {glue!r}")


def _top_level(fields: str) -> list[str]:
    """``a:int,b:struct<c:int,d:int>`` split at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(fields):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(fields[start:i])
            start = i + 1
    parts.append(fields[start:])
    return [p for p in parts if p.strip()]


def bigint_casts(columns: list[tuple[str, str]]) -> str | None:
    """A select list casting HUGEINT columns (DuckDB's integer sums) to bigint, as Trino
    types them; None when there is none."""
    if not any(t.upper() == "HUGEINT" for _, t in columns):
        return None
    parts = []
    for name, t in columns:
        quoted = '"' + name.replace('"', '""') + '"'
        parts.append(f"cast({quoted} as bigint) as {quoted}" if t.upper() == "HUGEINT" else quoted)
    return ", ".join(parts)
