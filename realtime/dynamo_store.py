"""The DynamoDB adapter: the real-time store in AWS (the only module that calls DynamoDB).

One table, keys ``pk`` and ``sk`` (strings):

* ``order#<order_id>`` / ``v``: the newest version of an order (``version``, ``day``,
  ``channel``, ``status``, ``units``, ``liters_milli``, ``revenue_cents``, ``received_us``);
* ``day#<pa_date>`` / ``<channel>#<status>``: the aggregates (``orders``, ``units``,
  ``liters_milli``, ``revenue_cents``), changed with ``ADD`` only;
* ``meta`` / ``as_of``: when the figures last changed.

Global secondary index ``by_day`` (``day``, ``received_us``, keys only) answers
``last_event_at``: the newest receipt among the orders a date holds now.

Exactly once: the orders a batch replaces and the aggregate changes they make are written in
one ``TransactWriteItems``, each order ``Put`` conditioned on the version it replaces
(``attribute_not_exists`` for a new order). A redelivered record is not newer than what is
stored and writes nothing; when the table holds another version than the one planned on, the
condition fails, nothing of that transaction is written, and its orders are read from the
table and planned again.

Planning starts from what this execution environment last wrote or read (``_known``), not
from a read: one function instance usually sees a shard's batches one after another, so most
orders are either new or known, and a batch costs its writes only. A guess that is wrong
(another instance wrote the order, or the cache was dropped) costs one failed transaction and
a read, never a wrong figure: the conditions check every guess.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal
from typing import Any

from realtime.figures import AggKey, deltas, summary
from realtime.model import Order

log = logging.getLogger("realtime.dynamo")
MAX_TX_ITEMS = 100  # TransactWriteItems' limit
RETRIES = 5


def _order_key(order_id: int) -> dict[str, Any]:
    return {"pk": {"S": f"order#{order_id}"}, "sk": {"S": "v"}}


def _order_from_item(item: dict[str, Any]) -> Order:
    return Order(
        order_id=int(item["pk"]["S"].split("#", 1)[1]),
        pa_date=item["day"]["S"],
        channel=item["channel"]["S"],
        status=item["status"]["S"],
        units=int(item["units"]["N"]),
        liters_milli=int(item["liters_milli"]["N"]),
        revenue_cents=int(item["revenue_cents"]["N"]),
        received_us=int(item["received_us"]["N"]),
        version=item["version"]["S"],
    )


def _order_item(o: Order) -> dict[str, Any]:
    return {
        **_order_key(o.order_id),
        "version": {"S": o.version},
        "day": {"S": o.pa_date},
        "channel": {"S": o.channel},
        "status": {"S": o.status},
        "units": {"N": str(o.units)},
        "liters_milli": {"N": str(o.liters_milli)},
        "revenue_cents": {"N": str(o.revenue_cents)},
        "received_us": {"N": str(o.received_us)},
    }


class DynamoStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table, self.client = table, client
        self._known: dict[int, Order] = {}  # versions written or read here (may be stale)

    def close(self) -> None:
        return None

    # -- writing ---------------------------------------------------------------------------

    def _stored(self, ids: list[int]) -> dict[int, Order]:
        out: dict[int, Order] = {}
        for i in range(0, len(ids), 100):
            keys = [_order_key(x) for x in ids[i : i + 100]]
            request = {self.table: {"Keys": keys, "ConsistentRead": True}}
            for attempt in range(RETRIES + 1):
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.table, []):
                    o = _order_from_item(item)
                    out[o.order_id] = o
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("DynamoDB left keys unprocessed after retries")
        return out

    def _chunks(self, changed: list[Order], stored: dict[int, Order]) -> list[list[Order]]:
        """Orders grouped so that each group's orders plus its aggregate keys fit one
        transaction (a transaction may not touch one item twice: keys are merged)."""
        groups: list[list[Order]] = []
        group: list[Order] = []
        keys: set[AggKey] = set()
        for o in changed:
            mine = {(o.pa_date, o.channel, o.status)}
            old = stored.get(o.order_id)
            if old is not None:
                mine.add((old.pa_date, old.channel, old.status))
            if group and len(group) + 2 + len(keys | mine) > MAX_TX_ITEMS:  # + the as_of item
                groups.append(group)
                group, keys = [], set()
            group.append(o)
            keys |= mine
        if group:
            groups.append(group)
        return groups

    def _write(self, group: list[Order], stored: dict[int, Order]) -> None:
        changed, delta = deltas({o.order_id: o for o in group}, stored)
        items: list[dict[str, Any]] = []
        for o in changed:
            old = stored.get(o.order_id)
            put: dict[str, Any] = {"TableName": self.table, "Item": _order_item(o)}
            if old is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                put["ConditionExpression"] = "version = :v"
                put["ExpressionAttributeValues"] = {":v": {"S": old.version}}
            items.append({"Put": put})
        for (day, channel, status), d in delta.items():
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": f"day#{day}"}, "sk": {"S": f"{channel}#{status}"}},
                        "UpdateExpression": "ADD orders :o, units :u, liters_milli :l, "
                        "revenue_cents :r",
                        "ExpressionAttributeValues": {
                            ":o": {"N": str(d[0])},
                            ":u": {"N": str(d[1])},
                            ":l": {"N": str(d[2])},
                            ":r": {"N": str(d[3])},
                        },
                    }
                }
            )
        if items:
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            "pk": {"S": "meta"},
                            "sk": {"S": "as_of"},
                            "as_of_us": {"N": str(time.time_ns() // 1000)},
                        },
                    }
                }
            )
            self.client.transact_write_items(TransactItems=items)

    def apply(self, incoming: dict[int, Order]) -> int:
        """Apply the newest versions of a batch exactly once; returns how many orders changed."""
        pending = dict(incoming)
        total = 0
        known = self._known
        if len(known) > 500_000:
            known.clear()
        read = False  # first plan from what this instance knows; after a conflict, from reads
        for attempt in range(RETRIES + 1):
            if read:
                stored = self._stored(list(pending))
                known.update(stored)
            else:
                stored = {oid: known[oid] for oid in pending if oid in known}
            changed, _ = deltas(pending, stored)
            retry: dict[int, Order] = {}
            for group in self._chunks(changed, stored):
                try:
                    self._write(group, stored)
                except self.client.exceptions.TransactionCanceledException:
                    # The table holds other versions than planned on: read them, plan again.
                    retry.update({o.order_id: o for o in group})
                    for o in group:
                        known.pop(o.order_id, None)
                    continue
                total += len(group)
                known.update((o.order_id, o) for o in group)
            if not retry:
                break
            if read:
                log.warning("orders changed under us; retrying", extra={"orders": len(retry)})
                time.sleep(min(0.05 * 2**attempt, 1.0))
            pending, read = retry, True
        else:
            raise RuntimeError("real-time store: conflicting writers did not settle")
        return total

    # -- reading ---------------------------------------------------------------------------

    def summary(self, day: dt.date) -> dict:
        text = day.isoformat()
        rows = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"day#{text}"}},
            "ConsistentRead": True,
        }
        while True:
            resp = self.client.query(**kwargs)
            for item in resp["Items"]:
                channel, status = item["sk"]["S"].split("#", 1)
                rows.append(
                    (
                        channel,
                        status,
                        int(Decimal(item["orders"]["N"])),
                        int(Decimal(item["units"]["N"])),
                        int(Decimal(item["liters_milli"]["N"])),
                        int(Decimal(item["revenue_cents"]["N"])),
                    )
                )
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        newest = self.client.query(
            TableName=self.table,
            IndexName="by_day",
            KeyConditionExpression="#d = :d",
            ExpressionAttributeNames={"#d": "day"},
            ExpressionAttributeValues={":d": {"S": text}},
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        meta = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": "meta"}, "sk": {"S": "as_of"}}
        ).get("Item")
        return summary(
            day,
            rows,
            int(meta["as_of_us"]["N"]) if meta else None,
            int(newest[0]["received_us"]["N"]) if newest else None,
        )


TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "day", "AttributeType": "S"},
        {"AttributeName": "received_us", "AttributeType": "N"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by_day",
            "KeySchema": [
                {"AttributeName": "day", "KeyType": "HASH"},
                {"AttributeName": "received_us", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
