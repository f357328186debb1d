"""The ASGI front end with worker threads: only answers that need a query go to a thread."""

from __future__ import annotations

import asyncio
import threading

from api.asgi import AsgiApp
from tests.unit.api.conftest import API_UNIT_KEY


def _call(asgi: AsgiApp, path: str, query: bytes = b"") -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(b"x-api-key", API_UNIT_KEY.encode())],
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(asgi(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_cache_hits_are_answered_on_the_event_loop(api_unit_app):
    # Given the front end with a pool, and the core's handle() recording its thread
    asgi = AsgiApp(api_unit_app, workers=2)
    threads: list[str] = []
    full = api_unit_app.handle

    def recording(req):
        threads.append(threading.current_thread().name)
        return full(req)

    api_unit_app.handle = recording  # type: ignore[method-assign]
    try:
        # When a route is asked twice
        first = _call(asgi, "/products")
        second = _call(asgi, "/products")
        # Then the miss ran once, in a pool thread; the hit gave the same answer without it
        assert first == second and first[0] == 200
        assert len(threads) == 1 and threads[0].startswith("duff-api")
        # And a refusal never reaches a thread
        assert _call(asgi, "/orders", b"limit=0")[0] == 400
        assert len(threads) == 1
    finally:
        asgi._pool.shutdown(wait=True)  # type: ignore[union-attr]
