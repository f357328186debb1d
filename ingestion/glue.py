"""The Glue Data Catalog adapter: the raw orders table and its ``pa_date`` partitions, and
the ingest tables beside it (``ingest_manifests``, ``ingest_rejects`` by ``ingest_date``).

The only module that talks to AWS Glue. Landing calls it after a file's Parquet is published,
so Athena (and anything else reading the catalog) sees new partitions at once; the ingest
tables are made sure of and the rejects' landing day registered before the manifest is written.

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
from collections.abc import Callable, Iterable, Sequence
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

# What the ingestion writes beside the orders (CONTRACT.md sections 1 and 2), read by dbt's
# `ingest` sources on Athena (models/staging/ingest/_ingest__sources.yml).
REJECTS_TABLE = "ingest_rejects"
REJECTS_PARTITION_KEY = "ingest_date"
MANIFESTS_TABLE = "ingest_manifests"
# Manifests are one JSON object per file, on one line (both Athena JSON SerDes need that).
# The OpenX SerDe, because it hands a nested value declared `string` over as its JSON text
# (its string inspector returns the parsed value's toString()): `ignored_columns` is a JSON
# array kept as text, as the local source reads it. Keys it does not declare (sha256, bytes,
# partitions, seconds) are ignored.
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
MANIFEST_COLUMNS = [
    {"Name": "ingest_id", "Type": "string"},
    {"Name": "source_file", "Type": "string"},
    {"Name": "status", "Type": "string"},
    {"Name": "rows_in", "Type": "bigint"},
    {"Name": "valid", "Type": "bigint"},
    {"Name": "rejected", "Type": "struct<missing:bigint,invalid:bigint,duplicate:bigint>"},
    {"Name": "ignored_columns", "Type": "string"},
    {"Name": "landed_at", "Type": "string"},
    {"Name": "error", "Type": "string"},
]


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


def glue_columns(schema: pa.Schema, partition_key: str = PARTITION_KEY) -> list[dict[str, str]]:
    """Glue column definitions for the data columns of ``schema`` (the partition key excluded)."""
    return [
        {"Name": field.name, "Type": hive_type(field.type)}
        for field in schema
        if field.name != partition_key
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


def _json_storage_descriptor(columns: list[dict[str, str]], location: str) -> dict[str, Any]:
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": TEXT_INPUT_FORMAT,
        "OutputFormat": TEXT_OUTPUT_FORMAT,
        "Compressed": False,
        "SerdeInfo": {"SerializationLibrary": JSON_SERDE, "Parameters": {}},
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
    ``ingest_root`` is the lake's root (``s3://bucket/prefix/``): given it, the catalog also
    keeps ``ingest_manifests`` and ``ingest_rejects`` (see :meth:`register_ingest`).
    """

    def __init__(
        self,
        database: str,
        table_location: str,
        schema: pa.Schema,
        *,
        table: str = TABLE_NAME,
        client: Any = None,
        ingest_root: str | None = None,
        rejects_schema: pa.Schema | None = None,
    ) -> None:
        if not table_location.startswith("s3://"):
            raise ValueError(f"a Glue table needs an s3:// location, got {table_location!r}")
        self.database = database
        self.table = table
        self.location = table_location.rstrip("/") + "/"
        self.columns = glue_columns(schema)
        self.ingest_root = ingest_root.rstrip("/") + "/" if ingest_root else None
        if rejects_schema is None:
            from ingestion.rules import REJECTS_SCHEMA

            rejects_schema = REJECTS_SCHEMA
        self.rejects_columns = glue_columns(rejects_schema, REJECTS_PARTITION_KEY)
        self._client = client
        self._table_ready = False
        self._database_ready = False
        self._ingest_ready = False

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
        self._ensure_database()
        self._ensure_table(self.table, self.table_input(), [PARTITION_KEY])
        self._table_ready = True

    def _ensure_database(self) -> None:
        if self._database_ready:
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
        self._database_ready = True

    def _ensure_table(self, name: str, table_input: dict[str, Any], keys: list[str]) -> None:
        glue = self.client
        try:
            existing = glue.get_table(DatabaseName=self.database, Name=name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            existing = None
        if existing is None:
            try:
                glue.create_table(DatabaseName=self.database, TableInput=table_input)
                log.info(
                    "created Glue table %s.%s at %s",
                    self.database,
                    name,
                    table_input["StorageDescriptor"]["Location"],
                )
            except glue.exceptions.AlreadyExistsException:
                # Another Lambda created it between our get and create: fine.
                pass
        else:
            found = [key["Name"] for key in existing.get("PartitionKeys", [])]
            if found != keys:
                raise CatalogError(
                    f"Glue table {self.database}.{name} exists but is partitioned by "
                    f"{found}, not {keys}; refusing to register partitions in it"
                )

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
        return self._add(self.table, dates, self.partition_input, self._recreate_table)

    def _recreate_table(self) -> None:
        self._table_ready = False
        self.ensure_table()

    def _add(
        self,
        table: str,
        dates: list[str],
        partition_input: Callable[[str], dict[str, Any]],
        recreate: Callable[[], None],
    ) -> list[str]:
        created: list[str] = []
        for start in range(0, len(dates), _BATCH):
            batch = dates[start : start + _BATCH]
            created.extend(self._create_batch(table, batch, partition_input, recreate))
        log.info(
            "registered %d new partition(s) of %s.%s (%d already there)",
            len(created),
            self.database,
            table,
            len(dates) - len(created),
        )
        return created

    def _create_batch(
        self,
        table: str,
        batch: Sequence[str],
        partition_input: Callable[[str], dict[str, Any]],
        recreate: Callable[[], None],
    ) -> list[str]:
        glue = self.client
        try:
            response = glue.batch_create_partition(
                DatabaseName=self.database,
                TableName=table,
                PartitionInputList=[partition_input(d) for d in batch],
            )
        except glue.exceptions.EntityNotFoundException:
            # The table vanished since we checked (deleted by hand?): recreate once and retry.
            recreate()
            response = glue.batch_create_partition(
                DatabaseName=self.database,
                TableName=table,
                PartitionInputList=[partition_input(d) for d in batch],
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
                f"Glue refused partitions of {self.database}.{table}: " + "; ".join(failures)
            )
        return [d for d in batch if d not in existing]

    # -- what the ingestion writes beside the orders --------------------------------------------

    def manifests_table_input(self) -> dict[str, Any]:
        """``ingest_manifests``: every ``manifests/<ingest_id>.json`` (one JSON line each)."""
        return {
            "Name": MANIFESTS_TABLE,
            "Description": "One row per landed or quarantined delivery: the ingestion's "
            "manifests (CONTRACT.md section 2), one JSON object per file.",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE", "classification": "json"},
            "StorageDescriptor": _json_storage_descriptor(
                MANIFEST_COLUMNS, f"{self._require_ingest_root()}manifests/"
            ),
        }

    def rejects_table_input(self) -> dict[str, Any]:
        """``ingest_rejects``: every rejected row, partitioned by ``ingest_date``."""
        return {
            "Name": REJECTS_TABLE,
            "Description": "One row per rejected CSV row, partitioned by the landing day "
            "(ingest_date).",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {
                "EXTERNAL": "TRUE",
                "classification": "parquet",
                "parquet.compression": "ZSTD",
            },
            "PartitionKeys": [{"Name": REJECTS_PARTITION_KEY, "Type": "date"}],
            "StorageDescriptor": _storage_descriptor(self.rejects_columns, self.rejects_location),
        }

    @property
    def rejects_location(self) -> str:
        return f"{self._require_ingest_root()}rejects/orders/"

    def rejects_partition_input(self, ingest_date: str) -> dict[str, Any]:
        location = f"{self.rejects_location}{REJECTS_PARTITION_KEY}={ingest_date}/"
        return {
            "Values": [ingest_date],
            "StorageDescriptor": _storage_descriptor(self.rejects_columns, location),
        }

    def ensure_ingest_tables(self) -> None:
        """Create ``ingest_manifests`` and ``ingest_rejects`` when absent (idempotent)."""
        if self._ingest_ready:
            return
        self._ensure_database()
        self._ensure_table(MANIFESTS_TABLE, self.manifests_table_input(), [])
        self._ensure_table(REJECTS_TABLE, self.rejects_table_input(), [REJECTS_PARTITION_KEY])
        self._ingest_ready = True

    def _recreate_ingest_tables(self) -> None:
        self._ingest_ready = False
        self.ensure_ingest_tables()

    def register_ingest(self, reject_dates: list[str]) -> list[str]:
        """The ``Catalog`` protocol: the ingest tables exist and ``ingest_rejects`` has the
        ``ingest_date`` partitions ``reject_dates``; returns the partitions that were new."""
        self.ensure_ingest_tables()
        dates = sorted(set(reject_dates))
        if not dates:
            return []
        return self._add(
            REJECTS_TABLE, dates, self.rejects_partition_input, self._recreate_ingest_tables
        )

    def _require_ingest_root(self) -> str:
        if self.ingest_root is None:
            raise CatalogError(
                "this catalog was made for one table; use catalog_for_lake() to register the "
                "ingest tables beside it"
            )
        return self.ingest_root

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
    at ``<lake>/raw/orders/`` with the raw orders schema of ``ingestion.rules``, and the
    ingest tables ``ingest_manifests`` (``<lake>/manifests/``) and ``ingest_rejects``
    (``<lake>/rejects/orders/``, partitioned by ``ingest_date``).
    """
    if schema is None:
        from ingestion.rules import RAW_SCHEMA

        schema = RAW_SCHEMA
    root = lake_root_uri.rstrip("/") + "/"
    return GlueCatalog(
        database, root + "raw/orders/", schema, table=table, client=client, ingest_root=root
    )
