"""Order events judged by the row rules of CONTRACT.md section 1 (section 6's event format).

Pure functions, no I/O: stream records in, valid orders and rejected rows out. The rules are
the ingestion's own (:func:`ingestion.rules.check`); this module only turns each JSON event
into the text of its values, the way a CSV row is text:

* the event must be UTF-8 and one JSON object; keys are trimmed and lower-cased;
* a JSON string or number is judged by its text as written (``2.500`` has three decimals,
  ``1e3`` is not plain digits), ``null`` or ``""`` is missing, an absent key is missing;
* a boolean, array or object value, or a key given twice, makes that column invalid
  (``ingestion.rules.check``'s ``forced_invalid``), in the usual precedence;
* without ``order_date`` the event's ``pa_date`` is the UTC date on which the stream received it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion import rules
from realtime.model import Order, Record, newer, version_of

_EPOCH = dt.date(1970, 1, 1)


_KNOWN = frozenset(rules.CHECK_ORDER)


class _Number(str):
    """A JSON number kept as the text it was written with."""


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


class _Object(list):
    """A JSON object as its (key, value) pairs, every key kept (duplicates are judged)."""


def _pairs(pairs: list[tuple[str, object]]) -> _Object:
    return _Object(pairs)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_float=_Number,
    parse_int=_Number,
    parse_constant=_reject_constant,
)


@dataclass
class Parsed:
    """One event's values as text, or why the event as a whole is invalid."""

    values: dict[str, str] = field(default_factory=dict)
    forced: dict[str, str] = field(default_factory=dict)  # column -> why its value is invalid
    has_date: bool = False
    ignored: list[str] = field(default_factory=list)  # unknown keys, normalised
    fault: str | None = None  # the whole event is invalid (column null)
    unknown_twice: str | None = None


def raw_text(data: bytes) -> str:
    """The event as received, for ``raw_values``: UTF-8 text, invalid bytes as ``\\xNN``."""
    return data.decode("utf-8", "backslashreplace")


def _utf8_safe(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape
        return False
    return True


def _escaped(text: str) -> str:
    """``text`` as text UTF-8 (and so JSON and dbt) can hold: a lone surrogate as ``\\udXXX``."""
    return text.encode("utf-8", "backslashreplace").decode()


def parse(data: bytes) -> Parsed:
    """Read one event's bytes into column texts (never raises)."""
    out = Parsed()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.fault = f"the event is not valid UTF-8 (byte {exc.start})"
        return out
    try:
        obj = _DECODER.decode(text.removeprefix("\ufeff"))
    except (ValueError, RecursionError) as exc:
        out.fault = f"the event is not valid JSON: {str(exc)[:200]}"
        return out
    if not isinstance(obj, _Object):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(obj), "a number")
        kind = "null" if obj is None else kind
        out.fault = f"the event is not a JSON object (it is {kind})"
        return out
    seen: set[str] = set()
    escapes = "\\u" in text  # only a \u escape can make a lone surrogate
    for key, value in obj:
        name = key if key in _KNOWN else key.strip().lower()
        if name in seen:
            if name in _KNOWN:
                out.forced[name] = f"{name} is given twice in the event"
                out.values[name] = out.values.get(name) or "twice"
            elif out.unknown_twice is None:
                out.unknown_twice = name
            continue
        seen.add(name)
        if name not in _KNOWN:
            # kept as text the manifest (JSON) and dbt can read
            out.ignored.append(name if not escapes or _utf8_safe(name) else _escaped(name))
            continue
        if name == rules.ORDER_DATE:
            out.has_date = True
        if value is None:
            out.values[name] = ""
        elif isinstance(value, str):  # _Number is a str too: its text as written
            if not escapes or _utf8_safe(value):
                out.values[name] = value
            else:
                out.forced[name] = f"{name} holds a lone surrogate, not text"
                out.values[name] = _escaped(value)
        else:
            kind = {bool: "a boolean", list: "an array"}.get(type(value), "an object")
            out.forced[name] = f"{name} is {kind}; expected a string or a number"
            out.values[name] = "x"  # not empty: invalid, not missing
    return out


@dataclass
class Rejected:
    index: int  # position in the batch
    reason: str
    column: str | None
    detail: str
    raw: str  # the event as received (raw_values)


@dataclass
class Judged:
    """A batch after the rules.

    ``valid`` holds the positions of the valid events; ``values`` the normalised columns of
    :data:`ingestion.rules.RAW_SCHEMA` up to ``total_liters`` plus ``pa_date``, for those events
    only, in batch order. ``ignored`` lists unknown keys in first-seen order.
    """

    valid: np.ndarray
    values: dict[str, pa.Array]
    rejected: list[Rejected]
    ignored: list[str]
    count: int  # events in the batch

    @classmethod
    def concat(cls, parts: list[Judged]) -> Judged:
        """Consecutive batches as one (positions continue from one batch to the next)."""
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [p.count for p in parts[:-1]])
        ignored: list[str] = []
        for p in parts:
            ignored.extend(name for name in p.ignored if name not in ignored)
        return cls(
            valid=np.concatenate([p.valid + off for p, off in zip(parts, offsets, strict=True)]),
            values={
                name: pa.concat_arrays([p.values[name] for p in parts]) for name in parts[0].values
            },
            rejected=[
                Rejected(r.index + int(off), r.reason, r.column, r.detail, r.raw)
                for p, off in zip(parts, offsets, strict=True)
                for r in p.rejected
            ],
            ignored=ignored,
            count=sum(p.count for p in parts),
        )


