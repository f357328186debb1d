"""The DynamoDB adapter: the real-time store in AWS (the only module that calls DynamoDB).

One table, keys ``pk`` and ``sk`` (strings):

* ``order#<order_id>`` / ``v``: the newest version of an order (``version``, ``day``,
  ``channel``, ``status``, ``units``, ``liters_milli``, ``revenue_cents``, ``received_us``);
* ``day#<pa_date>`` / ``figures``: the aggregates of a day, one number attribute per
  ``<channel>|<status>|<measure>`` (measures ``orders``, ``units``, ``liters_milli``,
  ``revenue_cents``), changed with ``ADD`` only, and ``applied#<shard>``: the last plan of
  that shard this day has taken (tables written before this layout hold one item per
  ``<channel>#<status>`` instead; reading sums both);
* ``shard#<shard>`` / ``plan``: the shard's plan log: ``n``, the number of its latest plan,
  and ``plan``, that plan (zlib JSON: the aggregate changes and the new order versions);
* ``meta`` / ``as_of``: when the figures last changed.

Global secondary index ``by_day`` (``day``, ``received_us``, keys only) answers
``last_event_at``: the newest receipt among the orders a date holds now.

Exactly once, without a transaction per order (DynamoDB's multi-item conditional write is
``TransactWriteItems``: 100 items, twice the write cost; a batch of 500 orders would be five
of them). One writer per shard at a time (the event source mapping's parallelization factor
is 1) and one shard per order (the partition key is the order), so a shard's plans are the
only changes its orders see (across a reshard this assumes a parent's and a child's batches
never change one order at the same moment). A chunk of a batch is applied in three steps:

1. **Log the plan**: the changed orders (newer than the stored version; a redelivered record
   is not) and the aggregate changes they make, written to ``shard#<shard>`` with
   ``n = n + 1`` on the condition that ``n`` is still the one this instance planned on. That
   condition fences the shard: another instance that logged a plan in between makes ours
   fail, and we read the table and plan again.
2. **Apply the aggregates**: one ``UpdateItem`` per day (atomic on its one item), its
   ``ADD`` actions guarded by ``applied#<shard> < n``: a plan applied twice counts once.
3. **Write the orders**: ``BatchWriteItem`` of the new versions (no conditions needed: the
   plan decided them and redoing it writes the same items), then ``as_of``.

A crash anywhere after step 1 leaves a logged plan that may be half applied. Whoever comes
next for the shard (this instance after a failure, or any other: Lambda retries the batch
from the first record not applied) first reads the log and redoes its latest plan (steps 2
and 3 are idempotent), then plans from versions read from the table: redelivered records
are not newer than them and change nothing. So every figure counts each order once, in its
latest version, whatever was redelivered or where it stopped.

Planning starts from what this instance knows of the shard's orders (``_shards``: versions
written or read here) while the plan log still holds the ``n`` this instance wrote; a new
order costs a read (``BatchGetItem``, nothing found). After a failure, or when the log moved
on, it reads again: a guess can cost a failed step 1, never a wrong figure.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from realtime.figures import AggKey, deltas, summary
from realtime.model import Order, sequence_key

log = logging.getLogger("realtime.dynamo")
RETRIES = 5
BATCH_WRITE = 25  # BatchWriteItem's limit
BATCH_GET = 100  # BatchGetItem's limit
PLAN_ORDERS = 1000  # orders per plan: its log item stays far below DynamoDB's 400 KB
MEASURES = ("orders", "units", "liters_milli", "revenue_cents")
FIGURES_SK = "figures"
KNOWN_LIMIT = 500_000  # versions remembered per instance before the memory is dropped

# How long one DynamoDB call may take, retries included, so that no write is still in flight
# when Lambda stops a timed-out invocation: a put landing after the next instance has moved
# the order on would roll its stored version back (the day items are safe: their ADDs are
# fenced by ``applied#<shard>``). DynamoDB answers in milliseconds; these bounds only cut
# off a call that hangs.
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 2
MAX_ATTEMPTS = 3  # botocore "standard" mode: 2 retries, jittered backoff of at most 1 s, 2 s


def client_config() -> Any:
    """The botocore config of the store's client: bounded calls (see :func:`longest_call_s`)."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )


def longest_call_s(config: Any) -> float:
    """The most one call under ``config`` can take: every attempt timing out on connect and on
    read, plus botocore's standard backoff before each retry (``rand * 2 ** (attempt - 1)``)."""
    attempts = config.retries["total_max_attempts"]
    backoff = sum(2 ** (k - 1) for k in range(1, attempts))
    return attempts * (config.connect_timeout + config.read_timeout) + backoff


# No write starts with less than this left of the invocation: the longest call (12 s) and
# 3 s for the handler to answer. The figures function's timeout (60 s) leaves a batch 45 s.
WRITE_MARGIN_S = longest_call_s(client_config()) + 3


