"""Athena, proved offline: `dbt compile --target athena` against a moto server, then every
compiled model and test is parsed as Trino SQL with sqlglot, and no DuckDB-only construct may
reach Athena.

Compiled twice: on an empty analytics schema (first build: full branches) and with the
incremental tables present in Glue (incremental branches: the MERGE sources)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest
import sqlglot
from sqlglot import exp

from .conftest import DBT, REPO

# DuckDB functions and syntax Athena (Trino) does not have. Matched on the compiled text
# (case-insensitive, as a function call) and on sqlglot's parse tree.
DUCKDB_ONLY_FUNCTIONS = (
    "read_parquet",
    "read_csv",
    "read_csv_auto",
    "read_json",
    "parquet_scan",
    "glob",
    "strftime",
    "strptime",
    "epoch_ms",
    "epoch_us",
    "make_timestamp",
    "struct_pack",
    "list_value",
    "list_aggregate",
    "list_transform",
    "list_filter",
    "list_extract",
    "list_sort",
    "arg_max",
    "arg_min",
    "timezone",
    "date_diff",
    "datediff",
    "string_agg",
    "regexp_full_match",
    "hash",
    "ifnull",
    "duff_makedirs",
)
DUCKDB_ONLY_SYNTAX = {
    "a :: cast": re.compile(r"::"),
    "QUALIFY": re.compile(r"\bqualify\b", re.I),
    "SELECT * EXCLUDE": re.compile(r"\*\s*exclude\b", re.I),
    "a list_ function": re.compile(r"\blist_\w+\s*\(", re.I),
    "timestamptz": re.compile(r"\btimestamptz\b", re.I),
}


def _glue_table(name: str, location: str, columns: list[tuple[str, str]], params: dict) -> dict:
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": params,
        "StorageDescriptor": {
            "Columns": [{"Name": c, "Type": t} for c, t in columns],
            "Location": location,
        },
    }


RAW_COLUMNS = [
    ("order_id", "bigint"),
    ("client_id", "bigint"),
    ("client_name", "string"),
    ("product_id", "bigint"),
    ("product_description", "string"),
    ("product_price", "decimal(12,2)"),
    ("product_ccf", "int"),
    ("product_volume", "decimal(10,3)"),
    ("point_of_sale_channel", "string"),
    ("status", "string"),
    ("order_date", "date"),
    ("total_amount", "decimal(22,2)"),
    ("total_liters", "decimal(20,3)"),
    ("source_file", "string"),
    ("source_line", "bigint"),
    ("ingest_id", "string"),
    ("landed_at", "timestamp"),
]


@pytest.fixture(scope="module")
def athena_compiles(moto_server: str, tmp_path_factory: pytest.TempPathFactory):
    """Given a Glue raw table in moto, compile for Athena on an empty and a built schema."""
    suffix = uuid.uuid4().hex[:10]
    raw_db, analytics_db = f"duff_raw_{suffix}", f"duff_analytics_{suffix}"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "DUFF_ATHENA_REGION": "us-east-1",
        "DUFF_ATHENA_S3_STAGING_DIR": f"s3://athena-results-{suffix}/",
        "DUFF_ATHENA_S3_DATA_DIR": f"s3://warehouse-{suffix}/",
        "DUFF_ATHENA_WORK_GROUP": "primary",
        "DUFF_ATHENA_SCHEMA": analytics_db,
        "DUFF_GLUE_DATABASE": raw_db,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop("AWS_PROFILE", None)
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    s3 = session.client("s3", endpoint_url=moto_server)
    glue = session.client("glue", endpoint_url=moto_server)
    for bucket in (f"athena-results-{suffix}", f"warehouse-{suffix}", f"lake-{suffix}"):
        s3.create_bucket(Bucket=bucket)
    glue.create_database(DatabaseInput={"Name": raw_db})
    glue.create_database(DatabaseInput={"Name": analytics_db})
    raw = _glue_table(
        "raw_orders", f"s3://lake-{suffix}/raw/orders/", RAW_COLUMNS, {"classification": "parquet"}
    )
    raw["PartitionKeys"] = [{"Name": "pa_date", "Type": "date"}]
    glue.create_table(DatabaseName=raw_db, TableInput=raw)
    # the data-quality sources, defined as the ingestion registers them
    from ingestion.glue import catalog_for_lake

    catalog_for_lake(f"s3://lake-{suffix}", raw_db, client=glue).register_ingest([])

    work = tmp_path_factory.mktemp("dbt_athena")

    def compile_into(name: str) -> Path:
        target = work / name
        proc = subprocess.run(
            [DBT, "compile", "--target", "athena", "--target-path", str(target),
             "--log-path", str(work / "logs")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
        return target / "compiled" / "duff"

    first = compile_into("target_first")
    # the incremental models exist now, as Iceberg tables: their incremental branch compiles
    for table, key in (
        ("fact_orders", "order_id"),
        ("dim_clients", "client_id"),
        ("dim_products", "product_id"),
    ):
        glue.create_table(
            DatabaseName=analytics_db,
            TableInput=_glue_table(
                table,
                f"s3://warehouse-{suffix}/{table}/",
                [(key, "bigint"), ("landed_at", "timestamp")],
                {"table_type": "ICEBERG"},
            ),
        )
    incremental = compile_into("target_incremental")
    return {"first": first, "incremental": incremental, "raw_db": raw_db, "glue": glue}


def compiled_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*.sql") if "/seeds/" not in p.as_posix())
    assert files, f"nothing compiled under {root}"
    return files


def duckdb_only_constructs(sql: str) -> list[str]:
    found = [name for name, pattern in DUCKDB_ONLY_SYNTAX.items() if pattern.search(sql)]
    for fn in DUCKDB_ONLY_FUNCTIONS:
        if re.search(rf"\b{fn}\s*\(", sql, re.I):
            found.append(f"{fn}()")
    return found


@pytest.mark.parametrize("variant", ["first", "incremental"])
def test_every_compiled_model_and_test_is_trino_sql(athena_compiles, variant):
    # When every compiled file is parsed as Trino; Then it parses and holds no DuckDB-only SQL
    problems = {}
    for path in compiled_files(athena_compiles[variant]):
        sql = path.read_text()
        try:
            trees = sqlglot.parse(sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
        except sqlglot.errors.ParseError as e:
            problems[path.name] = f"does not parse as Trino: {e}"
            continue
        bad = duckdb_only_constructs(sql)
        for tree in trees:
            if tree is None:
                continue
            for fn in tree.find_all(exp.Anonymous):
                if fn.name.lower() in DUCKDB_ONLY_FUNCTIONS:
                    bad.append(f"{fn.name}()")
        if bad:
            problems[path.name] = sorted(set(bad))
    assert not problems, problems


def test_models_read_the_glue_table_and_branch_on_incremental(athena_compiles):
    # Then staging reads the Glue table named by DUFF_GLUE_DATABASE, and with the fact
    # present its SQL takes only versions landed since the newest one in it
    first, incremental = athena_compiles["first"], athena_compiles["incremental"]
    stg = (first / "models/staging/raw/stg_raw__orders.sql").read_text()
    assert f'"awsdatacatalog"."{athena_compiles["raw_db"]}"."raw_orders"' in stg
    assert "cast(landed_at as timestamp(6))" in stg
    fact_first = (first / "models/marts/core/fact_orders.sql").read_text()
    fact_incremental = (incremental / "models/marts/core/fact_orders.sql").read_text()
    assert "int_orders__latest" in fact_first and "where landed_at >" not in fact_first
    assert "int_orders__latest" not in fact_incremental
    assert re.search(r"where landed_at > cast\('[0-9 :.-]+' as timestamp\(6\)\)", fact_incremental)
    build_info = (first / "models/marts/served/mart_build_info.sql").read_text()
    # the marts are Iceberg on Athena, whose CTAS takes microseconds only
    assert re.search(r"as timestamp\(6\)\) as built_at", build_info), build_info


def _source_columns(sql: str) -> set[str]:
    """The top-level columns the `renamed` CTE of a staging model reads from its source."""
    tree = sqlglot.parse_one(sql, read="trino")
    renamed = next(c for c in tree.find_all(exp.CTE) if c.alias_or_name == "renamed")
    names = set()
    for column in renamed.this.find_all(exp.Column):
        parts = [p.name for p in column.parts]
        names.add(parts[1] if parts[0] == "source" and len(parts) > 1 else parts[0])
    return names


@pytest.mark.parametrize("source", ["manifests", "rejects"])
def test_ingest_staging_reads_the_glue_tables_the_ingestion_registers(athena_compiles, source):
    # Given the ingest tables as the ingestion's Glue adapter defines them
    glue = athena_compiles["glue"]
    table = glue.get_table(DatabaseName=athena_compiles["raw_db"], Name=f"ingest_{source}")
    table = table["Table"]
    columns = {c["Name"] for c in table["StorageDescriptor"]["Columns"]}
    columns |= {k["Name"] for k in table.get("PartitionKeys", [])}
    # When the staging model compiles for Athena
    path = athena_compiles["first"] / f"models/staging/ingest/stg_ingest__{source}.sql"
    sql = path.read_text()
    # Then it reads that table, and only columns the table has
    assert f'"awsdatacatalog"."{athena_compiles["raw_db"]}"."ingest_{source}"' in sql
    read = _source_columns(sql)
    assert "ingest_id" in read and read <= columns, read - columns


def test_the_sanity_check_itself_catches_duckdb_sql():
    # Given DuckDB-only SQL; Then the checker names each construct (the test above can fail)
    sql = "select x::int, arg_max(a, b), strftime(d, '%Y') from read_parquet('f') qualify 1"
    assert set(duckdb_only_constructs(sql)) >= {
        "a :: cast",
        "QUALIFY",
        "arg_max()",
        "strftime()",
        "read_parquet()",
    }


def test_served_marts_are_tables_of_their_build_and_the_pointer_swaps_in_place(athena_compiles):
    # Given the manifest of the Athena compile
    import json

    first = athena_compiles["first"]
    manifest = json.loads((first.parents[1] / "manifest.json").read_text())
    served = {
        n["name"]: n["config"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and "served" in n["fqn"]
    }
    # Then every served mart is an Iceberg table of its build (macros/served_builds.sql),
    # mart_orders partitioned by pa_date, and mart_build_info, the pointer the API reads, an
    # Iceberg table whose row is replaced in one commit (never dropped, so the API never meets
    # TABLE_NOT_FOUND)
    per_build = {n for n, c in served.items() if c["materialized"] == "served_table"}
    assert served and per_build == set(served) - {"mart_build_info"}, served
    assert served["mart_build_info"]["materialized"] == "served_pointer"
    assert {c["table_type"] for c in served.values()} == {"iceberg"}
    assert served["mart_orders"]["partitioned_by"] == ["pa_date"]
    # and mart_build_info follows every served mart, the quality marts included
    info = next(
        n for n in manifest["nodes"].values() if n["unique_id"] == "model.duff.mart_build_info"
    )
    assert {f"model.duff.{n}" for n in per_build} <= set(info["depends_on"]["nodes"])
    # and the data tests of a served mart read it through dbt's own ref, the view, which the
    # materialization points at this build's table as soon as it is built (no override of
    # ref; tests/integration/dbt/test_dbt_athena_switch.py checks where the views point)
    tests = (first / "models/marts/served").rglob("*.sql")
    reads = {
        m.group(1)
        for path in tests
        if "mart_orders" in path.name and path.parent.name != "served"
        for m in re.finditer(r'"(mart_orders(?:__b[0-9a-f]{12})?)"', path.read_text())
    }
    assert reads == {"mart_orders"}, reads
    macros = (REPO / "macros" / "served_builds.sql").read_text()
    assert "macro ref(" not in macros and "{{ point_served_view(target_relation" in macros


def test_every_table_dbt_writes_on_athena_is_iceberg(athena_compiles):
    # Given the manifest of the Athena compile
    import json

    manifest = json.loads((athena_compiles["first"].parents[1] / "manifest.json").read_text())
    # Then every seed and every model that is not a view is an Iceberg table: the dbt work
    # group enforces its result location, under which Athena writes a Hive CTAS to
    # <results>/tables/<query id>/ whatever location dbt names (issue 12, defect 2; the twin's
    # build test shows where each table lands)
    tables = {
        n["name"]: n["config"].get("table_type")
        for n in manifest["nodes"].values()
        if n["resource_type"] == "seed"
        or (n["resource_type"] == "model" and n["config"]["materialized"] != "view")
    }
    assert {"fact_orders", "dim_status", "mart_build_info", "status_descriptions"} <= set(tables)
    assert {name for name, kind in tables.items() if kind != "iceberg"} == set()