def judge(records: list[Record]) -> Judged:
    """Apply the section 1 row rules to a batch of events."""
    n = len(records)
    parsed = [parse(r.data) for r in records]
    raw: dict[str, list[str]] = {name: [""] * n for name in rules.CHECK_ORDER}
    forced: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    for i, (rec, p) in enumerate(zip(records, parsed, strict=True)):
        for name, value in p.values.items():
            raw[name][i] = value
        if not p.has_date:  # pa_date = the UTC date of receipt
            day = _EPOCH + dt.timedelta(microseconds=rec.arrival_us)
            raw[rules.ORDER_DATE][i] = day.isoformat()
        for name in p.forced:
            forced.setdefault(name, np.zeros(n, dtype=np.bool_))[i] = True
        for name in p.ignored:
            if name not in ignored:
                ignored.append(name)
    # The event-level faults: every column invalid at once; the explicit check below names them.
    checked = rules.check(
        {name: pa.array(col, pa.string()) for name, col in raw.items()},
        _EPOCH,
        forced or None,
    )
    reason = checked.reason
    rejected: list[Rejected] = []
    for i, p in enumerate(parsed):
        if p.fault is not None:
            rejected.append(Rejected(i, "invalid", None, p.fault, raw_text(records[i].data)))
            continue
        why = int(reason[i])
        if why != rules.OK:
            col = rules.CHECK_ORDER[int(checked.column[i])]
            detail = (
                p.forced[col]
                if why == rules.INVALID and col in p.forced
                else rules.explain(col, raw[col][i], why)
            )
            rejected.append(Rejected(i, rules.REASONS[why], col, detail, raw_text(records[i].data)))
        elif p.unknown_twice is not None:
            detail = f"key {p.unknown_twice!r} is given twice"
            rejected.append(Rejected(i, "invalid", None, detail, raw_text(records[i].data)))
    bad = np.zeros(n, dtype=np.bool_)
    for r in rejected:
        bad[r.index] = True
    valid = np.flatnonzero(~bad)
    keep = pa.array(valid, pa.int64())
    values = {name: arr.take(keep) for name, arr in checked.values.items()}
    for name in ("point_of_sale_channel", "status", "client_name", "product_description"):
        if pa.types.is_dictionary(values[name].type):
            values[name] = values[name].cast(pa.string())
    has_date = np.array([parsed[i].has_date for i in valid], dtype=np.bool_)
    if not has_date.all():  # the date column was the receipt date: not the event's own
        values["order_date"] = pc.if_else(
            pa.array(has_date, pa.bool_()), values["order_date"], pa.nulls(len(valid), pa.date32())
        )
    return Judged(valid=valid, values=values, rejected=rejected, ignored=ignored, count=n)


def order_key(data: bytes) -> str:
    """The partition key of an event: its order_id as an integer's text when it reads as one
    (`` 7 ``, ``7`` and ``007`` are one order and go to one shard), else the event itself.

    Called for every event a producer sends, so it reads the event with the plain (C) JSON
    decoder; a key given twice or spelled with spaces or capitals takes the slow path."""
    value: object = None
    try:
        obj = json.loads(data)
        if isinstance(obj, dict):
            value = obj["order_id"] if "order_id" in obj else parse(data).values.get("order_id")
    except (ValueError, UnicodeDecodeError, RecursionError):
        value = None
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return str(text)
    if isinstance(text, str) and text.isascii() and text.isdigit() and text.lstrip("0"):
        return text.lstrip("0")
    return "raw:" + raw_text(data)[:200]


def latest_orders(records: list[Record], judged: Judged) -> dict[int, Order]:
    """The newest valid version of each order in the batch (by the stream's arrival order)."""
    v = judged.values
    cols = {
        name: v[name].to_pylist()
        for name in ("order_id", "point_of_sale_channel", "status", "product_ccf")
    }
    cols["pa_date"] = [str(d) for d in v["pa_date"].cast(pa.string()).to_pylist()]
    cols["total_amount"] = _scaled(v["total_amount"], 2)
    cols["total_liters"] = _scaled(v["total_liters"], 3)
    out: dict[int, Order] = {}
    for k, i in enumerate(judged.valid.tolist()):
        rec = records[i]
        order = Order(
            order_id=cols["order_id"][k],
            pa_date=cols["pa_date"][k],
            channel=cols["point_of_sale_channel"][k],
            status=cols["status"][k],
            units=cols["product_ccf"][k],
            liters_milli=cols["total_liters"][k],
            revenue_cents=cols["total_amount"][k],
            received_us=rec.arrival_us,
            version=version_of(rec),
        )
        held = out.get(order.order_id)
        if held is None or newer(order.version, held.version):
            out[order.order_id] = order
    return out


def _scaled(values: pa.Array, scale: int) -> list[int]:
    """The unscaled integers of a decimal array (cents, millilitres), exactly."""
    assert values.type.scale == scale and values.null_count == 0
    words = np.frombuffer(values.buffers()[1], dtype=np.int64)
    words = words[2 * values.offset : 2 * (values.offset + len(values))].reshape(-1, 2)
    if len(words) and ((words[:, 1] != 0).any() or (words[:, 0] < 0).any()):
        return [int(d.scaleb(scale)) for d in values.to_pylist()]  # beyond int64: exact decimals
    return words[:, 0].tolist()