class DeadlineNear(RuntimeError):
    """Too little of the invocation is left for one more write to finish before Lambda stops
    it; the batch is reported failed from its chunk and the retry goes on from there."""


def _order_key(order_id: int) -> dict[str, Any]:
    return {"pk": {"S": f"order#{order_id}"}, "sk": {"S": "v"}}


def _shard_key(shard: str) -> dict[str, Any]:
    return {"pk": {"S": f"shard#{shard}"}, "sk": {"S": "plan"}}


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


def shard_of(order: Order) -> str:
    """The shard of the record a version came from (``realtime.model.version_of``)."""
    return order.version.split(":", 1)[1].rsplit(":", 1)[0]


@dataclass
class Plan:
    """What one chunk changes: the aggregate deltas and the orders' new versions."""

    n: int
    delta: dict[AggKey, list[int]]
    orders: list[Order]

    def encode(self) -> bytes:
        body = {
            "delta": [[*k, *d] for k, d in self.delta.items()],
            "orders": [
                [
                    o.order_id,
                    o.pa_date,
                    o.channel,
                    o.status,
                    o.units,
                    o.liters_milli,
                    o.revenue_cents,
                    o.received_us,
                    o.version,
                ]
                for o in self.orders
            ],
        }
        return zlib.compress(json.dumps(body, separators=(",", ":")).encode())

    @classmethod
    def decode(cls, n: int, blob: bytes) -> Plan:
        body = json.loads(zlib.decompress(blob))
        return cls(
            n,
            {(d[0], d[1], d[2]): d[3:] for d in body["delta"]},
            [Order(*o) for o in body["orders"]],
        )


@dataclass
class _Shard:
    """What this instance knows of a shard: the plan log's ``n`` as last written or read
    here, and the versions of the shard's orders written or read since."""

    n: int
    known: dict[int, Order] = field(default_factory=dict)


