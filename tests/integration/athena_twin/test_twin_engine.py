"""The Athena twin's own behaviour, statement by statement, over moto's Glue and S3: each AWS
behaviour it mimics (engine.py's docstring cites where each is documented) shown both ways, so
the dbt tests that rely on it can fail for the right reason."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.athena_twin.account import open_account
from tests.athena_twin.engine import InvalidRequest, WorkGroup
from tests.athena_twin.trino import trino_type

WG = "dbt"


@pytest.fixture(scope="module")
def account(moto_server):
    enforced = WorkGroup(WG, "s3://placeholder/dbt/", enforced=True)
    acct = open_account(moto_server, enforced)
    # the work group's result location is the account's results bucket
    acct.twin.work_groups[WG] = WorkGroup(WG, f"s3://{acct.results_bucket}/dbt/", True)
    acct.twin.work_groups["open"] = WorkGroup("open", f"s3://{acct.results_bucket}/open/", False)
    yield acct
    acct.server.__exit__(None, None, None)


def run(account, sql: str, work_group: str = WG, expect: str = "SUCCEEDED"):
    ex = account.twin.start(sql, account.analytics_database, work_group, None)
    assert ex.state == expect, ex.reason
    return ex


def rows(account, table: str) -> list[tuple]:
    return sorted(run(account, f'select * from "{account.analytics_database}"."{table}"').rows)


def days(n: int) -> str:
    return (
        "select x as n, cast(date '2024-01-01' + x * interval '1' day as date) as pa_date "
        f"from unnest(sequence(0, {n - 1})) as t(x)"
    )


def test_hive_tables_refuse_timestamp6_and_take_timestamp3(account):
    db = account.analytics_database
    # Given a timestamp(6) value; When a Hive CTAS writes it; Then it fails as on Athena
    ex = run(
        account,
        f"create table \"{db}\".\"ts6\" with (table_type='hive', format='parquet') as "
        "select cast(timestamp '2024-03-01 10:00:00.123456' as timestamp(6)) as merged_at",
        expect="FAILED",
    )
    assert "Incorrect timestamp precision for timestamp(6)" in ex.reason
    assert "merged_at" in ex.reason
    # and cast to timestamp (milliseconds) it is written, and reads back in milliseconds
    run(
        account,
        f"create table \"{db}\".\"ts3\" with (table_type='hive', format='parquet') as "
        "select cast(timestamp '2024-03-01 10:00:00.123456' as timestamp) as merged_at",
    )
    assert rows(account, "ts3")[0][0].microsecond == 123000


def test_an_enforced_work_group_refuses_external_location_and_writes_to_its_results(account):
    db, data = account.analytics_database, account.data_dir
    # Given the enforced work group; When a Hive CTAS names an external_location
    # Then StartQueryExecution refuses it (dbt-athena #176)
    with pytest.raises(InvalidRequest, match="enforces a centralized output location"):
        account.twin.start(
            f'create table "{db}"."located" with (table_type=\'hive\', '
            f"external_location='{data}located/') as select 1 as x",
            db,
            WG,
            None,
        )
    # and without one the table lands under <results>/tables/<query id>/ (dbt-athena #539)
    ex = run(account, f'create table "{db}"."unlocated" with (table_type=\'hive\') as select 1')
    location = account.glue_table("unlocated")["StorageDescriptor"]["Location"]
    assert location == f"s3://{account.results_bucket}/dbt/tables/{ex.id}"
    # while a work group that does not enforce keeps the location the client asks for
    run(
        account,
        f'create table "{db}"."located" with (table_type=\'hive\', '
        f"external_location='{data}located') as select 1 as x",
        work_group="open",
    )
    assert account.glue_table("located")["StorageDescriptor"]["Location"] == f"{data}located"


def test_an_iceberg_ctas_keeps_its_location_in_an_enforced_work_group_and_takes_timestamp6(
    account,
):
    db, data = account.analytics_database, account.data_dir
    # Given the enforced work group; When an Iceberg CTAS names its location
    # Then the table is where it asked, not under the results (dbt-athena keeps `location` for
    # Iceberg whatever the work group, which is why every dbt table is Iceberg on Athena)
    run(
        account,
        f'create table "{db}"."ice_located" with (table_type=\'iceberg\', is_external=false, '
        f"location='{data}ice_located') as "
        "select cast(timestamp '2024-03-01 10:00:00.123456' as timestamp(6)) as built_at",
    )
    assert account.glue_table("ice_located")["StorageDescriptor"]["Location"] == (
        f"{data}ice_located"
    )
    assert rows(account, "ice_located")[0][0].microsecond == 123456
    # and a timestamp(3) column (Trino's plain `timestamp`) is refused, as Trino's Iceberg
    # connector refuses it
    ex = run(
        account,
        f'create table "{db}"."ice_ts3" with (table_type=\'iceberg\', is_external=false, '
        f"location='{data}ice_ts3') as "
        "select cast(timestamp '2024-03-01 10:00:00.123' as timestamp) as built_at",
        expect="FAILED",
    )
    assert "Timestamp precision (3) not supported for Iceberg" in ex.reason
    assert account.glue_table("ice_ts3") is None


def test_no_sql_ddl_on_an_iceberg_table_registered_with_lake_formation(account):
    db, data = account.analytics_database, account.data_dir
    # Given an Iceberg table under the warehouse/ prefix, which the template registers with
    # Lake Formation, and one outside it
    assert data.startswith(account.twin.lake_formation_locations[0])
    ctas = (
        'create table "{db}"."{name}" with (table_type=\'iceberg\', is_external=false, '
        "location='{where}') as select 1 as x"
    )
    run(account, ctas.format(db=db, name="ice_lf", where=f"{data}ice_lf"))
    outside = f"s3://{account.results_bucket}/elsewhere/ice_free"
    run(account, ctas.format(db=db, name="ice_free", where=outside))
    # When dbt-athena's swap renames it, or SQL drops it; Then Athena refuses (AWS docs)
    for sql in (
        f"alter table `{db}`.`ice_lf` rename to `{db}`.`ice_lf__bkp`",
        f"drop table `{db}`.`ice_lf`",
    ):
        ex = run(account, sql, expect="FAILED")
        assert "registered with Lake Formation" in ex.reason
    assert account.glue_table("ice_lf") is not None
    # while the same rename outside a registered location goes through
    run(account, f"alter table `{db}`.`ice_free` rename to `{db}`.`ice_free2`")
    assert account.glue_table("ice_free2") is not None


def test_a_write_of_more_than_100_partitions_fails_as_athenas(account):
    db = account.analytics_database
    ex = run(
        account,
        f"create table \"{db}\".\"p101\" with (table_type='hive', partitioned_by=ARRAY['pa_date']) "
        f"as {days(101)}",
        work_group="open",
        expect="FAILED",
    )
    assert "HIVE_TOO_MANY_OPEN_PARTITIONS" in ex.reason  # what dbt-athena catches
    ex = run(
        account,
        f"create table \"{db}\".\"p100\" with (table_type='hive', partitioned_by=ARRAY['pa_date']) "
        f"as {days(100)}",
        work_group="open",
    )
    assert ex.partitions_written == 100
    glue = account.client("glue")
    assert len(glue.get_partitions(DatabaseName=db, TableName="p100")["Partitions"]) == 100


def test_merge_updates_moves_and_inserts_rows_of_an_iceberg_table_only(account):
    db, data = account.analytics_database, account.data_dir
    run(
        account,
        f'create table "{db}"."facts" with (table_type=\'iceberg\', is_external=false, '
        f"location='{data}facts', partitioning=ARRAY['pa_date']) as "
        "select * from (values (1, 'a', date '2024-01-01'), (2, 'b', date '2024-01-02')) "
        "as t(id, v, pa_date)",
    )
    # When a MERGE changes row 1's day and value and brings row 3
    ex = run(
        account,
        f'merge into "awsdatacatalog"."{db}"."facts" as target using (select * from (values '
        "(1, 'A', date '2024-01-05'), (3, 'c', date '2024-01-03')) as s(id, v, pa_date)) as src "
        "on (target.id = src.id) when matched then update set v = src.v, pa_date = src.pa_date "
        "when not matched then insert (id, v, pa_date) values (src.id, src.v, src.pa_date)",
    )
    # Then the table holds one row per id, row 1 on its new day
    import datetime as dt

    assert rows(account, "facts") == [
        (1, "A", dt.date(2024, 1, 5)),
        (2, "b", dt.date(2024, 1, 2)),
        (3, "c", dt.date(2024, 1, 3)),
    ]
    assert ex.partitions_written == 3  # the days written: 01-01 (delete), 01-05, 01-03
    # and a Hive table refuses MERGE, OPTIMIZE and VACUUM
    for sql in (
        f'merge into "{db}"."ts3" as t using (select 1 as x) as s on (1 = 1) '
        "when matched then delete",
        f"optimize {db}.ts3 rewrite data using bin_pack",
        f"vacuum {db}.ts3",
    ):
        assert "supported only for Iceberg" in run(account, sql, expect="FAILED").reason
    # while the Iceberg table takes them and keeps its rows
    run(
        account,
        f"optimize {db}.facts rewrite data using bin_pack where pa_date > date '2024-01-01'",
    )
    run(account, f"vacuum {db}.facts")
    assert len(rows(account, "facts")) == 3


def test_the_wire_protocol_is_athenas(account):
    # Given a boto3 Athena client on the twin (what dbt-athena's cursor uses)
    athena = boto3.client(
        "athena",
        endpoint_url=account.server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert athena.get_work_group(WorkGroup=WG)["WorkGroup"]["Configuration"][
        "EnforceWorkGroupConfiguration"
    ]
    qid = athena.start_query_execution(
        QueryString="select x, x * 2 as y from unnest(sequence(1, 1500)) as t(x)",
        QueryExecutionContext={"Database": account.analytics_database},
        WorkGroup=WG,
    )["QueryExecutionId"]
    status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
    assert status["State"] == "SUCCEEDED"
    pages = list(athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid))
    data = [r["Data"] for p in pages for r in p["ResultSet"]["Rows"]]
    assert len(pages) == 2 and data[0] == [{"VarCharValue": "x"}, {"VarCharValue": "y"}]
    assert data[-1] == [{"VarCharValue": "1500"}, {"VarCharValue": "3000"}]
    # and a refused request is Athena's InvalidRequestException
    with pytest.raises(ClientError) as refused:
        athena.start_query_execution(QueryString="select 1", WorkGroup="nope")
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"


def test_the_ingest_tables_read_what_the_ingestion_wrote(account, tmp_path):
    # Given a file landed by the ingestion into a local lake (an extra column, a bad price, a
    # duplicate order id), copied to S3 with its tables registered by the ingestion's adapter
    from tests.integration.ingestion.landing_helpers import HEADER, land_text, row

    text = "\n".join(
        [
            HEADER + ",note",
            row("1") + ",x",
            row("2", product_price="abc") + ",y",
            row("1", status="created") + ",z",
        ]
    )
    landed = land_text(tmp_path, text + "\n")
    account.land(landed.lake)
    raw, ingest_id = account.raw_database, landed.manifest["ingest_id"]

    # When the twin reads ingest_manifests (one-line JSON under the OpenX SerDe)
    (manifest,) = run(
        account,
        "select ingest_id, status, rows_in, valid, rejected.missing, rejected.invalid, "
        "rejected.duplicate, cast(ignored_columns as varchar), error "
        f'from "{raw}"."ingest_manifests"',
    ).rows
    # Then it is the manifest the ingestion wrote, the ignored columns as JSON text
    assert tuple(manifest) == (ingest_id, "landed", 3, 1, 0, 1, 1, '["note"]', None)

    # And ingest_rejects holds the two rejected rows in the landing day's partition
    rejects = run(
        account,
        'select source_line, reason, "column", cast(ingest_date as varchar) '
        f'from "{raw}"."ingest_rejects" order by source_line',
    ).rows
    landing_day = landed.manifest["landed_at"][:10]
    assert [tuple(r) for r in rejects] == [
        (3, "invalid", "product_price", landing_day),
        (4, "duplicate", "order_id", landing_day),
    ]


def test_hive_tables_have_the_hidden_file_columns_and_select_star_does_not_show_them(
    account, tmp_path
):
    # Given a landed file's manifest uploaded to S3 between two clock readings
    import datetime as dt

    from tests.integration.ingestion.landing_helpers import HEADER, land_text, row

    landed = land_text(tmp_path, "\n".join([HEADER, row("7")]) + "\n")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    account.land(landed.lake)
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    raw, ingest_id = account.raw_database, landed.manifest["ingest_id"]
    table = f'"{raw}"."ingest_manifests"'

    # When a query names the Hive connector's metadata columns
    found = run(
        account,
        f'select "$path", "$file_modified_time", "$file_size" from {table} '
        f"where ingest_id = '{ingest_id}'",
    )
    # Then they are the object's key, last-modified time (timestamp with time zone) and size
    ((path, modified, size),) = found.rows
    assert path == f"s3://{account.lake_bucket}/manifests/{ingest_id}.json"
    assert before <= modified <= after
    obj = account.client("s3").head_object(
        Bucket=account.lake_bucket, Key=f"manifests/{ingest_id}.json"
    )
    assert size == obj["ContentLength"]
    assert [c for c, _ in found.columns] == ["$path", "$file_modified_time", "$file_size"]
    assert trino_type(found.columns[1][1])[0] == "timestamp with time zone"
    # and a filter on the time keeps the files modified after it
    since = before.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    later = (after + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    count = "select count(*) from {t} where ingest_id = '{i}' and \"$file_modified_time\" > {x}"
    for time, expected in ((since, 1), (later, 0)):
        sql = count.format(t=table, i=ingest_id, x=f"from_iso8601_timestamp('{time}')")
        assert run(account, sql).rows == [(expected,)]
    # while `select *` lists the table's own columns only, and an unknown one fails
    star = run(account, f'select * from "{raw}"."ingest_rejects"')
    assert "source_line" in [c for c, _ in star.columns]
    assert not [c for c, _ in star.columns if c.startswith("$")]
    failed = run(account, f'select "$bucket_no" from {table}', expect="FAILED")
    assert "cannot be resolved" in failed.reason
