"""``python -m realtime.demo -- <command ...>``: run a command (the API for ``make demo``)
with a real-time consumer and a small event producer beside it.

The consumer (``python -m realtime consume``) and the producer (``python -m realtime.producer``)
start first; when the command exits (Ctrl-C included) the producer stops, and the consumer
gets SIGTERM, so it lands what it holds in the lake before exiting. Their output goes to
``$DUFF_LAKE/logs/realtime.log``; if one of them stops early and fails (a consumer refused
by the lake's store, say), one line on stderr says so, with the log's last error line, since
the live panel would otherwise just stand still.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def _last_error(log_path: Path) -> str:
    """The last ``error: ...`` line of the helpers' log (its last 64 kB), or ''."""
    try:
        with log_path.open("rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 65536, 0))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line.startswith("error:")), "")


def _watch(helpers: dict[str, subprocess.Popen], log_path: Path, done: threading.Event) -> None:
    """Say once, on stderr, when a helper stops early with a failure."""
    failed: set[str] = set()
    while not done.wait(0.5):
        for name, proc in helpers.items():
            code = proc.poll()
            if code not in (None, 0) and name not in failed:
                failed.add(name)
                why = _last_error(log_path)
                print(
                    f"Real time: the {name} stopped (exit {code}), so the live panel will not "
                    f"move; see {log_path}" + (f": {why}" if why else ""),
                    file=sys.stderr,
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m realtime.demo -- <command ...>", file=sys.stderr)
        return 2
    rate = os.environ.get("DUFF_DEMO_EVENTS_PER_SECOND", "5")
    logs = Path(os.environ.get("DUFF_LAKE", "").strip() or "lake") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "realtime.log"
    log = log_path.open("ab")  # the consumer's JSON log, out of the terminal
    named = {
        "consumer": subprocess.Popen(
            [sys.executable, "-m", "realtime", "consume"], stdout=log, stderr=log
        ),
        "producer": subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "realtime.producer", "--rate", rate], stdout=log, stderr=log
        ),
    }
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(named, log_path, done), daemon=True)
    watcher.start()
    print(
        f"Real time: a consumer and a producer ({rate} events/s) run beside the API "
        f"(log in {log_path}).",
        flush=True,
    )
    main_proc = subprocess.Popen(args)  # noqa: S603 - the command line of make demo
    try:
        code = main_proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: wait for the API
        code = main_proc.wait()
    finally:
        done.set()  # (a helper stopped below is no news)
        watcher.join()
        for proc in reversed(named.values()):  # the producer first, then the consumer lands
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(named.values()):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
