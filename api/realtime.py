"""``GET /realtime/summary?date=`` (CONTRACT.md section 6): today's stream figures.

Kept apart from the build-backed routes: it reads the real-time store (SQLite under
``$DUFF_LAKE`` locally, DynamoDB when ``DUFF_REALTIME_TABLE`` is set), needs no dbt build and
is never cached, so an event shows as soon as the consumer has applied it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from decimal import Decimal
from typing import Protocol

from api.errors import BackendUnavailable
from api.jsonenc import decimal_num

log = logging.getLogger("duff.api.realtime")

_MONEY = {"type": "number", "description": "Rounded to 2 decimals."}
_LITRES = {"type": "number", "description": "Litres, rounded to 3 decimals."}
_COUNT = {"type": "integer", "minimum": 0}
_TS = {"type": "string", "format": "date-time", "nullable": True}


def _obj(props: dict) -> dict:
    return {
        "type": "object",
        "required": list(props),
        "properties": props,
        "additionalProperties": False,
    }


SCHEMA = _obj(
    {
        "pa_date": {"type": "string", "format": "date"},
        "as_of": {**_TS, "description": "When the figures were last updated (UTC)."},
        "last_event_at": {
            **_TS,
            "description": "Receipt time of the newest event counted for this date.",
        },
        "orders": _COUNT,
        "units": _COUNT,
        "liters": _LITRES,
        "revenue": _MONEY,
        "by_channel": {
            "type": "array",
            "items": _obj(
                {
                    "channel": {"type": "string"},
                    "orders": _COUNT,
                    "units": _COUNT,
                    "liters": _LITRES,
                    "revenue": _MONEY,
                }
            ),
        },
        "by_status": {
            "type": "array",
            "items": _obj(
                {"status": {"type": "string"}, "orders": _COUNT, "units": _COUNT, "revenue": _MONEY}
            ),
        },
    }
)


class Reader(Protocol):
    def summary(self, day: dt.date) -> dict: ...

    def close(self) -> None: ...


def table_name(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The DynamoDB table: ``DUFF_REALTIME_TABLE``, else, in the API Lambda
    ``duff-<env>-api``, the stack's ``duff-<env>-realtime`` (infra/template.yaml names both)."""
    table = env.get("DUFF_REALTIME_TABLE", "").strip()
    function = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
    if not table and function.endswith("-api"):
        table = function.removesuffix("-api") + "-realtime"
    return table or None


def make_reader(lake: str) -> Reader:
    """DynamoDB in AWS (see :func:`table_name`), else the local SQLite store."""
    table = table_name()
    if table:
        from realtime.dynamo_store import DynamoStore

        return DynamoStore(table)
    from realtime.sqlite_store import SummaryReader, store_path

    return SummaryReader(store_path(lake))


_PLACES = {"revenue": 2, "liters": 3}


def _render(value: object) -> object:
    """Money to 2 decimals, litres to 3, as exact JSON numbers."""
    if isinstance(value, list):
        return [_render(v) for v in value]
    if isinstance(value, dict):
        return {
            k: decimal_num(v, _PLACES[k]) if k in _PLACES and isinstance(v, Decimal) else _render(v)
            for k, v in value.items()
        }
    return value


def summary(reader: Reader, params: dict[str, object]) -> object:
    day = params.get("date") or dt.datetime.now(dt.UTC).date()
    try:
        body = reader.summary(day)  # type: ignore[arg-type]
    except Exception as exc:  # the store is unreachable or not yet created: not a client fault
        log.exception("real-time store unavailable")
        raise BackendUnavailable("the real-time store cannot be read; try again later") from exc
    return _render(body)
