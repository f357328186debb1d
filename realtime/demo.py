"""``python -m realtime.demo -- <command ...>``: run a command (the API for ``make demo``)
with a real-time consumer and a small event producer beside it.

The consumer (``python -m realtime consume``) and the producer (``python -m realtime.producer``)
start first; when the command exits (Ctrl-C included) the producer stops, and the consumer
gets SIGTERM, so it lands what it holds in the lake before exiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


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
    log = (logs / "realtime.log").open("ab")  # the consumer's JSON log, out of the terminal
    helpers = [
        subprocess.Popen([sys.executable, "-m", "realtime", "consume"], stdout=log, stderr=log),
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "realtime.producer", "--rate", rate], stdout=log, stderr=log
        ),
    ]
    print(
        f"Real time: a consumer and a producer ({rate} events/s) run beside the API "
        f"(log in {logs / 'realtime.log'}).",
        flush=True,
    )
    main_proc = subprocess.Popen(args)  # noqa: S603 - the command line of make demo
    try:
        code = main_proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: wait for the API
        code = main_proc.wait()
    finally:
        for proc in reversed(helpers):  # the producer first, then the consumer lands
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(helpers):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
