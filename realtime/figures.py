"""The real-time figures: orders, their versions, and what a new version changes.

Pure Python (no pyarrow), shared by both stores (SQLite locally, DynamoDB in AWS) and the API:

* :func:`deltas` says what replacing stored versions with newer ones does to the per-day
  aggregates (an older or equal version, i.e. a redelivery, changes nothing);
* :func:`summary` shapes the API answer of ``GET /realtime/summary``.

Money and litres are exact integers (cents, millilitres): sums never drift.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal

from realtime.model import Order, newer

CHANNELS = ("B2B", "Online", "Retail")  # ordered by name, as served
STATUSES = ("broken", "created", "delivered")
_EPOCH = dt.date(1970, 1, 1)


# (pa_date, channel, status) -> [orders, units, liters_milli, revenue_cents]
AggKey = tuple[str, str, str]


def deltas(
    incoming: Mapping[int, Order], stored: Mapping[int, Order]
) -> tuple[list[Order], dict[AggKey, list[int]]]:
    """The orders that replace what is stored, and the aggregate changes they make."""
    changed: list[Order] = []
    delta: dict[AggKey, list[int]] = {}

    def add(o: Order, sign: int) -> None:
        d = delta.setdefault((o.pa_date, o.channel, o.status), [0, 0, 0, 0])
        d[0] += sign
        d[1] += sign * o.units
        d[2] += sign * o.liters_milli
        d[3] += sign * o.revenue_cents

    for order_id, new in incoming.items():
        old = stored.get(order_id)
        if old is not None and not newer(new.version, old.version):
            continue  # a redelivery, or older than what is stored: counts once
        if old is not None:
            add(old, -1)
        add(new, +1)
        changed.append(new)
    return changed, {k: d for k, d in delta.items() if any(d)}


def iso_us(us: int | None) -> str | None:
    if us is None:
        return None
    ts = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _litres(milli: int) -> Decimal:
    return Decimal(milli).scaleb(-3)


def summary(
    pa_date: dt.date,
    rows: Iterable[tuple[str, str, int, int, int, int]],
    as_of_us: int | None,
    last_event_us: int | None,
) -> dict:
    """The ``/realtime/summary`` body from (channel, status, orders, units, litres_milli,
    revenue_cents) rows of one date. Numbers are exact Decimals (the encoder rounds them)."""
    total = [0, 0, 0, 0]
    by_channel: dict[str, list[int]] = {}
    by_status: dict[str, list[int]] = {}
    for channel, status, orders, units, liters, revenue in rows:
        if orders <= 0:
            continue
        for acc in (
            total,
            by_channel.setdefault(channel, [0, 0, 0, 0]),
            by_status.setdefault(status, [0, 0, 0, 0]),
        ):
            acc[0] += orders
            acc[1] += units
            acc[2] += liters
            acc[3] += revenue
    return {
        "pa_date": pa_date.isoformat(),
        "as_of": iso_us(as_of_us),
        "last_event_at": iso_us(last_event_us) if total[0] else None,
        "orders": total[0],
        "units": total[1],
        "liters": _litres(total[2]),
        "revenue": _money(total[3]),
        "by_channel": [
            {
                "channel": c,
                "orders": a[0],
                "units": a[1],
                "liters": _litres(a[2]),
                "revenue": _money(a[3]),
            }
            for c, a in sorted(by_channel.items())
        ],
        "by_status": [
            {"status": s, "orders": a[0], "units": a[1], "revenue": _money(a[3])}
            for s, a in sorted(by_status.items())
        ],
    }
