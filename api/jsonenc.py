"""JSON encoding with exact decimals.

The standard ``json`` module cannot write a ``Decimal`` as a number. Money and litres must be
JSON numbers rounded to 2 and 3 decimals and must not pass through binary floats, so the
service wraps them in :class:`Num` (already-formatted number text) and this encoder writes that
text as is.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Context, Decimal
from json.encoder import encode_basestring_ascii  # the C implementation when available

_CTX = Context(prec=80, rounding=ROUND_HALF_UP)
_Q = {2: Decimal("0.01"), 3: Decimal("0.001")}


class Num:
    """A number already rendered as JSON text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Num({self.text})"


def decimal_num(value: Decimal | int | str | None, places: int) -> Num | None:
    """``value`` rounded half-up to ``places`` decimals, as exact JSON number text."""
    if value is None:
        return None
    d = value if isinstance(value, Decimal) else Decimal(value)
    return Num(format(d.quantize(_Q[places], context=_CTX), "f"))


def num_text(value: Decimal | str | int | None, places: int) -> str:
    """JSON text of a money/litres value rounded to ``places`` decimals.

    ``value`` may be a Decimal, or the exact text of a decimal (Arrow's cast of a decimal
    column to string): text that already has exactly ``places`` decimals is used as is.
    """
    if value is None:
        return "null"
    if type(value) is str:
        dot = value.find(".")
        if dot > 0 and len(value) - dot - 1 == places and "e" not in value.lower():
            return value
        value = Decimal(value)
    elif not isinstance(value, Decimal):
        value = Decimal(value)
    return format(value.quantize(_Q[places], context=_CTX), "f")


def text(value: str | None) -> str:
    """JSON text of a string (or null)."""
    return "null" if value is None else encode_basestring_ascii(value)


def integer(value: int | None) -> str:
    return "null" if value is None else int.__repr__(int(value))


def date_text(value: dt.date | str | None) -> str:
    if value is None:
        return "null"
    return '"' + (value if isinstance(value, str) else value.isoformat()) + '"'


def iso_utc(ts: dt.datetime | None) -> str | None:
    """ISO-8601 UTC ending in ``Z`` (naive values are taken as UTC)."""
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}"
    return text + "Z"


def _enc(obj: object, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(encode_basestring_ascii(obj))
    elif isinstance(obj, Num):
        out.append(obj.text)
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key, value in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(encode_basestring_ascii(key))
            out.append(":")
            _enc(value, out)
        out.append("}")
    elif isinstance(obj, list | tuple):
        if obj and all(type(v) is Num for v in obj):  # pre-rendered items: one join
            out.append("[" + ",".join([v.text for v in obj]) + "]")
            return
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            _enc(value, out)
        out.append("]")
    elif isinstance(obj, Decimal):
        out.append(format(obj, "f"))
    elif isinstance(obj, dt.datetime):
        out.append('"' + (iso_utc(obj) or "") + '"')
    elif isinstance(obj, dt.date):
        out.append('"' + obj.isoformat() + '"')
    elif isinstance(obj, float):
        out.append(float.__repr__(obj))
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj: object) -> bytes:
    out: list[str] = []
    _enc(obj, out)
    return "".join(out).encode("ascii")
