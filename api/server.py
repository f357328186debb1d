"""Running the API locally with uvicorn (shared by ``python -m api`` and ``api.demo``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys

from api.app import App
from api.asgi import AsgiApp
from api.backends import make_backend
from api.metrics import log as metrics_log
from api.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
METRICS_LOGGER = metrics_log.name
LOG_FORMATS = ("auto", "text", "json")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (time in UTC, level, logger, message; the stack trace if any).
    A metrics record is already an EMF document and is written as it is, so that a log
    collector reads it as one (api.metrics)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == METRICS_LOGGER:
            return record.getMessage()
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        doc = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=True)


def configure_logging(
    level: str = "info", fmt: str = "auto", path: str | os.PathLike | None = None
) -> None:
    """Log to stderr, or to the file ``path``. ``fmt`` "auto": readable text on a terminal,
    JSON lines otherwise (a file, a pipe, a log collector). uvicorn's loggers go the same way."""
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if path is None else logging.FileHandler(path)
    )
    as_json = fmt == "json" or (fmt == "auto" and (path is not None or not sys.stderr.isatty()))
    handler.setFormatter(JsonLogFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def build_asgi(settings: Settings, *, watch: bool = True) -> AsgiApp:
    backend = make_backend(settings, watch=watch)
    if backend.snapshot() is None:
        refused = getattr(backend, "refused", [])  # builds that failed to load, logged above
        if refused:
            logging.getLogger("duff.api").warning(
                "no build under %s/marts/builds can be served: %d complete build(s) refused "
                "(the errors above say why; the newest is %s): data routes answer 503 until "
                "a build that loads completes",
                settings.lake,
                len(refused),
                refused[-1],
            )
        else:
            logging.getLogger("duff.api").warning(
                "no complete build under %s/marts/builds yet: data routes answer 503 until a "
                "`dbt build` completes (%s)",
                settings.lake,
                "this server exports it"
                if watch and settings.dbt_target_path
                else "then `python -m export`",
            )
    # DuckDB queries release the GIL: a few threads let cache hits pass a running query
    return AsgiApp(App(settings, backend), workers=4)


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen before anything is printed, so that a taken port is an error the user
    reads, not a URL that points at another program. Raises OSError with what went wrong."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listener's proto says TCP. Without it Nagle holds each response body (uvicorn writes head
    # and body separately) until the client's delayed ACK: ~40 ms per keep-alive request.
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


def server_config(asgi: AsgiApp, settings: Settings):
    """uvicorn's configuration for the API: the guarded protocol (api.http_protocol) with the
    deadlines of ``settings``, no server header, no uvicorn access log (the app logs)."""
    import uvicorn

    from api.http_protocol import protocol_class

    config = uvicorn.Config(
        asgi,
        http=protocol_class(
            request_timeout=settings.request_timeout_seconds,
            idle_timeout=settings.idle_timeout_seconds,
        ),
        ws="none",
        log_config=None,  # uvicorn's records go to the handler of configure_logging
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_keep_alive=settings.idle_timeout_seconds,  # type: ignore[arg-type]
    )
    # uvicorn warns about each malformed or upgrade request: client behaviour, not the
    # server's health, and a way for any client to flood the terminal. The protocol logs
    # its refusals (escaped) in the access log instead.
    logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
    return config


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
        uvicorn.Server(server_config(asgi, settings)).run(sockets=[sock or listen(host, port)])
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down, then raised the signal again; stop quietly
    finally:
        stop.set()
