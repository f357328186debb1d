"""Land one orders CSV into the lake: validate, stage, publish, write the manifest last.

:func:`land` runs these steps, in this order (CONTRACT.md section 2, docs/ingestion.md),
on a source opened once (:mod:`ingestion.source`: regular files only, one handle for every
pass; :class:`Unreadable` otherwise):

1. **Fingerprint** (:mod:`ingestion.fingerprint`): one streaming pass computes the SHA-256 and
   size and finds whole-file faults (empty, compressed, not UTF-8). ``ingest_id`` is
   ``<landed_at as YYYYMMDDTHHMMSSffffffZ>-<12 hex of the SHA-256>`` (:mod:`ingestion.layout`).
2. **Claim** (:mod:`ingestion.claims`): one run at a time lands an object (source name +
   SHA-256); when its idempotency marker exists the object landed before and is ``skipped``.
3. **Recover** (:mod:`ingestion.publish`): unfinished work of crashed runs under
   ``_staging/`` is rolled forward (a publication with an intent) or removed.
4. **Stage** (:mod:`ingestion.stage`): a second streaming pass scans and judges the rows
   block by block (:mod:`ingestion.csvscan`, :mod:`ingestion.rules`, threads in
   :mod:`ingestion.pipeline`), finds duplicates (:mod:`ingestion.seen_ids`), sorts valid rows
   by ``pa_date`` through local scratch (:mod:`ingestion.spill`) and writes one Parquet file
   per partition and one of rejects (:mod:`ingestion.writers`). A whole-file fault stages a
   byte-for-byte copy of the source for ``quarantine/<ingest_id>/<name>`` instead.
5. **Publish** (:mod:`ingestion.publish`): an intent record lists every move; the files are
   moved into place, the catalog learns the new partitions, the manifest is written, then the
   idempotency marker, and the staging prefix is removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ingestion.claims import claim
from ingestion.errors import LandingBusy, Quarantine, Unreadable
from ingestion.fingerprint import READ_BYTES, Fingerprint, fingerprint
from ingestion.lake import (
    Catalog,
    Lake,
    NullCatalog,
    canonical_source,
    is_s3_uri,
    lake_from_uri,
)
from ingestion.layout import (
    MAX_ERROR_CHARS,
    QUARANTINE,
    STAGING,
    STARTED,
    capped,
    claim_prefix,
    iso_z,
    make_ingest_id,
    source_name,
    state_key,
)
from ingestion.publish import publish, recover
from ingestion.settings import Settings
from ingestion.source import Source, opened
from ingestion.stage import stage_rows

__all__ = [
    "LandingBusy",
    "Quarantine",
    "Unreadable",
    "claim_prefix",
    "default_catalog",
    "land",
    "state_key",
]

log = logging.getLogger("ingestion.land")


def land(
    source: str,
    *,
    settings: Settings | None = None,
    lake: Lake | None = None,
    catalog: Catalog | None = None,
    progress: Callable[[int], None] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Land ``source`` (a path or ``s3://bucket/key``) and return its manifest.

    Raises :class:`Unreadable` when the source cannot be read at all (nothing is written)."""
    settings = settings or Settings.from_env()
    lake = lake if lake is not None else lake_from_uri(settings.lake)
    catalog = catalog if catalog is not None else NullCatalog()
    started = time.monotonic()
    landed_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    with opened(canonical_source(source)) as src:
        # 1. fingerprint
        with src.read() as f:
            fp = fingerprint(f)
        src.etag = fp.etag
        ingest_id = make_ingest_id(landed_at, fp.sha256)
        extra = {"ingest_id": ingest_id, "source_file": src.uri}
        log.info(
            "landing",
            extra={
                **extra,
                "bytes": fp.size,
                "sha256": fp.sha256,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        # 2. claim, or skip what landed before
        claimed = claim(lake, settings, src.uri, fp.sha256, ingest_id)
        if not isinstance(claimed, str):
            return _skipped(claimed, extra)
        try:
            # 3. recover, 4. stage, 5. publish
            return _land_claimed(
                lake, catalog, settings, src, fp, ingest_id, landed_at, started, progress
            )
        except BaseException:
            with contextlib.suppress(Exception):
                lake.delete([claimed])  # let the retry claim it at once
            raise


def _skipped(previous: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a delivery of an object that landed (or was quarantined) before: that
    landing's manifest, saying so; a quarantined one keeps its error (CONTRACT.md section 2)."""
    manifest = dict(previous)
    manifest["previous_status"] = previous["status"]
    manifest["status"] = "skipped"
    if previous["status"] != "quarantined":
        manifest["error"] = None
    log.info(
        "skipped: this object has landed before",
        extra={
            **extra,
            "outcome": "skipped",
            "as": manifest["ingest_id"],
            "previous_status": previous["status"],
        },
    )
    return manifest


def _land_claimed(
    lake: Lake,
    catalog: Catalog,
    settings: Settings,
    src: Source,
    fp: Fingerprint,
    ingest_id: str,
    landed_at: dt.datetime,
    started: float,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    source_file = src.uri
    extra = {"ingest_id": ingest_id, "source_file": source_file}
    recovered = recover(lake, catalog, settings, source_file, fp.sha256)
    if recovered is not None:
        # (an interrupted quarantine finished now is as much a warning as one made now)
        quarantined = recovered.get("status") == "quarantined"
        log.log(
            logging.WARNING if quarantined else logging.INFO,
            f"{recovered.get('status')} by finishing an interrupted run",
            extra={
                **extra,
                "outcome": recovered.get("status"),
                **({"error": recovered.get("error")} if quarantined else {}),
            },
        )
        return recovered

    stage = f"{STAGING}{ingest_id}/"
    lake.put_atomic(
        stage + STARTED,
        json.dumps(
            {"source_file": source_file, "sha256": fp.sha256, "ingest_id": ingest_id}
        ).encode(),
    )
    manifest: dict[str, Any] = {
        "ingest_id": ingest_id,
        "source_file": source_file,
        "status": "landed",
        "rows_in": 0,
        "valid": 0,
        "rejected": {"missing": 0, "invalid": 0, "duplicate": 0},
        "ignored_columns": [],
        "partitions": [],
        "landed_at": iso_z(landed_at),
        "error": None,
        "sha256": fp.sha256,
        "bytes": fp.size,
    }
    try:
        if fp.fault:
            raise Quarantine(fp.fault)
        staged = stage_rows(lake, settings, src, ingest_id, landed_at, stage, progress)
        manifest.update(
            rows_in=staged.counts.rows_in,
            valid=staged.counts.valid,
            rejected=staged.counts.rejected,
            ignored_columns=[capped(name) for name in staged.ignored_columns],
            partitions=staged.partitions,
        )
        moves = staged.moves
    except Quarantine as exc:
        for key in lake.list(stage):
            if not key.endswith(STARTED):
                lake.delete([key])
        qkey = f"{QUARANTINE}{ingest_id}/{source_name(source_file)}"
        _copy_source(lake, src, stage + "quarantined")
        manifest.update(status="quarantined", error=capped(str(exc), MAX_ERROR_CHARS))
        moves = [(stage + "quarantined", qkey)]
    except BaseException:
        with contextlib.suppress(Exception):
            lake.delete_prefix(stage)
        raise
    try:
        src.check_unchanged()  # the bytes staged are the bytes hashed
    except BaseException:
        with contextlib.suppress(Exception):
            lake.delete_prefix(stage)
        raise
    manifest["seconds"] = round(time.monotonic() - started, 3)
    intent = {"manifest": manifest, "moves": moves, "state_key": state_key(source_file, fp.sha256)}
    publish(lake, catalog, intent, write_intent=True)
    # One line for the outcome, once it is published: a quarantine is a warning with its error.
    # (`outcome` lets the CLI leave it out at a terminal, where its summary says the same.)
    quarantined = manifest["status"] == "quarantined"
    log.log(
        logging.WARNING if quarantined else logging.INFO,
        manifest["status"],
        extra={
            **extra,
            "outcome": manifest["status"],
            "rows_in": manifest["rows_in"],
            "valid": manifest["valid"],
            "rejected": manifest["rejected"],
            "partitions": len(manifest["partitions"]),
            "seconds": manifest["seconds"],
            **({"error": manifest["error"]} if quarantined else {}),
        },
    )
    return manifest


def _copy_source(lake: Lake, src: Source, key: str) -> None:
    """Keep the refused file byte for byte (server-side when both are on S3)."""
    copy_from = getattr(lake, "copy_from", None)
    if is_s3_uri(src.uri) and callable(copy_from):
        copy_from(src.uri, key)
        return
    with src.read() as f, lake.open_write(key, mode=src.mode) as dst:
        while True:
            chunk = f.read(READ_BYTES)
            if not chunk:
                break
            dst.write(chunk)


def default_catalog(settings: Settings) -> Catalog:
    """Glue for a lake on S3 (``${DUFF_GLUE_DATABASE}.raw_orders``), nothing for a local one."""
    if settings.lake.startswith("s3://"):
        from ingestion.glue import catalog_for_lake  # boto3 only when the lake is on S3

        return catalog_for_lake(settings.lake, settings.glue_database)
    return NullCatalog()
