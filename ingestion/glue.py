"""The Glue Data Catalog adapter: the raw orders table and its ``pa_date`` partitions.

The only module that talks to AWS Glue. Landing calls it after a file's Parquet is published,
so Athena (and anything else reading the catalog) sees new partitions at once.

Design (see docs/ingestion-aws.md): explicit partitions registered with
``BatchCreatePartition``, not partition projection. Landing knows exactly which dates it
wrote, registering them costs one call per file, every engine that reads the Glue catalog
(Athena, Spark, Redshift Spectrum, Glue crawlers' consumers) sees the same partitions, and the
result is testable (``GetPartitions`` returns exactly the dates). Both calls are idempotent: a
database, table or partition that already exists is left as it is, so at-least-once delivery
and concurrent Lambdas are harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

log = logging.getLogger(__name__)

TABLE_NAME = "raw_orders"
PARTITION_KEY = "pa_date"
# BatchCreatePartition accepts at most 100 partitions per call.
_BATCH = 100

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


class CatalogError(RuntimeError):
    """The catalog refused a change for a reason other than "it already exists"."""


def hive_type(arrow_type: pa.DataType) -> str:
    """The Hive/Glue type name for an Arrow type of the raw orders schema."""
    if pa.types.is_int64(arrow_type):
        return "bigint"
    if pa.types.is_int32(arrow_type):
        return "int"
    if pa.types.is_int16(arrow_type):
        return "smallint"
    if pa.types.is_int8(arrow_type):
        return "tinyint"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_float64(arrow_type):
        return "double"
    if pa.types.is_float32(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    raise TypeError(f"no Glue type for Arrow type {arrow_type}")


def glue_columns(schema: pa.Schema) -> list[dict[str, str]]:
    """Glue column definitions for the data columns of ``schema`` (the partition key excluded)."""
    return [
        {"Name": field.name, "Type": hive_type(field.type)}
        for field in schema
        if field.name != PARTITION_KEY
    ]


def _storage_descriptor(columns: list[dict[str, str]], location: str) -> dict[str, Any]:
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "Compressed": True,
        "SerdeInfo": {
            "SerializationLibrary": PARQUET_SERDE,
            "Parameters": {"serialization.format": "1"},
        },
        "StoredAsSubDirectories": False,
    }


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class GlueCatalog:
    """Registers ``<database>.raw_orders`` and its partitions in the Glue Data Catalog.

    ``table_location`` is the S3 URI of the raw orders folder (``s3://bucket/prefix/raw/orders/``).
    ``schema`` is the Arrow schema of the raw Parquet files (architecture.md section 1).
    ``client`` is a boto3 Glue client; one is made from the environment when omitted.
    """

    def __init__(
        self,
        database: str,
        table_location: str,
        schema: pa.Schema,
        *,
        table: str = TABLE_NAME,
        client: Any = None,
    ) -> None:
        if not table_location.startswith("s3://"):
            raise ValueError(f"a Glue table needs an s3:// location, got {table_location!r}")
        self.database = database
        self.table = table
        self.location = table_location.rstrip("/") + "/"
        self.columns = glue_columns(schema)
        self._client = client
        self._table_ready = False

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("glue")
        return self._client

    # -- table ---------------------------------------------------------------------------------

    def table_input(self) -> dict[str, Any]:
        """The ``TableInput`` used when the table is created."""
        return {
            "Name": self.table,
            "Description": "Validated Duff orders landed by the ingestion Lambda; one row per "
            "valid CSV row, partitioned by pa_date.",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {
                "EXTERNAL": "TRUE",
                "classification": "parquet",
                "parquet.compression": "ZSTD",
            },
            "PartitionKeys": [{"Name": PARTITION_KEY, "Type": "date"}],
            "StorageDescriptor": _storage_descriptor(self.columns, self.location),
        }

    def ensure_table(self) -> None:
        """Create the database and the table when absent; an existing one is left untouched."""
        if self._table_ready:
            return
        glue = self.client
        # Look before creating: the database usually exists (the stack makes it), and a
        # create that fails is an error in CloudTrail and needs a wider IAM grant.
        try:
            glue.get_database(Name=self.database)
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_database(
                    DatabaseInput={
                        "Name": self.database,
                        "Description": "Duff analytics: raw data landed by ingestion",
                    }
                )
                log.info("created Glue database %s", self.database)
            except glue.exceptions.AlreadyExistsException:
                pass
        try:
            existing = glue.get_table(DatabaseName=self.database, Name=self.table)["Table"]
        except glue.exceptions.EntityNotFoundException:
            existing = None
        if existing is None:
            try:
                glue.create_table(DatabaseName=self.database, TableInput=self.table_input())
                log.info("created Glue table %s.%s at %s", self.database, self.table, self.location)
            except glue.exceptions.AlreadyExistsException:
                # Another Lambda created it between our get and create: fine.
                pass
        else:
            keys = [key["Name"] for key in existing.get("PartitionKeys", [])]
            if keys != [PARTITION_KEY]:
                raise CatalogError(
                    f"Glue table {self.database}.{self.table} exists but is partitioned by "
                    f"{keys}, not [{PARTITION_KEY!r}]; refusing to register partitions in it"
                )
        self._table_ready = True

    # -- partitions ----------------------------------------------------------------------------

    def partition_input(self, pa_date: str) -> dict[str, Any]:
        location = f"{self.location}{PARTITION_KEY}={pa_date}/"
        return {
            "Values": [pa_date],
            "StorageDescriptor": _storage_descriptor(self.columns, location),
        }

    def add_partitions(self, pa_dates: Iterable[str]) -> list[str]:
        """Register ``pa_dates`` (``YYYY-MM-DD``); returns the ones that were new.

        Creates the table first when needed. Partitions that already exist are fine; any other
        per-partition error raises ``CatalogError`` naming the dates and the reason, so the
        caller (the Lambda) fails and the event is retried.
        """
        dates = sorted(set(pa_dates))
        if not dates:
            return []
        self.ensure_table()
        created: list[str] = []
        for start in range(0, len(dates), _BATCH):
            batch = dates[start : start + _BATCH]
            created.extend(self._create_batch(batch))
        log.info(
            "registered %d new partition(s) of %s.%s (%d already there)",
            len(created),
            self.database,
            self.table,
            len(dates) - len(created),
        )
        return created

    def _create_batch(self, batch: Sequence[str]) -> list[str]:
        glue = self.client
        try:
            response = glue.batch_create_partition(
                DatabaseName=self.database,
                TableName=self.table,
                PartitionInputList=[self.partition_input(d) for d in batch],
            )
        except glue.exceptions.EntityNotFoundException:
            # The table vanished since we checked (deleted by hand?): recreate once and retry.
            self._table_ready = False
            self.ensure_table()
            response = glue.batch_create_partition(
                DatabaseName=self.database,
                TableName=self.table,
                PartitionInputList=[self.partition_input(d) for d in batch],
            )
        existing: set[str] = set()
        failures: list[str] = []
        for error in response.get("Errors", []):
            values = error.get("PartitionValues") or ["?"]
            detail = error.get("ErrorDetail", {})
            if detail.get("ErrorCode") == "AlreadyExistsException":
                existing.add(values[0])
            else:
                failures.append(
                    f"{values[0]}: {detail.get('ErrorCode')}: {detail.get('ErrorMessage')}"
                )
        if failures:
            raise CatalogError(
                f"Glue refused partitions of {self.database}.{self.table}: " + "; ".join(failures)
            )
        return [d for d in batch if d not in existing]

    def register_partitions(self, dates: list[str]) -> None:
        """The ``Catalog`` protocol of ``ingestion.lake``: see :meth:`add_partitions`."""
        self.add_partitions(dates)

    def partitions(self) -> list[str]:
        """Every registered ``pa_date``, ascending (for tests and operators)."""
        glue = self.client
        values: list[str] = []
        paginator = glue.get_paginator("get_partitions")
        for page in paginator.paginate(DatabaseName=self.database, TableName=self.table):
            values.extend(p["Values"][0] for p in page["Partitions"])
        return sorted(values)


def catalog_for_lake(
    lake_root_uri: str,
    database: str,
    *,
    table: str = TABLE_NAME,
    schema: pa.Schema | None = None,
    client: Any = None,
) -> GlueCatalog:
    """The Glue catalog of the lake at ``s3://bucket/prefix``: ``<database>.<table>`` located
    at ``<lake>/raw/orders/`` with the raw orders schema of ``ingestion.rules``.
    """
    if schema is None:
        from ingestion.rules import RAW_SCHEMA

        schema = RAW_SCHEMA
    location = lake_root_uri.rstrip("/") + "/raw/orders/"
    return GlueCatalog(database, location, schema, table=table, client=client)
