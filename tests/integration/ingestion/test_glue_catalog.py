"""GlueCatalog against a moto Glue: table created when absent, partitions idempotent."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pytest

from ingestion.glue import CatalogError, GlueCatalog

SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("client_name", pa.string()),
        ("product_price", pa.decimal128(12, 2)),
        ("product_ccf", pa.int32()),
        ("order_date", pa.date32()),
        ("landed_at", pa.timestamp("us", tz="UTC")),
    ]
)


@pytest.fixture
def glue_db(aws_env, unique_name):
    return unique_name("duff").replace("-", "_")


def test_first_partitions_create_database_table_and_partitions(glue_db):
    # Given an empty catalog
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/prefix/raw/orders", SCHEMA)

    # When two dates are registered (one given twice)
    created = catalog.add_partitions(["2024-03-02", "2024-03-01", "2024-03-02"])

    # Then the table exists with the Parquet SerDe, Hive types and a date partition key
    glue = boto3.client("glue")
    table = glue.get_table(DatabaseName=glue_db, Name="raw_orders")["Table"]
    sd = table["StorageDescriptor"]
    assert sd["Location"] == "s3://lake-bkt/prefix/raw/orders/"
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        ("order_id", "bigint"),
        ("client_name", "string"),
        ("product_price", "decimal(12,2)"),
        ("product_ccf", "int"),
        ("order_date", "date"),
        ("landed_at", "timestamp"),
    ]
    assert table["PartitionKeys"] == [{"Name": "pa_date", "Type": "date"}]
    # And exactly those dates are partitions, each at its Hive folder
    assert created == ["2024-03-01", "2024-03-02"]
    parts = glue.get_partitions(DatabaseName=glue_db, TableName="raw_orders")["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == ["2024-03-01", "2024-03-02"]
    locations = {p["Values"][0]: p["StorageDescriptor"]["Location"] for p in parts}
    assert locations["2024-03-01"] == "s3://lake-bkt/prefix/raw/orders/pa_date=2024-03-01/"


def test_existing_partitions_are_fine_and_only_new_ones_are_reported(glue_db):
    # Given a table with one partition, registered by another process (a fresh catalog object)
    GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA).add_partitions(["2024-01-01"])
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA)

    # When the same date and a new one are registered
    created = catalog.add_partitions(["2024-01-01", "2024-01-02"])

    # Then only the new one is reported and the catalog holds both, once each
    assert created == ["2024-01-02"]
    assert catalog.partitions() == ["2024-01-01", "2024-01-02"]


def test_more_than_one_batch_of_partitions(glue_db):
    # Given 150 dates (BatchCreatePartition takes at most 100 per call)
    import datetime as dt

    dates = [(dt.date(2023, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(150)]
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA)

    # When they are registered
    created = catalog.add_partitions(reversed(dates))

    # Then all of them exist
    assert created == dates
    assert catalog.partitions() == dates


def test_existing_table_is_left_untouched(glue_db):
    # Given a table made by hand with an extra parameter
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA)
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": glue_db})
    table_input = catalog.table_input()
    table_input["Parameters"]["owner"] = "ops"
    glue.create_table(DatabaseName=glue_db, TableInput=table_input)

    # When partitions are registered
    catalog.add_partitions(["2024-05-05"])

    # Then the table keeps its parameters
    table = glue.get_table(DatabaseName=glue_db, Name="raw_orders")["Table"]
    assert table["Parameters"]["owner"] == "ops"
    assert catalog.partitions() == ["2024-05-05"]


def test_table_with_other_partition_key_is_refused(glue_db):
    # Given a raw_orders table partitioned by something else
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA)
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": glue_db})
    table_input = catalog.table_input()
    table_input["PartitionKeys"] = [{"Name": "dt", "Type": "string"}]
    glue.create_table(DatabaseName=glue_db, TableInput=table_input)

    # When partitions are registered, Then a clear error names the mismatch
    with pytest.raises(CatalogError, match="partitioned by"):
        catalog.add_partitions(["2024-05-05"])


def test_table_deleted_after_first_use_is_recreated(glue_db):
    # Given a catalog that already made the table, which is then deleted by hand
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA)
    catalog.add_partitions(["2024-05-05"])
    boto3.client("glue").delete_table(DatabaseName=glue_db, Name="raw_orders")

    # When a new partition is registered by the same (warm) catalog
    catalog.add_partitions(["2024-05-06"])

    # Then the table is back with that partition
    assert catalog.partitions() == ["2024-05-06"]


def test_nothing_to_register_makes_no_call(glue_db):
    # Given a catalog, When no dates are registered, Then no database is created
    catalog = GlueCatalog(glue_db, "s3://lake-bkt/raw/orders/", SCHEMA)
    assert catalog.add_partitions([]) == []
    names = [d["Name"] for d in boto3.client("glue").get_databases()["DatabaseList"]]
    assert glue_db not in names


# The Glue columns of raw_orders as docs/architecture.md section 1 writes them.
ARCHITECTURE_COLUMNS = [
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


def test_catalog_for_a_lake_uses_the_landed_schema_and_lake_location(glue_db):
    # Given the catalog of a lake under a prefix, used through the Catalog protocol
    from ingestion.glue import catalog_for_lake
    from ingestion.lake import Catalog

    catalog = catalog_for_lake("s3://lake-bkt/team/lake/", glue_db)
    assert isinstance(catalog, Catalog)

    # When partitions are registered
    catalog.register_partitions(["2024-03-01"])

    # Then the table has exactly the architecture's columns, at <lake>/raw/orders/
    table = boto3.client("glue").get_table(DatabaseName=glue_db, Name="raw_orders")["Table"]
    sd = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == ARCHITECTURE_COLUMNS
    assert sd["Location"] == "s3://lake-bkt/team/lake/raw/orders/"
    assert catalog.partitions() == ["2024-03-01"]


REJECTS_COLUMNS = [
    ("source_file", "string"),
    ("source_line", "bigint"),
    ("ingest_id", "string"),
    ("raw_values", "string"),
    ("reason", "string"),
    ("column", "string"),
    ("detail", "string"),
    ("landed_at", "timestamp"),
]


def test_ingest_tables_are_created_once_beside_raw_orders(glue_db):
    # Given the catalog of a lake under a prefix
    from ingestion.glue import catalog_for_lake

    catalog = catalog_for_lake("s3://lake-bkt/team/lake", glue_db)

    # When the ingest tables are registered with two landing days, then again by another
    # process (a fresh catalog object) with one old and one new day
    assert catalog.register_ingest(["2024-03-02", "2024-03-01", "2024-03-02"]) == [
        "2024-03-01",
        "2024-03-02",
    ]
    again = catalog_for_lake("s3://lake-bkt/team/lake", glue_db)
    assert again.register_ingest(["2024-03-02", "2024-03-03"]) == ["2024-03-03"]

    # Then ingest_rejects is the rejects schema in Parquet at <lake>/rejects/orders/, by date
    glue = boto3.client("glue")
    rejects = glue.get_table(DatabaseName=glue_db, Name="ingest_rejects")["Table"]
    sd = rejects["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == REJECTS_COLUMNS
    assert sd["Location"] == "s3://lake-bkt/team/lake/rejects/orders/"
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert rejects["PartitionKeys"] == [{"Name": "ingest_date", "Type": "date"}]
    parts = glue.get_partitions(DatabaseName=glue_db, TableName="ingest_rejects")["Partitions"]
    locations = {p["Values"][0]: p["StorageDescriptor"]["Location"] for p in parts}
    assert locations == {
        d: f"s3://lake-bkt/team/lake/rejects/orders/ingest_date={d}/"
        for d in ["2024-03-01", "2024-03-02", "2024-03-03"]
    }
    # And ingest_manifests reads manifests/*.json with a JSON SerDe, unpartitioned, with the
    # columns the dbt staging model selects (rejected a struct, ignored_columns JSON text)
    manifests = glue.get_table(DatabaseName=glue_db, Name="ingest_manifests")["Table"]
    sd = manifests["StorageDescriptor"]
    assert sd["Location"] == "s3://lake-bkt/team/lake/manifests/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert not manifests.get("PartitionKeys")
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        ("ingest_id", "string"),
        ("source_file", "string"),
        ("status", "string"),
        ("rows_in", "bigint"),
        ("valid", "bigint"),
        ("rejected", "struct<missing:bigint,invalid:bigint,duplicate:bigint>"),
        ("ignored_columns", "string"),
        ("landed_at", "string"),
        ("error", "string"),
    ]
    # And raw_orders was not made by it (it comes with the first orders' partitions)
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName=glue_db, Name="raw_orders")


def test_an_ingest_rejects_table_partitioned_otherwise_is_refused(glue_db):
    # Given an ingest_rejects table someone made partitioned by another key
    from ingestion.glue import catalog_for_lake

    catalog = catalog_for_lake("s3://lake-bkt/lake", glue_db)
    table = catalog.rejects_table_input()
    table["PartitionKeys"] = [{"Name": "dt", "Type": "string"}]
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": glue_db})
    glue.create_table(DatabaseName=glue_db, TableInput=table)

    # When the ingestion registers its partitions, then it refuses, naming the keys
    with pytest.raises(CatalogError, match=r"ingest_rejects.*\['dt'\]"):
        catalog.register_ingest(["2024-03-01"])