class DynamoStore:
    """``time_left``: seconds left of the current invocation (the Lambda handler sets it from
    its context); a write is started only with :data:`WRITE_MARGIN_S` left, else
    :class:`DeadlineNear`. ``None`` (a long-running consumer): no deadline."""

    def __init__(
        self,
        table: str,
        client: Any | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb", config=client_config())
        self.table, self.client, self.time_left = table, client, time_left
        self._shards: dict[str, _Shard] = {}  # trusted only while the log's n is ours

    def _before_write(self) -> None:
        if self.time_left is not None and (left := self.time_left()) < WRITE_MARGIN_S:
            raise DeadlineNear(
                f"{left:.1f} s left of the invocation, a write may take {WRITE_MARGIN_S} s"
            )

    def close(self) -> None:
        return None

    # -- writing ---------------------------------------------------------------------------

    def apply(self, incoming: dict[int, Order]) -> int:
        """Apply the newest versions of a batch exactly once; returns how many orders changed."""
        by_shard: dict[str, dict[int, Order]] = {}
        for oid, o in incoming.items():
            by_shard.setdefault(shard_of(o), {})[oid] = o
        if sum(len(s.known) for s in self._shards.values()) > KNOWN_LIMIT:
            for s in self._shards.values():
                s.known.clear()
        return sum(self._apply_shard(shard, orders) for shard, orders in by_shard.items())

    def _apply_shard(self, shard: str, incoming: dict[int, Order]) -> int:
        # Plans of at most PLAN_ORDERS orders, in stream order.
        ordered = sorted(incoming.values(), key=lambda o: sequence_key(o.version))
        total = 0
        for i in range(0, len(ordered), PLAN_ORDERS):
            total += self._apply_part(shard, {o.order_id: o for o in ordered[i : i + PLAN_ORDERS]})
        return total

    def _apply_part(self, shard: str, incoming: dict[int, Order]) -> int:
        for attempt in range(RETRIES + 1):
            state = self._shards.get(shard)
            if state is None:
                state = self._shards[shard] = self._recover(shard)
            missing = [oid for oid in incoming if oid not in state.known]
            if missing:
                state.known.update(self._stored(missing))
            stored = {oid: state.known[oid] for oid in incoming if oid in state.known}
            changed, delta = deltas(incoming, stored)
            if not changed:
                return 0
            plan = Plan(state.n + 1, delta, changed)
            # Until the plan is applied, what this instance knows of the shard is not trusted:
            # if anything below raises, the next call reads the log and redoes the plan.
            self._shards.pop(shard, None)
            if not self._log(shard, plan):
                log.warning(
                    "the shard's plan log moved on; planning again from the table",
                    extra={"shard": shard, "attempt": attempt + 1},
                )
                continue
            self._execute(shard, plan)
            state.n = plan.n
            state.known.update((o.order_id, o) for o in changed)
            self._shards[shard] = state
            return len(changed)
        raise RuntimeError("real-time store: conflicting writers did not settle")

    def _recover(self, shard: str) -> _Shard:
        """Read the shard's plan log, redo its latest plan (it may be half applied), and
        start from versions read from the table."""
        item = self.client.get_item(
            TableName=self.table, Key=_shard_key(shard), ConsistentRead=True
        ).get("Item")
        if item is None:
            return _Shard(0)
        n = int(item["n"]["N"])
        self._execute(shard, Plan.decode(n, bytes(item["plan"]["B"])))
        return _Shard(n)

    def _log(self, shard: str, plan: Plan) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": _shard_key(shard),
            "UpdateExpression": "SET #n = :n, #p = :p",
            "ExpressionAttributeNames": {"#n": "n", "#p": "plan"},
            "ExpressionAttributeValues": {":n": {"N": str(plan.n)}, ":p": {"B": plan.encode()}},
        }
        if plan.n == 1:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            kwargs["ConditionExpression"] = "#n = :prev"
            kwargs["ExpressionAttributeValues"][":prev"] = {"N": str(plan.n - 1)}
        self._before_write()
        try:
            self.client.update_item(**kwargs)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _execute(self, shard: str, plan: Plan) -> None:
        """Steps 2 and 3 of a logged plan; idempotent."""
        by_day: dict[str, list[tuple[str, list[int]]]] = {}
        for (day, channel, status), d in plan.delta.items():
            by_day.setdefault(day, []).append((f"{channel}|{status}", d))
        for day, buckets in sorted(by_day.items()):
            self._add_day(shard, plan.n, day, buckets)
        self._write_orders(plan.orders)
        self._before_write()
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": "meta"},
                "sk": {"S": "as_of"},
                "as_of_us": {"N": str(time.time_ns() // 1000)},
            },
        )

    def _add_day(self, shard: str, n: int, day: str, buckets: list[tuple[str, list[int]]]) -> bool:
        """Add a plan's changes to one day unless the day has taken them; True when added."""
        names = {"#applied": f"applied#{shard}"}
        values: dict[str, Any] = {":n": {"N": str(n)}}
        adds = []
        for bucket, d in buckets:
            for measure, value in zip(MEASURES, d, strict=True):
                i = len(adds)
                names[f"#a{i}"] = f"{bucket}|{measure}"
                values[f":a{i}"] = {"N": str(value)}
                adds.append(f"#a{i} :a{i}")
        self._before_write()
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"day#{day}"}, "sk": {"S": FIGURES_SK}},
                UpdateExpression=f"ADD {', '.join(adds)} SET #applied = :n",
                ConditionExpression="attribute_not_exists(#applied) OR #applied < :n",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False  # a redo: this day has taken this plan already
        return True

    def _write_orders(self, orders: list[Order]) -> None:
        for i in range(0, len(orders), BATCH_WRITE):
            request = {
                self.table: [
                    {"PutRequest": {"Item": _order_item(o)}} for o in orders[i : i + BATCH_WRITE]
                ]
            }
            for attempt in range(RETRIES + 1):
                self._before_write()
                request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems")
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("DynamoDB left writes unprocessed after retries")

    def _stored(self, ids: list[int]) -> dict[int, Order]:
        out: dict[int, Order] = {}
        for i in range(0, len(ids), BATCH_GET):
            keys = [_order_key(x) for x in ids[i : i + BATCH_GET]]
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

    # -- reading ---------------------------------------------------------------------------

    def summary(self, day: dt.date) -> dict:
        text = day.isoformat()
        sums: dict[tuple[str, str], list[int]] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"day#{text}"}},
            "ConsistentRead": True,
        }
        while True:
            resp = self.client.query(**kwargs)
            for item in resp["Items"]:
                for bucket, figures in _buckets(item):
                    acc = sums.setdefault(bucket, [0, 0, 0, 0])
                    for i, value in enumerate(figures):
                        acc[i] += value
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        rows = [(channel, status, *acc) for (channel, status), acc in sums.items()]
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


def _buckets(item: dict[str, Any]) -> list[tuple[tuple[str, str], list[int]]]:
    """The (channel, status) figures a day's item holds, in either layout."""
    if item["sk"]["S"] != FIGURES_SK:  # one bucket per item (before the plan log)
        channel, status = item["sk"]["S"].split("#", 1)
        return [((channel, status), [int(Decimal(item[m]["N"])) for m in MEASURES])]
    out: dict[tuple[str, str], list[int]] = {}
    for name, value in item.items():
        parts = name.split("|")
        if len(parts) == 3 and parts[2] in MEASURES:
            figures = out.setdefault((parts[0], parts[1]), [0, 0, 0, 0])
            figures[MEASURES.index(parts[2])] = int(Decimal(value["N"]))
    return list(out.items())


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
