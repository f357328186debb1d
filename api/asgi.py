"""ASGI front end over the core (served by uvicorn).

It only translates: ASGI scope -> api.app.Request, api.app.Response -> ASGI messages. The core
runs in a small thread pool so a slow query never blocks the event loop (DuckDB releases the
GIL while it works).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

from api.app import App, Request, Response

log = logging.getLogger("duff.api")

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


class AsgiApp:
    def __init__(self, core: App, workers: int = 4) -> None:
        self.core = core
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="duff-api")

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        query = parse_query(scope.get("query_string", b""))
        req = Request(
            method=scope["method"],
            path=scope["path"],
            query=query if query is not None else (),
            headers=headers,
            query_error=query is None,
        )
        loop = asyncio.get_running_loop()
        resp: Response = await loop.run_in_executor(self._pool, self.core.handle, req)
        length = resp.headers.pop("content-length", None) or str(len(resp.body))
        raw_headers = [(b"content-length", length.encode("ascii"))]
        raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()]
        await send({"type": "http.response.start", "status": resp.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": resp.body})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.core.close()
