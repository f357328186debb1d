"""``python -m api.demo [--port P] [--log-file F]``: serve the API and dashboard for ``make demo``.

Binds 127.0.0.1. Uses ``DUFF_API_KEY`` when set, else generates a key. Once the server answers
with data (or after a minute without), prints the dashboard URL (with the key in the ``#key=``
fragment, which browsers never send to the server) and the key: the last lines on the
terminal. The server's log (JSON lines, one per request) goes to a file,
``$DUFF_LAKE/logs/api.log`` by default; only warnings are also shown on the terminal.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from api.__main__ import _port
from api.server import TEXT_FORMAT, configure_logging, listen, serve
from api.settings import Settings, SettingsError

HOST = "127.0.0.1"


READY_SECONDS = 60.0


def banner(port: int, key: str, generated: bool, log_file: Path, ready: bool = True) -> str:
    origin = f"http://{HOST}:{port}"
    source = "generated for this run" if generated else "from DUFF_API_KEY"
    state = (
        "Duff analytics is up."
        if ready
        else "Duff analytics is up, without data yet (no complete dbt build to serve)."
    )
    return "\n".join(
        [
            "",
            state,
            f"  Server log: {log_file}",
            f"  API:        {origin}/openapi.json",
            f"  Try:        curl -H 'x-api-key: {key}' '{origin}/clients?limit=5'",
            f"  API key ({source}): {key}",
            f"  Dashboard:  {origin}/#key={key}",
            "Press Ctrl+C to stop.",
        ]
    )


def wait_until_serving(port: int, timeout: float = READY_SECONDS) -> bool:
    """True once /health answers 200 (a build is loaded); False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.demo", description=__doc__)
    parser.add_argument("--port", type=_port, help="port (default $DUFF_PORT or 8000)")
    parser.add_argument("--log-file", type=Path, help="the server's log (default: see above)")
    args = parser.parse_args(argv)
    if args.port is None:
        try:
            args.port = _port(os.environ.get("DUFF_PORT", "").strip() or "8000")
        except argparse.ArgumentTypeError as err:
            parser.error(f"DUFF_PORT: {err}")
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log_file = args.log_file or Path(settings.lake) / "logs" / "api.log"
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        configure_logging("info", "json", path=log_file)
    except OSError as err:
        print(f"error: cannot write the log {log_file}: {err}", file=sys.stderr)
        return 2
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.getLogger().addHandler(terminal)
    settings = dataclasses.replace(settings, backend="local")
    generated = not settings.api_key
    key = settings.api_key or secrets.token_urlsafe(24)
    settings = dataclasses.replace(settings, api_key=key)
    try:
        sock = listen(HOST, args.port)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def announce() -> None:
        ready = wait_until_serving(args.port)
        print(banner(args.port, key, generated, log_file, ready), flush=True)

    threading.Thread(target=announce, name="duff-demo-banner", daemon=True).start()
    serve(settings, HOST, args.port, sock=sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
