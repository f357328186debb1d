"""Running the API locally with uvicorn (shared by ``python -m api`` and ``api.demo``)."""

from __future__ import annotations

import logging
import sys

from api.app import App
from api.asgi import AsgiApp
from api.backends import make_backend
from api.settings import Settings


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def build_asgi(settings: Settings, *, watch: bool = True) -> AsgiApp:
    backend = make_backend(settings, watch=watch)
    if backend.snapshot() is None:
        logging.getLogger("duff.api").warning(
            "no complete build under %s/marts/builds yet: data routes answer 503 until "
            "`dbt build` exports one",
            settings.lake,
        )
    return AsgiApp(App(settings, backend))


def serve(settings: Settings, host: str, port: int, *, access_log: bool = True) -> None:
    import threading

    import uvicorn

    asgi = build_asgi(settings)
    if not access_log:
        logging.getLogger("duff.api.access").setLevel(logging.WARNING)
    stop = threading.Event()

    def flush_metrics() -> None:  # one EMF line a minute with the counts since the last one
        while not stop.wait(60):
            asgi.core.metrics.flush()

    threading.Thread(target=flush_metrics, name="duff-metrics", daemon=True).start()
    try:
        uvicorn.run(
            asgi,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_keep_alive=30,
        )
    finally:
        stop.set()
