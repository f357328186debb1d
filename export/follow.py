"""Follow dbt: publish each clean local build for the API as soon as dbt has written it.

CONTRACT.md section 4: within 30 s after ``dbt build`` returns, every route answers from the
new build. Locally the API serves exported Parquet builds (``python -m export``), so
``python -m api`` watches dbt's ``run_results.json`` (its watcher thread, every
``DUFF_API_RELOAD_SECONDS``) and, when a new one describes a clean ``dbt build`` or
``dbt run`` of every served mart not exported yet, runs ``python -m export`` on exactly
those results, in a child process (the export's memory and imports stay out of the server).

* dbt writes ``run_results.json`` just before it lets go of the DuckDB file: an export
  that finds the file still locked exits 75 and is tried again on the next poll (for
  ``RETRY_SECONDS``), with the results the follower read when dbt wrote them, so a
  ``dbt test`` that overwrites the file meanwhile cannot make the build be forgotten.
* A dbt command started while an export reads the warehouse waits for it (``retries`` in
  profiles.yml), and ``make build``'s own export beside a server is harmless: one export at
  a time, the second finds the build exported.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from export.__main__ import EXIT_BUSY, ROOT, NothingToExport, check_results, is_exported

log = logging.getLogger("duff.api.follow")

RETRY_SECONDS = 600.0  # how long a locked warehouse is waited for (a long dbt command)
EXPORT_TIMEOUT_SECONDS = 1800.0


def run_export(lake: Path, results: bytes) -> subprocess.CompletedProcess:
    """``python -m export --run-results -`` on ``results``, for ``lake``, from the repo root."""
    env = {**os.environ, "DUFF_LAKE": str(lake), "DUFF_DBT_TARGET": "local"}
    return subprocess.run(
        [sys.executable, "-m", "export", "--run-results", "-"],
        input=results,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=EXPORT_TIMEOUT_SECONDS,
        check=False,
    )


class DbtFollower:
    """Publishes the builds dbt writes into ``target_path``; :meth:`poll` does one step."""

    def __init__(
        self,
        lake: str | Path,
        target_path: str | Path,
        *,
        export: Callable[[Path, bytes], subprocess.CompletedProcess] = run_export,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.lake = Path(lake).resolve()
        self.results_file = Path(target_path).resolve() / "run_results.json"
        self._export = export
        self._clock = clock
        self.retry_seconds = retry_seconds
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self._pending: tuple[str, bytes, float] | None = None  # (invocation, results, since)
        self._marts = None

    def _read(self) -> None:
        """Take in a new run_results.json, if dbt wrote one since the last look."""
        try:
            stat = self.results_file.stat()
        except OSError:
            return
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature == self._seen:
            return
        try:
            text = self.results_file.read_bytes()
            results = json.loads(text)
        except (OSError, ValueError):
            return  # dbt is still writing it: read it again on the next poll
        self._seen = signature
        if self._marts is None:
            from api.declarations import from_project

            self._marts = from_project(ROOT)
        try:
            invocation = check_results(results, self._marts)
        except NothingToExport as why:
            log.debug("dbt's last results are not exported: %s", why)
            return
        except (KeyError, TypeError, AttributeError):
            log.warning("%s is not dbt run results; ignored", self.results_file)
            return
        if self._exported(invocation):
            return
        if self._pending is None or self._pending[0] != invocation:
            self._pending = (invocation, text, self._clock())

    def _exported(self, invocation: str) -> bool:
        return is_exported(self.lake / "marts" / "builds", invocation)

    def poll(self) -> bool:
        """Export the newest clean build dbt wrote, if there is one; True when one was."""
        self._read()
        if self._pending is None:
            return False
        invocation, text, since = self._pending
        if self._exported(invocation):  # make build, or a user, exported it already
            self._pending = None
            return False
        try:
            done = self._export(self.lake, text)
        except (OSError, subprocess.SubprocessError) as err:
            log.error("could not run the export of dbt build %s: %s", invocation, err)
            self._pending = None
            return False
        said = (done.stdout or b"").decode(errors="replace").strip()
        if done.returncode == EXIT_BUSY:
            if self._clock() - since > self.retry_seconds:
                log.warning("gave up exporting dbt build %s: %s", invocation, said)
                self._pending = None
            return False
        self._pending = None
        if done.returncode != 0:
            why = (done.stderr or b"").decode(errors="replace").strip()[-2000:]
            log.error("the export of dbt build %s failed: %s", invocation, why or said)
            return False
        log.info("dbt build %s: %s", invocation, said)
        return self._exported(invocation)
