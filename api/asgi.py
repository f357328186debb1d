"""ASGI front end over the core (served by uvicorn).

It only translates: ASGI scope -> api.app.Request, api.app.Response -> ASGI messages. By default
the core runs inline on the event loop: the local backend answers from memory in micro- to
milliseconds and holds the GIL while it does, so a thread hop would only add latency
(measured in bench/bench_api.py). ``workers > 0`` runs the requests that need a backend query
in a thread pool instead (DuckDB and Athena release the GIL while they work); everything else
(cache hits, the app's own routes, refusals) is still answered inline, so it never waits for
a thread behind running queries.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from api.app import App, Request, Response, error_response
from api.errors import ApiError
from api.querystring import parse_query

log = logging.getLogger("duff.api")


class AsgiApp:
    def __init__(self, core: App, workers: int = 0) -> None:
        self.core = core
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="duff-api")
            if workers
            else None
        )

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        try:
            req = to_request(scope)
            if self._pool is None:
                resp: Response = self.core.handle(req)
            else:  # only what needs a query goes to a thread; cache hits are answered here
                found = self.core.handle_cached(req)
                if found is None:
                    loop = asyncio.get_running_loop()
                    found = await loop.run_in_executor(self._pool, self.core.handle, req)
                resp = found
            raw_headers = _raw_headers(resp)
        except Exception:  # never uvicorn's text/plain 500: the contract's JSON error
            log.exception("unhandled error in the ASGI front end")
            resp = error_response(ApiError(500, "internal", "internal error; it has been logged"))
            raw_headers = _raw_headers(resp)
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
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        self.core.close()


def to_request(scope: dict) -> Request:
    """The core Request for an ASGI HTTP scope. A header sent more than once keeps all its
    values, joined with ", " (RFC 9110, 5.3), and its name is listed in repeated_headers."""
    headers: dict[str, str] = {}
    repeated: set[str] = set()
    for k, v in scope.get("headers", ()):
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        if name in headers:
            repeated.add(name)
            headers[name] += ", " + value
        else:
            headers[name] = value
    query = parse_query(scope.get("query_string", b""))
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=query if query is not None else (),
        headers=headers,
        query_error=query is None,
        repeated_headers=frozenset(repeated),
    )


def _raw_headers(resp: Response) -> list[tuple[bytes, bytes]]:
    length = resp.headers.pop("content-length", None) or str(len(resp.body))
    raw = [(b"content-length", length.encode("ascii"))]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()]
    return raw
