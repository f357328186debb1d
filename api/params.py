"""Validation of path and query values (pure functions; 400 on anything malformed)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from api.errors import bad_request

INT64_MAX = 2**63 - 1
# Used with fullmatch: `$` would also match before a trailing newline ("5968\n").
_DIGITS = re.compile(r"[0-9]{1,25}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL = re.compile(r"-?[0-9]{1,40}(\.[0-9]{1,3})?")


DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def parse_id(name: str, raw: str) -> int:
    """An id: ASCII digits (leading zeros allowed), > 0, fits int64."""
    if not _DIGITS.fullmatch(raw):
        raise bad_request(f"{name}: must be a positive integer")
    value = int(raw)
    if not 0 < value <= INT64_MAX:
        raise bad_request(f"{name}: must be an integer between 1 and {INT64_MAX}")
    return value


def parse_limit(raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit: must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_date(name: str, raw: str) -> dt.date:
    """A real calendar date ``YYYY-MM-DD`` (``2024-02-30`` is refused)."""
    if not _DATE.fullmatch(raw):
        raise bad_request(f"{name}: must be a date YYYY-MM-DD")
    try:
        value = dt.date.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name}: not a real calendar date") from None
    if value.isoformat() != raw:  # round-trip check
        raise bad_request(f"{name}: not a real calendar date")
    return value


def parse_key_decimal(raw: object) -> Decimal:
    """A decimal read back from a (signed, so trusted) cursor key; re-checked anyway."""
    if not isinstance(raw, str) or not _DECIMAL.fullmatch(raw):
        raise ValueError("bad decimal in cursor")
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError("bad decimal in cursor") from None


def parse_key_int(raw: object) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= INT64_MAX:
        raise ValueError("bad integer in cursor")
    return raw
