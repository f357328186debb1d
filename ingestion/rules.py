"""The row rules of CONTRACT.md section 1, vectorised over Arrow string columns.

Pure functions: Arrow arrays in, Arrow arrays and numpy masks out, no I/O. The scalar
:func:`explain` gives the readable ``detail`` of a rejected value; it is only called for
rejected rows, so it may be plain Python.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REQUIRED: tuple[str, ...] = (
    "client_id",
    "client_name",
    "order_id",
    "product_id",
    "product_description",
    "product_price",
    "product_ccf",
    "product_volume",
    "point_of_sale_channel",
    "status",
)
ORDER_DATE = "order_date"
# Fault precedence: the first faulty column in this order names the rejection.
CHECK_ORDER: tuple[str, ...] = (*REQUIRED, ORDER_DATE)

CHANNELS = {"retail": "Retail", "online": "Online", "b2b": "B2B"}
STATUSES = ("created", "delivered", "broken")

INT64_MAX = "9223372036854775807"
INT32_MAX = "2147483647"

# Reasons, as stored in the rejects and counted in the manifest.
OK, MISSING, INVALID, DUPLICATE = 0, 1, 2, 3
REASONS = {MISSING: "missing", INVALID: "invalid", DUPLICATE: "duplicate"}

# Arrow types of the landed columns (docs/architecture.md section 1).
PRICE_TYPE = pa.decimal128(12, 2)
VOLUME_TYPE = pa.decimal128(10, 3)
AMOUNT_TYPE = pa.decimal128(22, 2)
LITERS_TYPE = pa.decimal128(20, 3)

RAW_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("client_id", pa.int64()),
        ("client_name", pa.string()),
        ("product_id", pa.int64()),
        ("product_description", pa.string()),
        ("product_price", PRICE_TYPE),
        ("product_ccf", pa.int32()),
        ("product_volume", VOLUME_TYPE),
        ("point_of_sale_channel", pa.string()),
        ("status", pa.string()),
        ("order_date", pa.date32()),
        ("total_amount", AMOUNT_TYPE),
        ("total_liters", LITERS_TYPE),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("ingest_id", pa.string()),
        ("landed_at", pa.timestamp("us", tz="UTC")),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("ingest_id", pa.string()),
        ("raw_values", pa.string()),
        ("reason", pa.string()),
        ("column", pa.string()),
        ("detail", pa.string()),
        ("landed_at", pa.timestamp("us", tz="UTC")),
    ]
)

_INT_RE = r"^[0-9]+$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _decimal_re(int_digits: int, dec_digits: int) -> str:
    # Leading zeros are allowed and do not count towards the integer digits.
    return rf"^0*[0-9]{{1,{int_digits}}}(\.[0-9]{{1,{dec_digits}}})?$"


_PRICE_RE = _decimal_re(10, 2)
_VOLUME_RE = _decimal_re(7, 3)


def _np_mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array (nulls count as False) as a numpy bool array."""
    # Through uint8: a boolean Arrow array's to_numpy() would import pandas.
    as_int = pc.cast(pc.fill_null(arr, False), pa.uint8())
    return as_int.to_numpy(zero_copy_only=False).view(np.bool_)


def _fits(stripped: pa.Array, max_text: str) -> pa.Array:
    """Digits without leading zeros (possibly '') that are > 0 and <= max_text."""
    n = pc.utf8_length(stripped)
    width = len(max_text)
    return pc.and_(
        pc.greater(n, 0),
        pc.or_(pc.less(n, width), pc.and_(pc.equal(n, width), pc.less_equal(stripped, max_text))),
    )


@dataclass
class Checked:
    """One batch of rows after the rules: per-row fault and the normalised columns.

    ``reason`` is OK/MISSING/INVALID per row, ``column`` the index into :data:`CHECK_ORDER` of
    the column that names the fault (-1 when OK). ``values`` holds every normalised column of
    :data:`RAW_SCHEMA` up to ``total_liters`` (null where the row is not OK) and ``pa_date``.
    """

    reason: np.ndarray
    column: np.ndarray
    values: dict[str, pa.Array]


