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
    """A text that sorts like the stream's order of arrival: arrival time, then sequence."""
    return f"{record.arrival_us:017d}:{record.shard}:{int(record.sequence):060d}"


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
