"""``python -m api.demo [--port P]``: serve the API and dashboard for ``make demo``.

Binds 127.0.0.1. Uses ``DUFF_API_KEY`` when set, else generates a key; prints the dashboard URL
(with the key in the ``#key=`` fragment, which browsers never send to the server) and the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys

from api.__main__ import _port
from api.server import configure_logging, listen, serve
from api.settings import Settings, SettingsError

HOST = "127.0.0.1"


def banner(port: int, key: str, generated: bool) -> str:
    origin = f"http://{HOST}:{port}"
    source = "generated for this run" if generated else "from DUFF_API_KEY"
    return "\n".join(
        [
            "",
            "Duff analytics is up.",
            f"  Dashboard: {origin}/#key={key}",
            f"  API:       {origin}/openapi.json",
            f"  API key ({source}): {key}",
            f"  Try:       curl -H 'x-api-key: {key}' '{origin}/clients?limit=5'",
            "Press Ctrl+C to stop.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.demo", description=__doc__)
    parser.add_argument("--port", type=_port, help="port (default $DUFF_PORT or 8000)")
    args = parser.parse_args(argv)
    if args.port is None:
        try:
            args.port = _port(os.environ.get("DUFF_PORT", "").strip() or "8000")
        except argparse.ArgumentTypeError as err:
            parser.error(f"DUFF_PORT: {err}")
    configure_logging("info")
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(settings, backend="local")
    generated = not settings.api_key
    key = settings.api_key or secrets.token_urlsafe(24)
    settings = dataclasses.replace(settings, api_key=key)
    try:
        sock = listen(HOST, args.port)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(banner(args.port, key, generated), flush=True)
    serve(settings, HOST, args.port, sock=sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