def check(raw: dict[str, pa.Array], fallback_date: dt.date) -> Checked:
    """Apply the row rules to a batch of raw (untrimmed) string columns.

    ``raw`` maps each required column, and ``order_date`` when the file has it, to a string
    array; all arrays have the same length.
    """
    n = len(raw["order_id"])
    trimmed = {name: pc.utf8_trim_whitespace(arr) for name, arr in raw.items()}
    missing_col = np.full(n, -1, dtype=np.int16)
    invalid_col = np.full(n, -1, dtype=np.int16)
    values: dict[str, pa.Array] = {}

    def note(idx: int, missing: np.ndarray, invalid: np.ndarray) -> None:
        missing_col[(missing_col < 0) & missing] = idx
        invalid_col[(invalid_col < 0) & invalid] = idx

    for idx, name in enumerate(CHECK_ORDER):
        if name not in trimmed:
            continue
        t = trimmed[name]
        empty = _np_mask(pc.equal(pc.binary_length(t), 0))
        if name in ("order_id", "client_id", "product_id", "product_ccf"):
            digits = pc.match_substring_regex(t, _INT_RE)
            stripped = pc.replace_substring_regex(t, "^0+", "")
            ok = pc.and_(digits, _fits(stripped, INT32_MAX if name == "product_ccf" else INT64_MAX))
            okm = _np_mask(ok)
            typ = pa.int32() if name == "product_ccf" else pa.int64()
            values[name] = pc.cast(pc.if_else(ok, stripped, pa.scalar(None, pa.string())), typ)
        elif name in ("client_name", "product_description"):
            okm = ~empty
            values[name] = t
        elif name in ("product_price", "product_volume"):
            okm_arr = pc.match_substring_regex(
                t, _PRICE_RE if name == "product_price" else _VOLUME_RE
            )
            if name == "product_volume":  # > 0: some digit is not a zero
                okm_arr = pc.and_(okm_arr, pc.match_substring_regex(t, "[1-9]"))
            okm = _np_mask(okm_arr)
            typ = PRICE_TYPE if name == "product_price" else VOLUME_TYPE
            # Strip leading zeros (keep one before the point) so the cast sees <= precision.
            canon = pc.replace_substring_regex(t, r"^0+([0-9])", r"\1")
            values[name] = pc.cast(pc.if_else(okm_arr, canon, pa.scalar(None, pa.string())), typ)
        elif name == "point_of_sale_channel":
            low = pc.utf8_lower(t)
            pos = pc.index_in(low, value_set=pa.array(list(CHANNELS)))
            okm = _np_mask(pc.is_valid(pos))
            values[name] = pc.take(pa.array(list(CHANNELS.values())), pos)
        elif name == "status":
            low = pc.utf8_lower(t)
            pos = pc.index_in(low, value_set=pa.array(STATUSES))
            okm = _np_mask(pc.is_valid(pos))
            values[name] = pc.if_else(pc.is_valid(pos), low, pa.scalar(None, pa.string()))
        else:  # order_date: a real calendar date, checked by a round trip
            shaped = pc.match_substring_regex(t, _DATE_RE)
            cand = pc.if_else(shaped, t, pa.scalar(None, pa.string()))
            ts = pc.strptime(cand, format="%Y-%m-%d", unit="s", error_is_null=True)
            dates = pc.cast(ts, pa.date32())
            back = pc.cast(dates, pa.string())  # ISO YYYY-MM-DD (strftime is 6x slower)
            ok = pc.and_(pc.is_valid(dates), pc.equal(back, cand))
            okm = _np_mask(ok)
            values[name] = pc.if_else(ok, dates, pa.scalar(None, pa.date32()))
        note(idx, empty, ~empty & ~okm)

    reason = np.where(missing_col >= 0, MISSING, np.where(invalid_col >= 0, INVALID, OK)).astype(
        np.int8
    )
    column = np.where(missing_col >= 0, missing_col, invalid_col).astype(np.int16)

    if "order_date" not in values:
        values["order_date"] = pa.nulls(n, pa.date32())
        values["pa_date"] = pa.array(np.full(n, fallback_date.toordinal() - 719163, np.int32)).cast(
            pa.date32()
        )
    else:
        values["pa_date"] = values["order_date"]
    ccf = pc.cast(values["product_ccf"], pa.decimal128(10, 0))
    values["total_amount"] = pc.cast(pc.multiply(values["product_price"], ccf), AMOUNT_TYPE)
    values["total_liters"] = pc.cast(pc.multiply(values["product_volume"], ccf), LITERS_TYPE)
    return Checked(reason=reason, column=column, values=values)


# --- readable details for rejected values (scalar, only for rejected rows) ---------------------

_INT_PY = re.compile(r"[0-9]+")


def _int_detail(name: str, value: str, max_text: str, what: str) -> str:
    if not _INT_PY.fullmatch(value):
        if value[:1] in "+-":
            return f"{name} {value!r} has a sign; expected plain digits ({what})"
        return f"{name} {value!r} is not a whole number written with digits 0-9 ({what})"
    stripped = value.lstrip("0")
    if not stripped:
        return f"{name} {value!r} is zero; expected {what}"
    return f"{name} {value!r} is larger than {max_text}; expected {what}"


def _decimal_detail(name: str, value: str, ints: int, decs: int, positive: bool) -> str:
    sign = "> 0" if positive else ">= 0"
    what = f"a decimal {sign} with at most {ints} integer and {decs} decimal digits"
    m = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))?", value)
    if not m:
        if value[:1] in "+-":
            return f"{name} {value!r} has a sign; expected {what}"
        return f"{name} {value!r} is not a plain decimal number; expected {what}"
    int_part, dec_part = m.group(1).lstrip("0"), m.group(2) or ""
    if len(dec_part) > decs:
        return f"{name} {value!r} has {len(dec_part)} decimal digits; expected {what}"
    if len(int_part) > ints:
        return f"{name} {value!r} has {len(int_part)} integer digits; expected {what}"
    return f"{name} {value!r} is zero; expected {what}"


def explain(name: str, raw_value: str, reason: int) -> str:
    """The readable detail of why ``raw_value`` (as read) of column ``name`` was rejected."""
    value = raw_value.strip()
    if reason == MISSING:
        return f"{name} is empty"
    if name in ("order_id", "client_id", "product_id"):
        return _int_detail(name, value, INT64_MAX, "an integer > 0 that fits int64")
    if name == "product_ccf":
        return _int_detail(name, value, INT32_MAX, "an integer > 0 that fits int32")
    if name == "product_price":
        return _decimal_detail(name, value, 10, 2, positive=False)
    if name == "product_volume":
        return _decimal_detail(name, value, 7, 3, positive=True)
    if name == "point_of_sale_channel":
        return f"{name} {value!r} is not one of retail, online, b2b"
    if name == "status":
        return f"{name} {value!r} is not one of created, delivered, broken"
    if name == "order_date":
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            return f"{name} {value!r} is not written YYYY-MM-DD"
        return f"{name} {value!r} is not a real calendar date"
    return f"{name} {value!r} is not valid"
