"""Event builders for the real-time tests (test doubles live under tests/)."""

from __future__ import annotations

import datetime as dt
import json

from realtime.model import Record

BASE = {
    "client_id": 10,
    "client_name": "Moe",
    "product_id": 5,
    "product_description": "Duff",
    "product_price": "2.50",
    "product_ccf": 4,
    "product_volume": "0.500",
    "point_of_sale_channel": "retail",
    "status": "created",
}


class Raw(str):
    """A JSON value written exactly as given (``Raw("2.500")`` stays three decimals)."""


def event(order_id: object, **changes: object) -> bytes:
    """One event's bytes; a value ``...`` leaves its key out, a :class:`Raw` is written as is."""
    body = {"order_id": order_id, **BASE, **changes}
    raws = {}
    for k, v in body.items():
        if isinstance(v, Raw):
            raws[k] = v
            body[k] = f"@raw:{k}@"
    text = json.dumps({k: v for k, v in body.items() if v is not ...})
    for k, v in raws.items():
        text = text.replace(json.dumps(f"@raw:{k}@"), v)
    return text.encode()


def us(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def records(
    items: list[bytes], *, shard: str = "shard-0000", start: int = 1, at: dt.datetime | None = None
) -> list[Record]:
    """Records as a stream delivers them: consecutive sequences, arrival 1 ms apart."""
    base = us(at or dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC))
    return [
        Record(shard, str(start + i), base + 1000 * (start + i), data)
        for i, data in enumerate(items)
    ]
