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
    :data:`RAW_SCHEMA` up to ``total_liters``, and ``pa_date``; their values are meaningful only
    on OK rows (elsewhere they hold placeholders, not nulls: building nulls is slow and the
    landing keeps only OK rows).
    """

    reason: np.ndarray
    column: np.ndarray
    values: dict[str, pa.Array]


_STR = pa.string()
_CHANNEL_NAMES = pa.array(list(CHANNELS.values()))
_STATUS_NAMES = pa.array(STATUSES)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _fill(ok: pa.Array, values: pa.Array, placeholder: str) -> pa.Array:
    """``values`` where ``ok``, else a placeholder that casts cleanly."""
    return pc.if_else(ok, values, pa.scalar(placeholder, _STR))


def _ids(t: pa.Array, name: str) -> tuple[pa.Array, pa.Array]:
    """(ok, value) of trimmed integer texts: plain ASCII digits (``ascii_is_decimal`` is false
    for '' and any other byte), then the range, compared as text once leading zeros are gone."""
    stripped = pc.ascii_ltrim(t, characters="0")
    limit = INT32_MAX if name == "product_ccf" else INT64_MAX
    ok = pc.and_(pc.ascii_is_decimal(t), _fits(stripped, limit))
    typ = pa.int32() if name == "product_ccf" else pa.int64()
    return ok, pc.cast(_fill(ok, stripped, "0"), typ)


def _column(name: str, t: pa.Array) -> tuple[pa.Array | None, pa.Array]:
    """(ok or None when only emptiness matters, normalised value) of trimmed texts ``t``."""
    if name in ("order_id", "client_id", "product_id", "product_ccf"):
        return _ids(t, name)
    if name in ("client_name", "product_description"):
        return None, t
    if name in ("product_price", "product_volume"):
        ok = pc.match_substring_regex(t, _PRICE_RE if name == "product_price" else _VOLUME_RE)
        if name == "product_volume":  # > 0: some digit is not a zero
            ok = pc.and_(ok, pc.match_substring_regex(t, "[1-9]"))
        typ = PRICE_TYPE if name == "product_price" else VOLUME_TYPE
        return ok, pc.cast(_fill(ok, t, "0"), typ)
    if name in ("point_of_sale_channel", "status"):
        known = pa.array(list(CHANNELS)) if name == "point_of_sale_channel" else _STATUS_NAMES
        pos = pc.index_in(pc.utf8_lower(t), value_set=known)
        return pc.is_valid(pos), pos
    # order_date: a real calendar date (2024-02-30 is not one)
    shaped = pc.match_substring_regex(t, _DATE_RE)
    cand = _fill(shaped, t, "1970-01-01")
    y, m, d = (
        pc.cast(pc.utf8_slice_codeunits(cand, a, b), pa.int32()).to_numpy(zero_copy_only=False)
        for a, b in ((0, 4), (5, 7), (8, 10))
    )
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_days = _MONTH_DAYS[np.clip(m, 0, 12)] + ((m == 2) & leap)
    real = (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= month_days)
    ok = pa.array(_np_mask(shaped) & real)
    return ok, pc.cast(_fill(ok, cand, "1970-01-01"), pa.date32())


def _unscaled(values: pa.Array) -> np.ndarray:
    """The unscaled integers of a decimal128 array of non-negative values below 2**63."""
    words = np.frombuffer(values.buffers()[1], dtype=np.int64)
    return words[2 * values.offset : 2 * (values.offset + len(values)) : 2]


def _decimal(units: np.ndarray, typ: pa.DataType) -> pa.Array:
    """A decimal128 array of ``typ`` from non-negative unscaled int64 values."""
    words = np.zeros((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    return pa.Array.from_buffers(typ, len(units), [None, pa.py_buffer(words)])


def _total(values: pa.Array, units: np.ndarray, ccf: pa.Array, typ: pa.DataType) -> pa.Array:
    """``values * ccf`` exactly: in int64 when no product can overflow it, else in decimal."""
    ccf_np = ccf.to_numpy().astype(np.int64)
    if len(units) == 0 or int(units.max()) * int(ccf_np.max()) < 2**63:
        return _decimal(units * ccf_np, typ)
    return pc.cast(pc.multiply(values, pc.cast(ccf, pa.decimal128(10, 0))), typ)


def check(
    raw: dict[str, pa.Array],
    fallback_date: dt.date,
    forced_invalid: dict[str, np.ndarray] | None = None,
) -> Checked:
    """Apply the row rules to a batch of raw (untrimmed) string columns.

    ``raw`` maps each required column, and ``order_date`` when the file has it, to a string
    array; all arrays have the same length.

    ``forced_invalid`` (for sources whose values carry more than text, such as JSON events)
    maps a column to a boolean mask of rows whose value is invalid whatever its text: a
    non-empty one then counts as ``invalid`` in the usual precedence.

    Every column but ``order_id`` holds few distinct texts (clients, products, prices, dates,
    enums), so each is dictionary-encoded once and the rules run on its distinct values only;
    per row it is then one lookup. ``order_id`` (unique per row) is checked row by row.
    """
    n = len(raw["order_id"])
    missing_col = np.full(n, -1, dtype=np.int16)
    invalid_col = np.full(n, -1, dtype=np.int16)
    values: dict[str, pa.Array] = {}
    units: dict[str, np.ndarray] = {}

    for idx, name in enumerate(CHECK_ORDER):
        if name not in raw:
            continue
        if name == "order_id":
            t = pc.utf8_trim_whitespace(raw[name])
            empty = _np_mask(pc.equal(pc.binary_length(t), pa.scalar(0, pa.int32())))
            ok, values[name] = _column(name, t)
            okm = ~empty if ok is None else _np_mask(ok)
        else:
            encoded = pc.dictionary_encode(raw[name])
            codes = encoded.indices
            at = codes.to_numpy()
            t = pc.utf8_trim_whitespace(encoded.dictionary)
            empty_d = _np_mask(pc.equal(pc.binary_length(t), pa.scalar(0, pa.int32())))
            ok, value = _column(name, t)
            empty = empty_d[at]
            okm = ~empty if ok is None else _np_mask(ok)[at]
            if name in ("client_name", "product_description"):
                # Texts that differ only by spaces are one dictionary value.
                again = pc.dictionary_encode(value)
                values[name] = pa.DictionaryArray.from_arrays(
                    again.indices.take(codes), again.dictionary
                )
            elif name == "point_of_sale_channel":
                values[name] = pa.DictionaryArray.from_arrays(value.take(codes), _CHANNEL_NAMES)
            elif name == "status":
                values[name] = pa.DictionaryArray.from_arrays(value.take(codes), _STATUS_NAMES)
            else:
                values[name] = value.take(codes)
                if name in ("product_price", "product_volume"):
                    units[name] = _unscaled(value)[at]
        if forced_invalid is not None and name in forced_invalid:
            okm = okm & ~forced_invalid[name]
        missing_col[(missing_col < 0) & empty] = idx
        invalid_col[(invalid_col < 0) & ~empty & ~okm] = idx

    reason = np.where(missing_col >= 0, MISSING, np.where(invalid_col >= 0, INVALID, OK)).astype(
        np.int8
    )
    column = np.where(missing_col >= 0, missing_col, invalid_col).astype(np.int16)

    if "order_date" not in values:
        values["order_date"] = pa.nulls(n, pa.date32())
        epoch_day = fallback_date.toordinal() - dt.date(1970, 1, 1).toordinal()
        values["pa_date"] = pa.array(np.full(n, epoch_day, np.int32)).cast(pa.date32())
    else:
        values["pa_date"] = values["order_date"]
    ccf = values["product_ccf"]
    values["total_amount"] = _total(
        values["product_price"], units["product_price"], ccf, AMOUNT_TYPE
    )
    values["total_liters"] = _total(
        values["product_volume"], units["product_volume"], ccf, LITERS_TYPE
    )
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
