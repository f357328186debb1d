"""Running the API locally with uvicorn (shared by ``python -m api`` and ``api.demo``)."""

from __future__ import annotations

import logging
import socket
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
    # DuckDB queries release the GIL: a few threads let cache hits pass a running query
    return AsgiApp(App(settings, backend), workers=4)


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen before anything is printed, so that a taken port is an error the user
    reads, not a URL that points at another program. Raises OSError with what went wrong."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, so asyncio sets TCP_NODELAY on accepted sockets (proto 0 would not)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {err.strerror or err} "
            "(another program has it? choose another port with --port or DUFF_PORT)"
        ) from err
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    access_log: bool = True,
    sock: socket.socket | None = None,
) -> None:
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
        config = uvicorn.Config(
            asgi,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_keep_alive=30,
        )
        uvicorn.Server(config).run(sockets=[sock or listen(host, port)])
    finally:
        stop.set()
