"""Decoding a raw query string into (name, value) pairs (shared by both front ends)."""

from __future__ import annotations

from urllib.parse import parse_qsl

MAX_QUERY_FIELDS = 32
MAX_QUERY_BYTES = 4096


def parse_query(raw: bytes) -> tuple[tuple[str, str], ...] | None:
    """Decoded (name, value) pairs in order, or None when the query string is malformed."""
    if not raw:
        return ()
    if len(raw) > MAX_QUERY_BYTES:
        return None
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_QUERY_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return tuple(pairs)
