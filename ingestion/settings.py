"""Ingestion configuration: read from environment variables once, into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable holds a value ingestion cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything ingestion reads from the environment.

    ``lake``               DUFF_LAKE: lake root, a path or ``s3://bucket/prefix`` (``./lake``).
    ``glue_database``      DUFF_GLUE_DATABASE: Glue database of ``raw_orders`` (``duff``).
    ``glue_table``         the raw table's name in Glue (fixed: ``raw_orders``).
    ``aws_region``         AWS_REGION / AWS_DEFAULT_REGION (``us-east-1``).
    ``aws_endpoint_url``   AWS_ENDPOINT_URL: a local S3/Glue endpoint (moto) or None.
    ``log_level``          DUFF_LOG_LEVEL (``INFO``).
    ``block_bytes``        DUFF_INGEST_BLOCK_BYTES: CSV bytes parsed per step (8 MiB).
    ``row_group_rows``     DUFF_INGEST_ROW_GROUP_ROWS: Parquet rows per row group (262144).
    ``buffer_bytes``       DUFF_INGEST_BUFFER_BYTES: Arrow bytes buffered before a flush (64 MiB).
    ``spill_dir``          DUFF_SPILL_DIR: local scratch directory for the sort by pa_date
                           (the system temp directory, ``/tmp`` in Lambda).
    ``stale_staging_seconds``  DUFF_STAGING_TTL_SECONDS: age after which another run's
                           unpublished staging is abandoned and removed (3600; a Lambda runs
                           for 15 minutes at most).
    ``claim_ttl_seconds``  DUFF_CLAIM_TTL_SECONDS: age after which another run's claim on the
                           same object is taken over when its holder cannot be checked (on
                           another host); 900, the longest a Lambda runs.
    ``claim_wait_seconds`` DUFF_CLAIM_WAIT_SECONDS: how long a second delivery of an object
                           that is being landed waits for it before failing as busy (60).
    """

    lake: str = "./lake"
    glue_database: str = "duff"
    glue_table: str = "raw_orders"
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    log_level: str = "INFO"
    block_bytes: int = 8 * 1024 * 1024
    row_group_rows: int = 262_144
    buffer_bytes: int = 64 * 1024 * 1024
    stale_staging_seconds: int = 3600
    spill_dir: str | None = None
    claim_ttl_seconds: int = 900
    claim_wait_seconds: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            lake=env.get("DUFF_LAKE", "").strip() or "./lake",
            glue_database=env.get("DUFF_GLUE_DATABASE", "").strip() or "duff",
            aws_region=(
                env.get("AWS_REGION", "").strip()
                or env.get("AWS_DEFAULT_REGION", "").strip()
                or "us-east-1"
            ),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL", "").strip() or None,
            log_level=(env.get("DUFF_LOG_LEVEL", "").strip() or "INFO").upper(),
            block_bytes=_int(env, "DUFF_INGEST_BLOCK_BYTES", 8 * 1024 * 1024, 64 * 1024),
            row_group_rows=_int(env, "DUFF_INGEST_ROW_GROUP_ROWS", 262_144, 1),
            buffer_bytes=_int(env, "DUFF_INGEST_BUFFER_BYTES", 64 * 1024 * 1024, 1024 * 1024),
            stale_staging_seconds=_int(env, "DUFF_STAGING_TTL_SECONDS", 3600, 0),
            spill_dir=env.get("DUFF_SPILL_DIR", "").strip() or None,
            claim_ttl_seconds=_int(env, "DUFF_CLAIM_TTL_SECONDS", 900, 0),
            claim_wait_seconds=_int(env, "DUFF_CLAIM_WAIT_SECONDS", 60, 0),
        )
