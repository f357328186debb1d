"""``python -m realtime.demo``: a helper that stops early with a failure is said on stderr."""

from __future__ import annotations

import sys

from realtime.demo import main
from realtime.sqlite_store import SqliteStore, store_path

# The demo's command: wait (at most 30 s) until the helpers' log holds an error line, then
# long enough for the demo's watcher (it looks every 0.5 s) to have seen the consumer stop.
WAIT_FOR_THE_ERROR = """
import pathlib, sys, time
log = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    if log.exists() and b"error:" in log.read_bytes():
        break
    time.sleep(0.1)
time.sleep(2)
"""


def test_a_consumer_refused_by_the_store_is_said_on_the_terminal(tmp_path, monkeypatch, capsys):
    # Given a lake whose store holds another stream than the demo's (local://orders)
    store = SqliteStore(store_path(str(tmp_path)))
    store.bind_stream("local://other")
    store.close()
    monkeypatch.setenv("DUFF_LAKE", str(tmp_path))
    monkeypatch.delenv("DUFF_STREAM", raising=False)
    monkeypatch.setenv("DUFF_REALTIME_WORKERS", "1")
    log = tmp_path / "logs" / "realtime.log"
    # When the demo runs a command beside its consumer and producer
    code = main(["--", sys.executable, "-c", WAIT_FOR_THE_ERROR, str(log)])
    # Then the command's exit code is the demo's, and one line on stderr says the consumer
    # stopped, with its exit code and the reason from the log
    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("Real time: the consumer")]
    assert len(lines) == 1, err
    assert "exit 2" in lines[0] and "local://other" in lines[0] and str(log) in lines[0]
    assert "producer" not in err
