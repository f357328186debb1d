"""The Athena twin's engine: runs the statements dbt-athena sends, with DuckDB over the Glue
catalog and S3 of a moto server, and refuses what it cannot do faithfully.

What it mimics, and where each behaviour is documented:

- Work groups (AWS docs, "Workgroup settings override client-side settings"): with
  EnforceWorkGroupConfiguration the work group's result location wins over the client's. A Hive
  CTAS that names an ``external_location`` in such a work group is refused by
  StartQueryExecution (the message dbt-athena #176 / #160 quote), and one without it is written
  under ``<result location>tables/<query id>/`` (dbt-athena #539, AWS docs "CTAS table
  properties": external_location). Iceberg tables are managed and keep their ``location``
  (dbt-athena #231, #539).
- An Iceberg CTAS takes timestamp(6) only: timestamp(3), Trino's plain ``timestamp``, fails
  "Timestamp precision (3) not supported for Iceberg" (Trino's Iceberg TypeConverter,
  trinodb/trino #6658), and a time zone fails too (AWS docs, "Supported data types for
  Iceberg tables in Athena").
- Hive tables hold timestamp(3) only: a CTAS or INSERT of a timestamp(6) column into one fails
  with Trino's "Incorrect timestamp precision for timestamp(6); the configured precision is
  MILLISECONDS" (trinodb/trino #6436, HiveMetadata.validateTimestampColumns; dbt-athena #235),
  and Hive columns read as timestamp(3). Iceberg keeps timestamp(6) (AWS docs "Supported data
  types for Iceberg tables").
- A CTAS or INSERT INTO writes at most 100 partitions (AWS docs "CTAS considerations and
  limitations": HIVE_TOO_MANY_OPEN_PARTITIONS); dbt-athena catches the error name and falls back
  to batches (impl.py: run_query_with_partitions_limit_catching). The twin counts the
  partitions each write touches and fails the same way above 100.
- CTAS partition columns must come last in the select list, and the target directory must be
  empty (HIVE_PATH_ALREADY_EXISTS) (AWS docs "CTAS considerations and limitations").
- MERGE, OPTIMIZE and VACUUM work on Iceberg tables only (AWS docs "MERGE INTO", "OPTIMIZE",
  "VACUUM").
- No SQL DDL (ALTER TABLE, DROP TABLE) on an Iceberg table under a location registered with
  Lake Formation (AWS docs, "Query Apache Iceberg tables": considerations); the account
  registers the warehouse/ prefix as the template does.
- Views are stored in Glue as Athena stores them (TableType VIRTUAL_VIEW, "Presto View" text).
- Hive tables have the hidden columns ``"$path"``, ``"$file_modified_time"`` (timestamp(3)
  with time zone) and ``"$file_size"`` (trino.io docs, Hive connector, "Metadata columns"),
  taken from the S3 listing. They are added to every Hive table of a query that names one
  (so in that query a ``select *`` would show them too), refused on Iceberg tables, and
  ``"$partition"``/``"$bucket"`` are not provided (the query fails as an unknown column).

Not faithful, so refused loudly (``Unsupported``) or documented: the twin's Iceberg tables are
Parquet files plus a JSON list of them (the Glue ``metadata_location``), one snapshot deep: no
time travel or metadata tables (refused), VACUUM only checks the table, OPTIMIZE rewrites the
current files into one. Statements it does not know are refused, never ignored.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import duckdb
import duckdb_extension_httpfs
from sqlglot import exp

from tests.athena_twin import trino
from tests.athena_twin.trino import Unsupported

PARTITION_LIMIT = 100
HTTPFS = (
    Path(next(iter(duckdb_extension_httpfs.__path__)))
    / "extensions"
    / f"v{duckdb.__version__}"
    / "httpfs.duckdb_extension"
)
PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    },
}


class QueryFailed(Exception):
    """A query Athena would accept and then fail (state FAILED)."""


class InvalidRequest(Exception):
    """A request StartQueryExecution itself refuses (HTTP 400, InvalidRequestException)."""


@dataclass(frozen=True)
class WorkGroup:
    name: str
    output_location: str | None
    enforced: bool
    bytes_scanned_cutoff: int | None = None


@dataclass
class Execution:
    id: str
    query: str
    work_group: str
    database: str
    output_location: str | None
    state: str = "QUEUED"
    reason: str | None = None
    statement_type: str = "DML"
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    update_count: int = 0
    partitions_written: int = 0
    submitted: float = 0.0
    elapsed: float = 0.0


def _split_s3(uri: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if not m:
        raise QueryFailed(f"not an S3 location: {uri!r}")
    return m.group(1), m.group(2)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class AthenaTwin:
    """One Athena account over a moto server: work groups, query executions, results."""

    def __init__(self, endpoint_url: str, work_groups: list[WorkGroup], region: str = "us-east-1"):
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self.glue = session.client("glue", endpoint_url=endpoint_url)
        self.s3 = session.client("s3", endpoint_url=endpoint_url)
        self.work_groups = {wg.name: wg for wg in work_groups}
        # S3 prefixes registered with Lake Formation (the template's WarehouseLocation)
        self.lake_formation_locations: list[str] = []
        self.executions: dict[str, Execution] = {}
        self._lock = threading.Lock()
        self.con = duckdb.connect()
        self.con.execute(f"INSTALL '{HTTPFS}'")
        self.con.execute("LOAD httpfs")
        host = re.sub(r"^https?://", "", endpoint_url).rstrip("/")
        self.con.execute(
            "CREATE SECRET twin_s3 (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false, REGION '{region}')"
        )
        for setting in trino.SESSION_SETTINGS:
            self.con.execute(setting)
        self.con.execute("ATTACH ':memory:' AS awsdatacatalog")

    # ------------------------------------------------------------------ the API ---------
    def start(
        self, query: str, database: str, work_group: str, client_output: str | None
    ) -> Execution:
        wg = self.work_groups.get(work_group)
        if wg is None:
            raise InvalidRequest(f"WorkGroup {work_group} is not found.")
        output = wg.output_location if (wg.enforced or not client_output) else client_output
        if not output:
            raise InvalidRequest("No output location provided.")
        ex = Execution(
            id=str(uuid.uuid4()),
            query=query,
            work_group=work_group,
            database=database,
            output_location=output.rstrip("/") + "/",
            submitted=dt.datetime.now(dt.UTC).timestamp(),
        )
        with self._lock:
            started = time.perf_counter()
            try:
                self._run(ex, wg)
                ex.state = "SUCCEEDED"
            except QueryFailed as e:
                ex.state, ex.reason = "FAILED", str(e)
            except Unsupported as e:
                ex.state, ex.reason = "FAILED", f"ATHENA TWIN REFUSES: {e}"
            except duckdb.Error as e:
                ex.state, ex.reason = "FAILED", f"twin engine error: {e}"
            ex.elapsed = time.perf_counter() - started
            self.executions[ex.id] = ex
        return ex

    # ---------------------------------------------------------------- dispatching -------
    def _run(self, ex: Execution, wg: WorkGroup) -> None:
        sql = _strip_comments(ex.query)
        head = " ".join(sql.split()[:3]).lower()
        hive_ddl = [
            (r"create (schema|database) ", self._create_schema),
            (r"drop (schema|database) ", self._drop_schema),
            (r"create external table ", self._create_external_table),
            (r"alter table \S+ set tblproperties", self._set_tblproperties),
            (r"alter table \S+ rename to ", self._rename_table),
            (r"drop table ", self._drop_table),
            (r"drop view ", self._drop_view),
            (r"optimize ", self._optimize),
            (r"vacuum ", self._vacuum),
        ]
        for pattern, handler in hive_ddl:
            if re.match(pattern, sql, re.I | re.S):
                if head.startswith(("alter table", "drop table")):
                    self._refuse_ddl_on_registered_iceberg(ex, sql)
                ex.statement_type = "DDL" if not head.startswith(("optimize", "vacuum")) else "DML"
                handler(ex, sql)
                return
        tree = trino.parse(sql)
        if isinstance(tree, exp.Create) and tree.kind == "VIEW":
            ex.statement_type = "DDL"
            self._create_view(ex, tree)
        elif isinstance(tree, exp.Create) and tree.kind == "TABLE" and tree.expression:
            ex.statement_type = "DDL"
            self._ctas(ex, wg, tree)
        elif isinstance(tree, exp.Insert):
            self._insert(ex, tree)
        elif isinstance(tree, exp.Merge):
            self._merge(ex, tree)
        elif isinstance(tree, exp.Query):
            self._select(ex, tree)
        else:
            raise Unsupported(f"statement {type(tree).__name__}: {sql[:80]!r}")

    # ---------------------------------------------------------------- catalog -----------
    def _table(self, db: str, name: str) -> dict | None:
        try:
            return self.glue.get_table(DatabaseName=db, Name=name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            return None

    def _require(self, db: str, name: str) -> dict:
        table = self._table(db, name)
        if table is None:
            raise QueryFailed(
                f"TABLE_NOT_FOUND: line 1:1: Table 'awsdatacatalog.{db}.{name}' does not exist"
            )
        return table

    def _database_exists(self, db: str) -> bool:
        try:
            self.glue.get_database(Name=db)
            return True
        except self.glue.exceptions.EntityNotFoundException:
            return False

    @staticmethod
    def _is_iceberg(table: dict) -> bool:
        return table.get("Parameters", {}).get("table_type", "").upper() == "ICEBERG"

    def _names(self, node: exp.Table, default_db: str) -> tuple[str, str]:
        db = node.db or default_db
        if node.catalog and node.catalog.lower() != "awsdatacatalog":
            raise Unsupported(f"catalog {node.catalog!r}: the twin has the Glue catalog only")
        return db.lower(), node.name.lower()

    # ------------------------------------------------------------ S3 ----------------
    def _objects(self, uri: str) -> dict[str, tuple[dt.datetime, int]]:
        """Every object under the prefix ``uri``: its URI -> (last modified, size)."""
        bucket, prefix = _split_s3(uri.rstrip("/") + "/")
        objects = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                objects[f"s3://{bucket}/{o['Key']}"] = (o["LastModified"], o["Size"])
        return objects

    def _keys(self, uri: str) -> list[str]:
        return list(self._objects(uri))

    def _data_files(self, uri: str) -> list[str]:
        # Hive skips files whose name starts with _ or . (and "directory" markers)
        return [
            k
            for k in self._keys(uri)
            if not k.endswith("/") and not k.rsplit("/", 1)[-1].startswith(("_", "."))
        ]

    # ------------------------------------------------------------ reading -------------
    def _prepare(self, tree: exp.Expression, default_db: str, seen: frozenset = frozenset()):
        """Define, in DuckDB, every Glue table and view the tree reads."""
        trino.refuse_unsupported(tree)
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for node in tree.find_all(exp.Table):
            if not node.db and node.name.lower() in ctes:
                continue
            if not node.name:
                continue
            db, name = self._names(node, default_db)
            if (db, name) in seen:
                raise QueryFailed(f"view {db}.{name} refers to itself")
            table = self._require(db, name)
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS awsdatacatalog.{_quote(db)}")
            target = f"awsdatacatalog.{_quote(db)}.{_quote(name)}"
            if table.get("TableType") == "VIRTUAL_VIEW":
                view = _decode_view(table)
                view_tree = trino.parse(view["originalSql"])
                view_db = view.get("schema", db)
                self._prepare(view_tree, view_db, seen | {(db, name)})
                body = trino.to_duckdb(self._qualified(view_tree, view_db))
            else:
                body = self._reader(table, _hidden_columns(tree))
            self.con.execute(f"CREATE OR REPLACE VIEW {target} AS {body}")

    @staticmethod
    def _qualified(tree: exp.Expression, default_db: str) -> exp.Expression:
        """The tree with every table named awsdatacatalog.<db>.<table>, as the twin's DuckDB
        holds them (Athena resolves a bare name in the query's database)."""
        tree = tree.copy()
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for node in tree.find_all(exp.Table):
            if not node.name or (not node.db and node.name.lower() in ctes):
                continue
            node.set("db", exp.to_identifier(node.db or default_db, quoted=True))
            node.set("catalog", exp.to_identifier("awsdatacatalog"))
        return tree

    def _reader(self, table: dict, hidden: frozenset[str] = frozenset()) -> str:
        """DuckDB SQL reading a Glue table's files, with ``hidden``: the hidden columns the
        query names (``$path``, ``$file_modified_time``, ``$file_size``), which Trino's Hive
        connector adds to every Hive table (trino.io docs, Hive connector, "Metadata
        columns"). They are added only when named, so ``select *`` does not show them (it
        would, in the same query as a named one: the twin defines one view per table)."""
        iceberg = self._is_iceberg(table)
        sd = table["StorageDescriptor"]
        keys = table.get("PartitionKeys", []) or []
        columns = [(c["Name"].lower(), c["Type"]) for c in sd["Columns"] + keys]
        casts = ", ".join(
            f"cast({_quote(n)} as {trino.duckdb_type_of_glue(t, iceberg=iceberg)}) as {_quote(n)}"
            for n, t in columns
        )
        unknown = hidden - set(HIDDEN_COLUMNS)
        if unknown:
            raise QueryFailed(f"Column '{sorted(unknown)[0]}' cannot be resolved")
        if hidden and iceberg:
            raise Unsupported("hidden file columns of an Iceberg table")
        if iceberg:
            files = self._snapshot(table)
        elif keys:
            # Only registered partitions are read, as Athena does; one listing of the table's
            # location serves every partition under it.
            root = sd["Location"].rstrip("/") + "/"
            under_root = self._data_files(root)
            files = []
            for partition in self._partitions(table):
                loc = partition["StorageDescriptor"]["Location"].rstrip("/")
                expected = "/".join(
                    f"{k['Name']}={v}" for k, v in zip(keys, partition["Values"], strict=True)
                )
                if not loc.endswith(expected):
                    raise Unsupported(f"partition location {loc} is not .../{expected}/")
                if loc.startswith(root):
                    files += [f for f in under_root if f.startswith(loc + "/")]
                else:
                    files += self._data_files(loc)
        else:
            files = self._data_files(sd["Location"])
        hidden_types = {n: t for n, t in HIDDEN_COLUMNS.items() if n in hidden}
        if not files:
            nulls = ", ".join(
                [
                    f"cast(null as {trino.duckdb_type_of_glue(t, iceberg=iceberg)}) as {_quote(n)}"
                    for n, t in columns
                ]
                + [f"cast(null as {t}) as {_quote(n)}" for n, t in hidden_types.items()]
            )
            return f"select {nulls} where false"
        file_list = "[" + ", ".join(_literal(f) for f in files) + "]"
        serde = sd.get("SerdeInfo", {}).get("SerializationLibrary", "")
        hive = "true" if keys and not iceberg else "false"
        if "OpenCSVSerde" in serde:
            skip = table.get("Parameters", {}).get("skip.header.line.count", "0")
            source = (
                f"read_csv({file_list}, header = {'true' if skip == '1' else 'false'}, "
                f"all_varchar = true, hive_partitioning = {hive}, "
                f"names = [{', '.join(_literal(n) for n, _ in columns)}])"
            )
        elif "JsonSerDe" in serde:
            # Hive's and OpenX's JSON SerDes: one JSON object per line (a pretty-printed file
            # fails, as on Athena), keys matched to columns by name, other keys ignored; a
            # nested value in a `string` column reads as its JSON text (OpenX).
            typed = ", ".join(
                f"{_literal(c['Name'].lower())}: "
                f"{_literal(trino.duckdb_type_of_glue(c['Type'], iceberg=False))}"
                for c in sd["Columns"]
            )
            source = (
                f"read_json({file_list}, format = 'newline_delimited', columns = {{{typed}}}, "
                f"hive_partitioning = {hive})"
            )
        elif "Parquet" in serde or iceberg:
            source = f"read_parquet({file_list}, hive_partitioning = {hive}, union_by_name = true)"
        else:
            raise Unsupported(f"table format {serde!r}")
        if not hidden_types:
            return f"select {casts} from {source}"
        # the files' S3 metadata, joined to each row by DuckDB's filename column
        stats = self._object_stats(files)
        values = ", ".join(
            f"({_literal(f)}, cast({_literal(stats[f][0].isoformat())} as TIMESTAMPTZ), "
            f"{stats[f][1]})"
            for f in files
        )
        hidden_sql = {
            "$path": "twin_files.path",
            "$file_modified_time": "twin_files.modified",
            "$file_size": "twin_files.size",
        }
        extra = ", ".join(f"{hidden_sql[n]} as {_quote(n)}" for n in hidden_types)
        source = source[:-1] + ", filename = 'twin_filename')"
        return (
            f"select {casts}, {extra} from {source} as twin_rows "
            f"join (values {values}) as twin_files(path, modified, size) "
            "on twin_rows.twin_filename = twin_files.path"
        )

    def _object_stats(self, files: list[str]) -> dict[str, tuple[dt.datetime, int]]:
        """Last-modified time and size of each S3 object, from one listing per folder."""
        stats: dict[str, tuple[dt.datetime, int]] = {}
        for folder in sorted({f.rsplit("/", 1)[0] for f in files}):
            stats.update(self._objects(folder))
        return stats

    def _partitions(self, table: dict) -> list[dict]:
        parts = []
        for page in self.glue.get_paginator("get_partitions").paginate(
            DatabaseName=table["DatabaseName"], TableName=table["Name"]
        ):
            parts += page["Partitions"]
        return parts

    def _snapshot(self, table: dict) -> list[str]:
        location = table.get("Parameters", {}).get("metadata_location")
        if not location:
            return []
        bucket, key = _split_s3(location)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)["data_files"]

    def _describe(self, sql: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.con.execute(f"DESCRIBE {sql}").fetchall()]

    def _query(self, tree: exp.Expression, default_db: str) -> tuple[str, list[tuple[str, str]]]:
        """DuckDB SQL of a Trino query, its columns typed as Trino would type them."""
        self._prepare(tree, default_db)
        sql = trino.to_duckdb(self._qualified(tree, default_db))
        columns = self._describe(sql)
        casts = trino.bigint_casts(columns)
        if casts:
            sql = f"select {casts} from ({sql}) as twin_q"
            columns = self._describe(sql)
        for name, t in columns:
            trino.trino_type(t)  # refuses a type Athena has no name for
            if not name:
                raise QueryFailed("column name not specified")
        return sql, columns

    def _select(self, ex: Execution, tree: exp.Expression) -> None:
        sql, ex.columns = self._query(tree, ex.database)
        ex.rows = self.con.execute(sql).fetchall()
        ex.update_count = 0

    # ------------------------------------------------------------ writing -------------
    def _check_hive_columns(self, columns: list[tuple[str, str]]) -> None:
        for name, t in columns:
            type_name, precision, _ = trino.trino_type(t)
            if type_name == "timestamp" and precision != 3:
                raise QueryFailed(
                    f"HIVE_UNSUPPORTED_FORMAT: Incorrect timestamp precision for "
                    f"timestamp({precision}); the configured precision is MILLISECONDS; "
                    f"column name: {name}"
                )

    def _count_partitions(self, sql: str, partition_by: list[str], iceberg: bool) -> int:
        if not partition_by:
            return 0
        cols = ", ".join(_quote(c) for c in partition_by)
        n = self.con.execute(
            f"select count(*) from (select distinct {cols} from ({sql}))"
        ).fetchone()
        if n[0] > PARTITION_LIMIT:
            code = "ICEBERG" if iceberg else "HIVE"
            # The messages Athena gives (aws-sdk-pandas #3222, Tomme/dbt-athena #149)
            what = "partitions" if iceberg else "partitions/buckets"
            raise QueryFailed(
                f"{code}_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of {PARTITION_LIMIT} open "
                f"writers for {what} ({n[0]} in this write)"
            )
        return n[0]

    def _write_hive(
        self, ex: Execution, sql: str, location: str, partition_by: list[str]
    ) -> list[list[str]]:
        """Parquet files under ``location`` (Hive layout); returns the partition values."""
        prefix = location.rstrip("/")
        stem = ex.id.replace("-", "")
        if partition_by:
            cols = ", ".join(_quote(c) for c in partition_by)
            self.con.execute(
                f"COPY ({sql}) TO {_literal(prefix)} (FORMAT parquet, COMPRESSION zstd, "
                f"PARTITION_BY ({cols}), OVERWRITE_OR_IGNORE true, "
                f"FILENAME_PATTERN '{stem}_{{i}}')"
            )
            values = self.con.execute(
                "select distinct "
                + ", ".join(f"cast({_quote(c)} as varchar)" for c in partition_by)
                + f" from ({sql})"
            ).fetchall()
            return [list(v) for v in values]
        self.con.execute(
            f"COPY ({sql}) TO {_literal(prefix + '/' + stem + '.parquet')} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        return []

    def _write_iceberg(self, ex: Execution, sql: str, location: str, keep: list[str]) -> str:
        """A new snapshot: ``keep`` plus one new data file of ``sql``; returns its metadata."""
        stem = ex.id.replace("-", "")
        data = f"{location.rstrip('/')}/data/{stem}.parquet"
        # Iceberg keeps microseconds: timestamp(3) values are stored as timestamp(6).
        cols = self._describe(sql)
        select = ", ".join(
            f"cast({_quote(n)} as TIMESTAMP) as {_quote(n)}"
            if t.upper() in ("TIMESTAMP_MS", "TIMESTAMP_S")
            else _quote(n)
            for n, t in cols
        )
        self.con.execute(
            f"COPY (select {select} from ({sql})) TO {_literal(data)} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        metadata = f"{location.rstrip('/')}/metadata/{stem}.metadata.json"
        bucket, key = _split_s3(metadata)
        body = {
            "twin": "not Iceberg metadata: the Athena twin's list of this snapshot's files",
            "data_files": [*keep, data],
        }
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())
        return metadata

    def _ctas(self, ex: Execution, wg: WorkGroup, tree: exp.Create) -> None:
        db, name = self._names(tree.this, ex.database)
        props = _properties(tree)
        table_type = str(props.get("table_type", "hive")).lower()
        iceberg = table_type == "iceberg"
        if not iceberg and "external_location" in props and wg.enforced:
            # StartQueryExecution refuses it (dbt-athena #176, #160).
            raise InvalidRequest(
                "The Create Table As Select query failed because it was submitted with an "
                "'external_location' property to an Athena Workgroup that enforces a "
                "centralized output location for all queries. Please remove the "
                "'external_location' property and resubmit the query."
            )
        if not self._database_exists(db):
            raise QueryFailed(f"SCHEMA_NOT_FOUND: Schema {db} does not exist")
        if self._table(db, name) is not None:
            raise QueryFailed(
                f"TABLE_ALREADY_EXISTS: Table awsdatacatalog.{db}.{name} already exists"
            )
        fmt = str(props.get("format", "parquet")).lower()
        if fmt != "parquet":
            raise Unsupported(f"format {fmt!r} (the twin writes Parquet)")
        partition_by = [
            p.lower() for p in props.get("partitioning" if iceberg else "partitioned_by", [])
        ]
        sql, columns = self._query(tree.expression, ex.database)
        names = [n for n, _ in columns]
        if iceberg:
            location = props.get("location")
            if not location:
                raise QueryFailed("Iceberg CTAS needs a 'location' property")
            for n, t in columns:
                if t.upper() in ("TINYINT", "SMALLINT"):
                    raise QueryFailed(
                        f"NOT_SUPPORTED: Unsupported type {t.lower()} for Iceberg ({n})"
                    )
                type_name, precision, _ = trino.trino_type(t)
                if type_name == "timestamp" and precision != 6:
                    # Trino's Iceberg TypeConverter (trinodb/trino #6658); later Trino
                    # releases coerce a CTAS instead: the twin holds to the stricter one
                    raise QueryFailed(
                        f"NOT_SUPPORTED: Timestamp precision ({precision}) not supported for "
                        f'Iceberg. Use "timestamp(6)" instead. ({n})'
                    )
                if type_name == "timestamp with time zone":
                    # AWS docs, "Supported data types for Iceberg tables in Athena"
                    raise QueryFailed(f"Unsupported Hive type: timestamp(6) with time zone ({n})")
            if not set(partition_by) <= set(names):
                raise QueryFailed(f"partitioning columns {partition_by} not in {names}")
        else:
            location = props.get("external_location") or f"{ex.output_location}tables/{ex.id}"
            if partition_by and names[-len(partition_by) :] != partition_by:
                raise QueryFailed(
                    "HIVE_COLUMN_ORDER_MISMATCH: Partition keys must be the last columns in the "
                    f"table and in the same order as the table properties: {partition_by}"
                )
            self._check_hive_columns(columns)
        if self._data_files(location):
            raise QueryFailed(
                f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{db}.{name}' already "
                f"exists: {location}"
            )
        ex.partitions_written = self._count_partitions(sql, partition_by, iceberg)
        ex.update_count = self.con.execute(f"select count(*) from ({sql})").fetchone()[0]
        glue_cols = [{"Name": n, "Type": trino.glue_type(t)} for n, t in columns]
        if iceberg:
            metadata = self._write_iceberg(ex, sql, location, [])
            self.glue.create_table(
                DatabaseName=db,
                TableInput={
                    "Name": name,
                    "TableType": "EXTERNAL_TABLE",
                    "Parameters": {
                        "table_type": "ICEBERG",
                        "metadata_location": metadata,
                        # the partition spec (in real Iceberg, inside the metadata)
                        "twin_partitioning": json.dumps(partition_by),
                    },
                    "StorageDescriptor": {"Columns": glue_cols, "Location": location, **PARQUET},
                },
            )
            return
        values = self._write_hive(ex, sql, location, partition_by)
        data_cols = [c for c in glue_cols if c["Name"] not in partition_by]
        keys = [c for c in glue_cols if c["Name"] in partition_by]
        parameters = {"EXTERNAL": "TRUE", "has_encrypted_data": "false"}
        if "write_compression" in props:
            parameters["parquet.compression"] = str(props["write_compression"]).upper()
        self.glue.create_table(
            DatabaseName=db,
            TableInput={
                "Name": name,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": parameters,
                "PartitionKeys": keys,
                "StorageDescriptor": {"Columns": data_cols, "Location": location, **PARQUET},
            },
        )
        self._register_partitions(db, name, data_cols, keys, location, values)

    def _register_partitions(self, db, name, data_cols, keys, location, values) -> None:
        existing = {
            tuple(p["Values"]) for p in self._partitions({"DatabaseName": db, "Name": name})
        }
        inputs = []
        for vals in values:
            if tuple(vals) in existing:
                continue
            path = "/".join(f"{k['Name']}={v}" for k, v in zip(keys, vals, strict=True))
            inputs.append(
                {
                    "Values": list(vals),
                    "StorageDescriptor": {
                        "Columns": data_cols,
                        "Location": f"{location.rstrip('/')}/{path}/",
                        **PARQUET,
                    },
                }
            )
        for i in range(0, len(inputs), 100):
            self.glue.batch_create_partition(
                DatabaseName=db, TableName=name, PartitionInputList=inputs[i : i + 100]
            )

    def _insert(self, ex: Execution, tree: exp.Insert) -> None:
        target = tree.this
        insert_cols = None
        if isinstance(target, exp.Schema):
            insert_cols = [c.name.lower() for c in target.expressions]
            target = target.this
        db, name = self._names(target, ex.database)
        table = self._require(db, name)
        iceberg = self._is_iceberg(table)
        sd = table["StorageDescriptor"]
        keys = table.get("PartitionKeys", []) or []
        table_cols = [c["Name"].lower() for c in sd["Columns"] + keys]
        sql, columns = self._query(tree.expression, ex.database)
        insert_cols = insert_cols or table_cols
        if len(insert_cols) != len(columns):
            raise QueryFailed(
                f"Insert query has mismatched column types: {len(columns)} values for "
                f"{len(insert_cols)} columns"
            )
        types = {
            c["Name"].lower(): trino.duckdb_type_of_glue(c["Type"], iceberg=iceberg)
            for c in sd["Columns"] + keys
        }
        by_name = dict(zip(insert_cols, [n for n, _ in columns], strict=True))
        select = ", ".join(
            f"cast({_quote(by_name[c])} as {types[c]}) as {_quote(c)}"
            if c in by_name
            else f"cast(null as {types[c]}) as {_quote(c)}"
            for c in table_cols
        )
        if not iceberg:
            # the values as written, before the cast to the table's type (Trino refuses an
            # implicit timestamp(6) -> timestamp(3) coercion into a Hive table)
            self._check_hive_columns(columns)
        sql = f"select {select} from ({sql}) as twin_src"
        partition_by = (
            [k["Name"].lower() for k in keys]
            if not iceberg
            else [p.lower() for p in json.loads(table["Parameters"].get("twin_partitioning", "[]"))]
        )
        ex.partitions_written = self._count_partitions(sql, partition_by, iceberg)
        ex.update_count = self.con.execute(f"select count(*) from ({sql})").fetchone()[0]
        if iceberg:
            metadata = self._write_iceberg(ex, sql, sd["Location"], self._snapshot(table))
            self._set_parameters(table, {"metadata_location": metadata})
            return
        values = self._write_hive(ex, sql, sd["Location"], partition_by)
        data_cols = [c for c in sd["Columns"]]
        self._register_partitions(db, name, data_cols, keys, sd["Location"], values)

    def _merge(self, ex: Execution, tree: exp.Merge) -> None:
        target = tree.this
        db, name = self._names(target, ex.database)
        table = self._require(db, name)
        if not self._is_iceberg(table):
            raise QueryFailed("NOT_SUPPORTED: MERGE INTO is supported only for Iceberg tables")
        self._prepare(tree.args["using"], ex.database)
        self._prepare(target, ex.database)
        self.con.execute("DROP TABLE IF EXISTS twin_merge_target")
        self.con.execute(
            f"CREATE TEMP TABLE twin_merge_target AS SELECT * FROM awsdatacatalog."
            f"{_quote(db)}.{_quote(name)}"
        )
        before = self.con.execute("select count(*) from twin_merge_target").fetchone()[0]
        merge = self._qualified(tree, ex.database)
        alias = target.alias or name
        merge.set("this", exp.to_table("twin_merge_target").as_(alias))
        duck = trino.to_duckdb(merge)
        try:
            self.con.execute(duck)
        except duckdb.Error as e:
            raise QueryFailed(f"MERGE failed: {e}") from e
        partition_by = json.loads(table["Parameters"].get("twin_partitioning", "[]"))
        changed = (
            f"(select * from twin_merge_target except all select * from awsdatacatalog."
            f"{_quote(db)}.{_quote(name)}) union all (select * from awsdatacatalog."
            f"{_quote(db)}.{_quote(name)} except all select * from twin_merge_target)"
        )
        ex.partitions_written = self._count_partitions(changed, partition_by, True)
        after = self.con.execute("select count(*) from twin_merge_target").fetchone()[0]
        ex.update_count = max(after - before, 0)
        metadata = self._write_iceberg(
            ex, "select * from twin_merge_target", table["StorageDescriptor"]["Location"], []
        )
        self._set_parameters(table, {"metadata_location": metadata})

    def _set_parameters(self, table: dict, parameters: dict[str, str]) -> None:
        table_input = {
            k: v
            for k, v in table.items()
            if k
            in (
                "Name",
                "Description",
                "Owner",
                "Retention",
                "StorageDescriptor",
                "PartitionKeys",
                "ViewOriginalText",
                "ViewExpandedText",
                "TableType",
                "Parameters",
            )
        }
        table_input["Parameters"] = {**table.get("Parameters", {}), **parameters}
        self.glue.update_table(DatabaseName=table["DatabaseName"], TableInput=table_input)

    def _create_view(self, ex: Execution, tree: exp.Create) -> None:
        db, name = self._names(tree.this, ex.database)
        existing = self._table(db, name)
        if existing is not None and existing.get("TableType") != "VIRTUAL_VIEW":
            raise QueryFailed(f"line 1:1: Table '{db}.{name}' already exists and is not a view")
        if existing is not None and not tree.args.get("replace"):
            raise QueryFailed(f"line 1:1: View '{db}.{name}' already exists")
        body = tree.expression
        _, columns = self._query(body, ex.database)  # binds it: a broken view fails here
        original = body.sql("trino")
        view = {
            "originalSql": original,
            "catalog": "awsdatacatalog",
            "schema": db,
            "columns": [{"name": n, "type": trino.trino_type(t)[0]} for n, t in columns],
        }
        encoded = base64.b64encode(json.dumps(view).encode()).decode()
        table_input = {
            "Name": name,
            "TableType": "VIRTUAL_VIEW",
            "Parameters": {"presto_view": "true", "comment": "Presto View"},
            "ViewOriginalText": f"/* Presto View: {encoded} */",
            "ViewExpandedText": "/* Presto View */",
            # Athena's views carry an empty location (dbt-athena's expire_glue_table_versions
            # reads it)
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": trino.glue_type(t)} for n, t in columns],
                "Location": "",
                "SerdeInfo": {},
            },
        }
        if existing is None:
            self.glue.create_table(DatabaseName=db, TableInput=table_input)
        else:
            self.glue.update_table(DatabaseName=db, TableInput=table_input)

    # ------------------------------------------------------------ Hive DDL ------------
    def _create_schema(self, ex: Execution, sql: str) -> None:
        m = re.match(r"create (?:schema|database) (if not exists )?[`\"]?(\w+)[`\"]?", sql, re.I)
        if not m:
            raise Unsupported(sql[:80])
        if self._database_exists(m.group(2).lower()):
            if not m.group(1):
                raise QueryFailed(f"Database {m.group(2)} already exists")
            return
        self.glue.create_database(DatabaseInput={"Name": m.group(2).lower()})

    def _drop_schema(self, ex: Execution, sql: str) -> None:
        m = re.match(
            r"drop (?:schema|database) (?:if exists )?[`\"]?(\w+)[`\"]?( cascade)?", sql, re.I
        )
        if not m:
            raise Unsupported(sql[:80])
        db = m.group(1).lower()
        if not self._database_exists(db):
            return
        tables = self.glue.get_tables(DatabaseName=db)["TableList"]
        if tables and not m.group(2):
            raise QueryFailed(f"Schema {db} is not empty")
        for t in tables:
            self.glue.delete_table(DatabaseName=db, Name=t["Name"])
        self.glue.delete_database(Name=db)

    _HIVE_NAME = r"[`\"]?(\w+)[`\"]?\.[`\"]?(\w+)[`\"]?"

    def _create_external_table(self, ex: Execution, sql: str) -> None:
        m = re.match(
            rf"create external table (?:if not exists )?{self._HIVE_NAME}\s*\((.*)\)\s*"
            r"(?:row format serde '([^']+)'\s*)?(?:stored as (\w+)\s*)?location '([^']+)'\s*"
            r"(?:tblproperties\s*\((.*)\))?\s*$",
            sql,
            re.I | re.S,
        )
        if not m:
            raise Unsupported(f"CREATE EXTERNAL TABLE form: {sql[:120]!r}")
        db, name, cols, serde, stored, location, props = m.groups()
        columns = [
            {"Name": c[0].lower(), "Type": c[1].lower().replace(" ", "")}
            for c in re.findall(r"[`\"]?(\w+)[`\"]?\s+(\w+(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?)", cols)
        ]
        if serde:
            storage = {
                "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "SerdeInfo": {"SerializationLibrary": serde},
            }
        elif (stored or "parquet").lower() == "parquet":
            storage = PARQUET
        else:
            raise Unsupported(f"STORED AS {stored}")
        parameters = {"EXTERNAL": "TRUE"}
        for k, v in re.findall(r"'([^']+)'\s*=\s*'([^']*)'", props or ""):
            parameters[k] = v
        if self._table(db.lower(), name.lower()) is not None:
            raise QueryFailed(f"Table {db}.{name} already exists")
        self.glue.create_table(
            DatabaseName=db.lower(),
            TableInput={
                "Name": name.lower(),
                "TableType": "EXTERNAL_TABLE",
                "Parameters": parameters,
                "StorageDescriptor": {"Columns": columns, "Location": location, **storage},
            },
        )

    def _set_tblproperties(self, ex: Execution, sql: str) -> None:
        m = re.match(
            rf"alter table {self._HIVE_NAME} set tblproperties\s*\((.*)\)", sql, re.I | re.S
        )
        if not m:
            raise Unsupported(sql[:80])
        table = self._require(m.group(1).lower(), m.group(2).lower())
        self._set_parameters(table, dict(re.findall(r"'([^']+)'\s*=\s*'([^']*)'", m.group(3))))

    def _refuse_ddl_on_registered_iceberg(self, ex: Execution, sql: str) -> None:
        """AWS docs, "Query Apache Iceberg tables", considerations: "Athena does not currently
        support DDL operations on Iceberg tables that are registered with Lake Formation".
        The template registers the lake's warehouse/ prefix (WarehouseLocation), so ALTER
        TABLE (RENAME TO, SET TBLPROPERTIES) and DROP TABLE in SQL are refused on an Iceberg
        table under a registered location; Glue's own API (what dbt-athena's
        drop_relation_glue calls) is not SQL DDL and is left to IAM and Lake Formation."""
        m = re.match(rf"(?:alter|drop) table (?:if exists )?{self._HIVE_NAME}", sql, re.I)
        if not m:
            return
        table = self._table(m.group(1).lower(), m.group(2).lower())
        if table is None or not self._is_iceberg(table):
            return
        location = table["StorageDescriptor"]["Location"]
        if any(location.startswith(prefix) for prefix in self.lake_formation_locations):
            raise QueryFailed(
                "NOT_SUPPORTED: DDL operations are not supported on Iceberg tables registered "
                f"with Lake Formation ({m.group(1)}.{m.group(2)} at {location})"
            )

    def _rename_table(self, ex: Execution, sql: str) -> None:
        m = re.match(rf"alter table {self._HIVE_NAME} rename to {self._HIVE_NAME}\s*$", sql, re.I)
        if not m:
            raise Unsupported(sql[:80])
        table = self._require(m.group(1).lower(), m.group(2).lower())
        to_db, to_name = m.group(3).lower(), m.group(4).lower()
        if self._table(to_db, to_name) is not None:
            raise QueryFailed(f"Target table '{to_db}.{to_name}' already exists")
        table_input = {
            k: v
            for k, v in table.items()
            if k in ("Description", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")
        }
        self.glue.create_table(DatabaseName=to_db, TableInput={"Name": to_name, **table_input})
        self.glue.delete_table(DatabaseName=table["DatabaseName"], Name=table["Name"])

    def _drop_table(self, ex: Execution, sql: str) -> None:
        m = re.match(rf"drop table (if exists )?{self._HIVE_NAME}\s*$", sql, re.I)
        if not m:
            raise Unsupported(sql[:80])
        table = self._table(m.group(2).lower(), m.group(3).lower())
        if table is None:
            if not m.group(1):
                raise QueryFailed(f"Table {m.group(2)}.{m.group(3)} does not exist")
            return
        if self._is_iceberg(table):  # a managed table: its data goes with it
            for key in self._keys(table["StorageDescriptor"]["Location"]):
                bucket, k = _split_s3(key)
                self.s3.delete_object(Bucket=bucket, Key=k)
        self.glue.delete_table(DatabaseName=table["DatabaseName"], Name=table["Name"])

    def _drop_view(self, ex: Execution, sql: str) -> None:
        tree = trino.parse(sql)
        db, name = self._names(tree.this, ex.database)
        table = self._table(db, name)
        if table is None:
            if not tree.args.get("exists"):
                raise QueryFailed(f"View {db}.{name} does not exist")
            return
        if table.get("TableType") != "VIRTUAL_VIEW":
            raise QueryFailed(f"{db}.{name} is not a view")
        self.glue.delete_table(DatabaseName=db, Name=name)

    def _iceberg_target(self, ex: Execution, name_sql: str, what: str) -> dict:
        parts = [p.strip('`"').lower() for p in name_sql.split(".")]
        if len(parts) > 2:
            raise QueryFailed(f"{what}: expected [database.]table, got {name_sql}")
        db, name = parts if len(parts) == 2 else [ex.database, parts[0]]
        table = self._require(db, name)
        if not self._is_iceberg(table):
            raise QueryFailed(f"NOT_SUPPORTED: {what} is supported only for Iceberg tables")
        return table

    def _optimize(self, ex: Execution, sql: str) -> None:
        m = re.match(
            r"optimize (\S+) rewrite data using bin_pack(?:\s+where\s+(.*))?$", sql, re.I | re.S
        )
        if not m:
            raise QueryFailed(f"OPTIMIZE syntax: {sql[:120]}")
        table = self._iceberg_target(ex, m.group(1), "OPTIMIZE")
        if m.group(2):
            trino.parse(f"select 1 from t where {m.group(2)}")  # the predicate must be SQL
        files = self._snapshot(table)
        if len(files) > 1:
            union = f"read_parquet([{', '.join(_literal(f) for f in files)}], union_by_name = true)"
            metadata = self._write_iceberg(
                ex, f"select * from {union}", table["StorageDescriptor"]["Location"], []
            )
            self._set_parameters(table, {"metadata_location": metadata})

    def _vacuum(self, ex: Execution, sql: str) -> None:
        m = re.match(r"vacuum (\S+)\s*$", sql, re.I)
        if not m:
            raise QueryFailed(f"VACUUM syntax: {sql[:120]}")
        # The twin keeps one snapshot: there is nothing to expire (documented, not modelled).
        self._iceberg_target(ex, m.group(1), "VACUUM")


# Trino's Hive connector's metadata columns the twin provides, with their DuckDB types
# ($file_modified_time: timestamp(3) with time zone in Trino)
HIDDEN_COLUMNS = {"$path": "VARCHAR", "$file_modified_time": "TIMESTAMPTZ", "$file_size": "BIGINT"}


def _hidden_columns(tree: exp.Expression) -> frozenset[str]:
    """The names of hidden columns (``$...``) the query names."""
    return frozenset(c.name.lower() for c in tree.find_all(exp.Column) if c.name.startswith("$"))


def _strip_comments(sql: str) -> str:
    text = sql.strip()
    while True:
        if text.startswith("--"):
            text = text.split("\n", 1)[1].strip() if "\n" in text else ""
        elif text.startswith("/*"):
            text = text.split("*/", 1)[1].strip()
        else:
            return text.rstrip(";").strip()


def _decode_view(table: dict) -> dict[str, Any]:
    text = table.get("ViewOriginalText", "")
    m = re.fullmatch(r"/\* Presto View: (.*) \*/", text.strip(), re.S)
    if not m:
        raise Unsupported(f"view {table['Name']} is not a Presto view")
    return json.loads(base64.b64decode(m.group(1)))


def _properties(tree: exp.Create) -> dict[str, Any]:
    props: dict[str, Any] = {}
    node = tree.args.get("properties")
    for prop in node.expressions if node else []:
        if isinstance(prop, exp.PartitionedByProperty):
            props["partitioned_by"] = _array(prop.this)
            continue
        if isinstance(prop, exp.LocationProperty | exp.FileFormatProperty):
            key = "location" if isinstance(prop, exp.LocationProperty) else "format"
            props[key] = prop.this.name
            continue
        key = prop.name.lower() if isinstance(prop, exp.Property) else None
        if key is None:
            key = type(prop).__name__
        value = prop.args.get("value")
        if isinstance(value, exp.Array):
            props[key] = _array(value)
        elif isinstance(value, exp.Boolean):
            props[key] = value.this
        elif value is not None:
            props[key] = value.name if isinstance(value, exp.Literal) else value.sql("trino")
    return props


def _array(node: exp.Expression) -> list[str]:
    if isinstance(node, exp.Array | exp.Tuple | exp.Schema):
        return [e.name for e in node.expressions]
    return [node.name]


def format_value(value: Any, duckdb_type: str) -> dict[str, str]:
    """One Datum of GetQueryResults, as Athena writes the value."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"VarCharValue": "true" if value else "false"}
    if isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        precision = trino.trino_type(duckdb_type)[1]
        return {"VarCharValue": text[: 20 + precision] if precision else text[:19]}
    if isinstance(value, dt.date):
        return {"VarCharValue": value.isoformat()}
    if isinstance(value, Decimal):
        return {"VarCharValue": format(value, "f")}
    if isinstance(value, bytes):
        return {"VarCharValue": value.hex(" ")}
    return {"VarCharValue": str(value)}
