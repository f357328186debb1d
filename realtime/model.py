"""The plain records the real-time parts pass each other (no I/O, no third-party imports:
the API Lambda, which ships without pyarrow, reads the store through these too)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    """One record as the stream delivered it.

    ``sequence`` is the shard's own sequence number (an int locally, Kinesis' decimal text in
    AWS); ``arrival_us`` the stream's time of arrival in microseconds since the epoch (UTC).
    """

    shard: str
    sequence: str
    arrival_us: int
    data: bytes


def version_of(record: Record) -> str:
    """The record's place in the stream: ``<arrival_us>:<shard>:<sequence>``, numbers
    zero-padded so that text order is numeric order. Compare two with :func:`newer`."""
    return f"{record.arrival_us:017d}:{record.shard}:{int(record.sequence):060d}"


def _parts(version: str) -> tuple[str, str] | None:
    """(shard, sequence) of a version; None for one not of that form (an earlier layout's)."""
    if version.count(":") < 2:
        return None
    shard, sequence = version.split(":", 1)[1].rsplit(":", 1)
    return shard, sequence


def newer(version: str, than: str) -> bool:
    """Whether ``version`` comes after ``than`` in the stream's order of arrival (CONTRACT.md
    section 6). Within one shard that order is the sequence number: Kinesis' arrival time
    stamps may run backwards within a shard (GetRecords, ApproximateArrivalTimestamp: "no
    guarantees that the time stamp is always increasing"), and the lake's batches rank a shard's
    records by sequence too. Across shards (an order's versions share a shard, its partition
    key, except across a resharding) the arrival time decides, then shard and sequence."""
    mine, theirs = _parts(version), _parts(than)
    if mine is not None and theirs is not None and mine[0] == theirs[0]:
        return mine[1] > theirs[1]  # zero-padded: text order is numeric order
    return version > than


def sequence_key(version: str) -> str:
    """A sort key that orders the versions of one shard as :func:`newer` does."""
    parts = _parts(version)
    return parts[1] if parts is not None else version


@dataclass(frozen=True)
class Order:
    order_id: int
    pa_date: str
    channel: str
    status: str
    units: int
    liters_milli: int
    revenue_cents: int
    received_us: int
    version: str
