"""Another process holding a DuckDB file, as dbt (write lock) or an export (read lock) does."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLD = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro');"
    " print('held', flush=True); time.sleep(float(sys.argv[3]))"
)


@contextlib.contextmanager
def held(path: Path, *, read_only: bool = False, seconds: float = 60) -> Iterator[subprocess.Popen]:
    """A child process that opens ``path`` and keeps it open for ``seconds`` (killed on exit
    from the block); entered once the child holds the file."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), "ro" if read_only else "rw", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if child.stdout.readline().strip() != "held":
            raise RuntimeError(f"the child could not open {path}")
        yield child
    finally:
        child.kill()
        child.wait()
