"""``python -m api [--host H] [--port P] [--dev]``: serve the API and dashboard locally.

The key comes from ``DUFF_API_KEY``; without it the server refuses to start unless ``--dev``
is given, which generates a key and prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys

from api.server import LOG_FORMATS, configure_logging, listen, serve
from api.settings import Settings, SettingsError


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="port (default $DUFF_PORT or 8000)")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="allow starting without DUFF_API_KEY: generate a key and print it",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    parser.add_argument(
        "--log-format",
        default="auto",
        choices=LOG_FORMATS,
        help="auto (default): text on a terminal, JSON lines otherwise",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        try:
            args.port = _port(os.environ.get("DUFF_PORT", "").strip() or "8000")
        except argparse.ArgumentTypeError as err:
            parser.error(f"DUFF_PORT: {err}")
    configure_logging(args.log_level, args.log_format)
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if settings.backend != "local":
        print("error: python -m api serves the local backend only", file=sys.stderr)
        return 2
    generated = not settings.api_key
    if generated:
        if not args.dev:
            print(
                "error: DUFF_API_KEY is not set. Set it, or pass --dev to run with a "
                "generated key.",
                file=sys.stderr,
            )
            return 2
        settings = dataclasses.replace(settings, api_key=secrets.token_urlsafe(24))
    try:
        sock = listen(args.host, args.port)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if generated:
        print(f"--dev: generated API key (send it as x-api-key): {settings.api_key}", flush=True)
    print(f"Duff API on http://{args.host}:{args.port}/ (lake {settings.lake})", flush=True)
    serve(settings, args.host, args.port, access_log=not args.no_access_log, sock=sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
