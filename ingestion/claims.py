"""Claims: one landing per object (source name + SHA-256) at a time.

A run claims the object it lands (source name + SHA-256) by creating
``_state/claims/<name hash>/<sha256>/<generation>.json`` with ``put_if_absent`` (a conditional
PutObject on S3, a hard link locally), so of two deliveries racing each other exactly one
lands; the other waits for its manifest and reports ``skipped``, or raises LandingBusy.
A claim whose holder is provably dead (same kernel boot, its process gone) or that is older
than ``claim_ttl_seconds`` (holder elsewhere, e.g. a Lambda that timed out) is taken over
by creating the next generation, again with put_if_absent, so two takers cannot both win.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from ingestion.errors import LandingBusy
from ingestion.lake import Lake
from ingestion.layout import claim_prefix, state_key
from ingestion.settings import Settings

log = logging.getLogger("ingestion.land")


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _holder() -> dict[str, Any]:
    return {
        "boot_id": _boot_id(),
        "pid": os.getpid(),
        "process_started": _process_start(os.getpid()),
    }


def _holder_alive(info: dict[str, Any]) -> bool | None:
    """True/False when the claim's holder ran on this machine's kernel; None when unknowable."""
    boot = _boot_id()
    if boot is None or info.get("boot_id") != boot or not info.get("process_started"):
        return None
    return _process_start(int(info.get("pid", -1))) == info["process_started"]


def live_claim(lake: Lake, prefix: str, ttl: float) -> tuple[str | None, dict[str, Any] | None]:
    """The newest claim under ``prefix`` and its content when its holder may still be at work
    (``(key, None)`` when it is stale, ``(None, None)`` when there is no claim)."""
    keys = [k for k in lake.list(prefix) if k.endswith(".json")]
    if not keys:
        return None, None
    top = keys[-1]
    raw = lake.read_bytes(top)
    if raw is None:  # released meanwhile
        return top, None
    try:
        info = json.loads(raw)
    except ValueError:
        info = {}
    alive = _holder_alive(info)
    if alive is None:
        modified = lake.modified_at(top)
        alive = modified is not None and time.time() - modified <= ttl
    return top, (info if alive else None)


def claim(
    lake: Lake, settings: Settings, source_file: str, sha256: str, ingest_id: str
) -> str | dict[str, Any]:
    """Claim the object for this run: the claim's key, or the manifest of the landing that
    already happened (the object is to be skipped). Waits up to ``claim_wait_seconds`` for
    a live holder to finish, then raises :class:`LandingBusy`."""
    marker = state_key(source_file, sha256)
    prefix = claim_prefix(marker)
    token = json.dumps({**_holder(), "ingest_id": ingest_id}).encode()
    deadline = time.monotonic() + settings.claim_wait_seconds
    delay = 0.05
    while True:
        previous = lake.read_bytes(marker)
        if previous is not None:
            return json.loads(previous)
        top, holder = live_claim(lake, prefix, settings.claim_ttl_seconds)
        if holder is None:
            if top is not None:
                log.warning("taking over a stale claim", extra={"claim": top})
            generation = 0 if top is None else int(top.rsplit("/", 1)[1].split(".")[0]) + 1
            key = f"{prefix}{generation:010d}.json"
            if lake.put_if_absent(key, token):
                previous = lake.read_bytes(marker)  # landed between our check and our claim?
                if previous is None:
                    return key
                lake.delete([key])
                return json.loads(previous)
            continue  # another run claimed it first: look again
        if time.monotonic() >= deadline:
            raise LandingBusy(
                f"{source_file} (sha256 {sha256[:12]}) is being landed by another run "
                f"(ingest {holder.get('ingest_id')}); not landed after waiting "
                f"{settings.claim_wait_seconds} s. Retry later: the retry is skipped once "
                "that run has landed it"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
