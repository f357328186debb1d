"""Opaque keyset cursors.

A cursor is ``base64url(payload) "." base64url(mac)`` where ``payload`` is compact JSON
``{"f": <filter fingerprint>, "k": <last key of the page>}`` and ``mac`` the first 16 bytes
of HMAC-SHA256 over the payload with the server's cursor secret. The fingerprint binds a cursor
to the route and the exact filters it was issued for, so a cursor cannot be forged, edited, or
replayed on another route or with other filters; the key it carries is re-validated by type
before it reaches a query (it is always a bound parameter anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable

from api.errors import ApiError

MAX_CURSOR_LENGTH = 512
_MAC_BYTES = 16


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(route: str, filters: Iterable[tuple[str, object]]) -> str:
    """Stable short digest of the route and its canonical filter values (not limit/cursor)."""
    canon = json.dumps([route, sorted((k, str(v)) for k, v in filters)], separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def invalid_cursor() -> ApiError:
    return ApiError(
        400,
        "invalid_cursor",
        "cursor: not a cursor this server issued for this route and these filters; "
        "start again without a cursor",
    )


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, fp: str, key: list[object]) -> str:
        payload = json.dumps({"f": fp, "k": key}, separators=(",", ":")).encode("utf-8")
        return _b64e(payload) + "." + _b64e(self._mac(payload))

    def decode(self, cursor: str, fp: str) -> list[object]:
        """The key stored in ``cursor``; 400 ``invalid_cursor`` for anything else."""
        if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise invalid_cursor()
        body, mac = cursor.split(".")
        try:
            payload = _b64d(body)
            given = _b64d(mac)
        except (binascii.Error, ValueError):
            raise invalid_cursor() from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise invalid_cursor()
        # Base64 has several spellings of the same bytes (padding, unused low bits of the last
        # character); only the exact text this server issued is a cursor.
        if _b64e(payload) != body or _b64e(given) != mac:
            raise invalid_cursor()
        try:
            data = json.loads(payload)
        except ValueError:
            raise invalid_cursor() from None
        if not isinstance(data, dict) or data.get("f") != fp or not isinstance(data.get("k"), list):
            raise invalid_cursor()
        return data["k"]
