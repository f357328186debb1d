"""Where landing puts things in the lake, and the names it gives them (CONTRACT.md section 2)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import PurePosixPath

STAGING = "_staging/"
STATE = "_state/sources/"
CLAIMS = "_state/claims/"
RAW_PREFIX = "raw/orders/"
REJECTS_PREFIX = "rejects/orders/"
MANIFESTS = "manifests/"
QUARANTINE = "quarantine/"
INTENT = "_publish.json"
STARTED = "_started.json"


def iso_z(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_ingest_id(landed_at: dt.datetime, sha256: str) -> str:
    return landed_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + sha256[:12]


def state_key(source_file: str, sha256: str) -> str:
    name_hash = hashlib.sha256(source_file.encode("utf-8")).hexdigest()
    return f"{STATE}{name_hash}/{sha256}.json"


def claim_prefix(state: str) -> str:
    """Where the claims on the object of idempotency marker ``state`` live."""
    return CLAIMS + state[len(STATE) :].removesuffix(".json") + "/"


def source_name(source_file: str) -> str:
    """The file name of a local path or an S3 key: its part after the last ``/`` (a backslash
    is a character of the name on both)."""
    name = PurePosixPath(source_file).name
    return name or "source.csv"


def day_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


MAX_NAME_CHARS = 100  # a header name, as the manifest shows it
MAX_ERROR_CHARS = 500  # a manifest's error


def capped(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, saying how long it was: what a manifest
    quotes from a file (names, errors) stays readable whatever the file holds. Its start and
    its end are kept, so long names that differ only at the end stay apart (``a_..._x`` and
    ``a_..._y`` of one length would read alike from their start alone)."""
    if len(text) <= limit:
        return text
    middle = f" ... ({len(text):,} characters) ... "
    if limit < len(middle) + 10:  # no room to say more than the start
        return text[:limit]
    tail = limit // 5
    head = max(limit - len(middle) - tail, 0)
    return f"{text[:head]}{middle}{text[len(text) - tail :]}"
