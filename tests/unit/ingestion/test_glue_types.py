"""Pure parts of the Glue adapter: Arrow -> Hive types and the partition definitions."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ingestion.glue import GlueCatalog, glue_columns, hive_type


@pytest.mark.parametrize(
    ("arrow_type", "hive"),
    [
        (pa.int64(), "bigint"),
        (pa.int32(), "int"),
        (pa.string(), "string"),
        (pa.large_string(), "string"),
        (pa.decimal128(12, 2), "decimal(12,2)"),
        (pa.decimal128(22, 2), "decimal(22,2)"),
        (pa.decimal128(10, 3), "decimal(10,3)"),
        (pa.date32(), "date"),
        (pa.timestamp("us", tz="UTC"), "timestamp"),
        (pa.bool_(), "boolean"),
        (pa.float64(), "double"),
    ],
)
def test_hive_type(arrow_type, hive):
    assert hive_type(arrow_type) == hive


def test_a_type_glue_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="no Glue type"):
        hive_type(pa.list_(pa.int64()))


def test_partition_key_is_not_a_data_column():
    # Given a schema that carries pa_date (as the spill does), Then the columns omit it
    schema = pa.schema([("order_id", pa.int64()), ("pa_date", pa.date32())])
    assert glue_columns(schema) == [{"Name": "order_id", "Type": "bigint"}]


def test_partition_points_at_its_hive_folder_with_the_table_serde():
    # Given a catalog for a lake under a prefix
    catalog = GlueCatalog("duff", "s3://bkt/lake/raw/orders", pa.schema([("a", pa.int64())]))

    # When a partition definition is made
    partition = catalog.partition_input("2024-02-29")

    # Then it has the date as its value, its own folder and the Parquet SerDe
    assert partition["Values"] == ["2024-02-29"]
    sd = partition["StorageDescriptor"]
    assert sd["Location"] == "s3://bkt/lake/raw/orders/pa_date=2024-02-29/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    assert sd["Columns"] == [{"Name": "a", "Type": "bigint"}]


def test_a_local_location_is_refused():
    with pytest.raises(ValueError, match="s3:// location"):
        GlueCatalog("duff", "/tmp/lake/raw/orders", pa.schema([("a", pa.int64())]))
