"""Step 5 of landing: publish staged files from an intent record, and recover crashed runs."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ingestion.claims import live_claim
from ingestion.lake import Catalog, Lake
from ingestion.layout import (
    INTENT,
    MANIFESTS,
    REJECTS_PREFIX,
    STAGING,
    STARTED,
    claim_prefix,
    state_key,
)
from ingestion.settings import Settings

log = logging.getLogger("ingestion.land")


def manifest_line(manifest: dict[str, Any]) -> bytes:
    """A manifest file's bytes: one compact JSON object ending in a newline. Athena's JSON
    SerDes (the ``ingest_manifests`` table) read one object per line, so never pretty-print."""
    return json.dumps(manifest, separators=(",", ":")).encode() + b"\n"


def reject_dates(moves: list[tuple[str, str]]) -> list[str]:
    """The ``ingest_date`` partitions that ``moves`` publish rejected rows into."""
    dates = set()
    for _, dst in moves:
        if dst.startswith(REJECTS_PREFIX):
            folder = dst[len(REJECTS_PREFIX) :].split("/", 1)[0]
            key, _, value = folder.partition("=")
            if key == "ingest_date" and value:
                dates.add(value)
    return sorted(dates)


def publish(lake: Lake, catalog: Catalog, intent: dict[str, Any], write_intent: bool) -> None:
    stage = f"{STAGING}{intent['manifest']['ingest_id']}/"
    if write_intent:
        lake.put_atomic(stage + INTENT, json.dumps(intent).encode())
    moves = [(src, dst) for src, dst in intent["moves"]]
    move_many = getattr(lake, "move_many", None)
    if callable(move_many):  # S3: hundreds of partition files, many copies at once
        move_many(moves)
    else:
        for src, dst in moves:
            lake.move(src, dst)
    if intent["manifest"]["partitions"]:
        catalog.register_partitions(list(intent["manifest"]["partitions"]))
    catalog.register_ingest(reject_dates(moves))
    manifest_bytes = manifest_line(intent["manifest"])
    lake.put_atomic(f"{MANIFESTS}{intent['manifest']['ingest_id']}.json", manifest_bytes)
    lake.put_atomic(intent["state_key"], manifest_bytes)
    lake.delete_prefix(stage)
    lake.delete_prefix(claim_prefix(intent["state_key"]))  # after staging: see recover()


def recover(
    lake: Lake, catalog: Catalog, settings: Settings, source_file: str, sha256: str
) -> dict[str, Any] | None:
    """Finish or remove what crashed runs left in ``_staging/``.

    Runs while this run holds the claim on (``source_file``, ``sha256``). A publication with an
    intent is rolled forward, unless another object's run still holds a live claim (it is
    publishing right now). Staging without an intent is removed when it is this object's (its
    run is dead: we hold the claim) or when no live claim protects it. Returns the manifest
    of a rolled-forward publication of this very object, if any.
    """
    result = None
    by_id: dict[str, list[str]] = {}
    for key in lake.list(STAGING):
        parts = key.split("/")
        if len(parts) >= 3:
            by_id.setdefault(parts[1], []).append(key)
    now = time.time()
    for ingest_id, keys in sorted(by_id.items()):
        stage = f"{STAGING}{ingest_id}/"
        raw_intent = lake.read_bytes(stage + INTENT) if stage + INTENT in keys else None
        if raw_intent is not None:
            intent = json.loads(raw_intent)
            m = intent["manifest"]
            mine = m["source_file"] == source_file and m.get("sha256") == sha256
            if (
                not mine
                and live_claim(lake, claim_prefix(intent["state_key"]), settings.claim_ttl_seconds)[
                    1
                ]
            ):
                continue  # its run is alive and publishing it
            log.warning("rolling forward an interrupted publication", extra={"of": ingest_id})
            publish(lake, catalog, intent, write_intent=False)
            if mine:
                result = m
            continue
        started = lake.read_bytes(stage + STARTED)
        info = json.loads(started) if started else {}
        mine = info.get("source_file") == source_file and info.get("sha256") == sha256
        if not mine:
            if info.get("source_file") and info.get("sha256"):
                marker = state_key(info["source_file"], info["sha256"])
                if live_claim(lake, claim_prefix(marker), settings.claim_ttl_seconds)[1]:
                    continue  # its run is alive and staging it
            ages = [lake.modified_at(k) for k in keys]
            newest = max((a for a in ages if a is not None), default=0.0)
            if not info and now - newest <= settings.stale_staging_seconds:
                continue  # no record of its owner yet: only its age can tell
        log.warning("removing unpublished staging", extra={"of": ingest_id})
        lake.delete_prefix(stage)
    return result
