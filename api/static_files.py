"""Serving the dashboard's files from api/static/ (safe paths only)."""

from __future__ import annotations

import re
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def resolve(rel: str, root: Path = STATIC_DIR) -> tuple[bytes, str] | None:
    """Bytes and content type of ``root/rel``, or None when it is not a servable file.

    Every segment must be a plain name (letters, digits, ``_ . -``, not starting with a dot),
    so ``..``, absolute paths, backslashes, hidden files and encoded tricks never match; the
    resolved path must still lie under ``root`` (symlinks out are refused).
    """
    parts = rel.split("/")
    if not rel or len(parts) > 8 or not all(_SEGMENT.fullmatch(p) for p in parts):
        return None
    root = root.resolve()
    path = root.joinpath(*parts)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not real.is_file():
        return None
    ctype = CONTENT_TYPES.get(real.suffix.lower(), "application/octet-stream")
    try:
        return real.read_bytes(), ctype
    except OSError:
        return None
