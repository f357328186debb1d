"""Local twin of the Athena backend: the newest complete exported build, queried with DuckDB.

A build is ``$DUFF_LAKE/marts/builds/<YYYYMMDDTHHMMSSffffffZ>_<invocation_id>/`` holding
``_served.json`` (the served-mart declarations it was exported with), one
``<mart>.parquet`` per served mart, and ``_SUCCESS.parquet`` (mart_build_info's row); the
export writes it under a temporary name and renames it into place, so a build directory is
complete or absent (``python -m export``, docs/serving.md).

Each request runs the same parameterised SQL as on Athena (api/service.py) on an in-memory
DuckDB database whose views read the build's Parquet files: nothing of the data is loaded
up front, so memory stays bounded whatever the lake's size, and a new build is served as
soon as its views exist. The DuckDB warehouse file, which dbt locks while it builds, is never
opened. The backend only ever moves to a build whose name sorts after the one it serves,
checks at most every ``reload_interval`` seconds, keeps serving the last good build when a
newer one is incomplete or unreadable, and prunes builds older than the ``keep_builds``
newest complete ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import duckdb

from api.declarations import DeclarationError, ServedMart, from_json

log = logging.getLogger("duff.api.local")

SUCCESS = "_SUCCESS.parquet"
SERVED = "_served.json"
BUILD_NAME = re.compile(r"^[0-9]{8}T[0-9]{12}Z_[A-Za-z0-9_-]{1,64}$")
# DuckDB's own memory (in-memory small marts, sorts of a page) beyond the OS page cache.
MEMORY_LIMIT = "256MB"
# A mart file up to this size is copied into DuckDB's memory when a build is opened (a query
# on it then costs a fraction of a millisecond); larger ones are queried in their files.
IN_MEMORY_BYTES = 8 * 1024 * 1024


class BuildError(Exception):
    """A build directory cannot be served."""


def _utc(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise BuildError(f"expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _connect(threads: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(f"set threads = {int(threads)}")
    con.execute(f"set memory_limit = {_sql_text(MEMORY_LIMIT)}")
    con.execute("set enable_external_file_cache = false")  # the OS caches the files already
    con.execute("set parquet_metadata_cache = true")  # footers read once per build
    con.execute("set TimeZone = 'UTC'")
    return con


def read_success(build_dir: Path) -> dict:
    """mart_build_info's row from ``_SUCCESS.parquet``; BuildError when absent or unreadable."""
    path = build_dir / SUCCESS
    con = _connect(1)
    try:
        cur = con.execute(
            f"select build_id, built_at, data_as_of from read_parquet({_sql_text(str(path))})"
        )
        rows = cur.fetchall()
    except duckdb.Error as err:
        raise BuildError(f"{path}: {err}") from err
    finally:
        con.close()
    if len(rows) != 1 or not rows[0][0]:
        raise BuildError(f"{path}: expected exactly one row with a build_id")
    build_id, built_at, data_as_of = rows[0]
    return {"build_id": str(build_id), "built_at": _utc(built_at), "data_as_of": _utc(data_as_of)}


def _mart_files(build_dir: Path, name: str, *, required: bool = True) -> tuple[str, int] | None:
    """The Parquet file (or, for builds of the per-day layout, the glob) of a served mart or
    of one of its sorted copies, as SQL text, with its size in bytes."""
    single = build_dir / f"{name}.parquet"
    if single.is_file():
        return _sql_text(str(single)), single.stat().st_size
    folder = build_dir / name
    files = list(folder.glob("*/*.parquet")) if folder.is_dir() else []
    if files:
        return _sql_text(str(folder / "*" / "*.parquet")), sum(f.stat().st_size for f in files)
    if required:
        raise BuildError(f"{single} is missing")
    return None


class LocalSnapshot:
    """One build: an in-memory DuckDB database holding its small marts as tables and views
    over its large Parquet files.

    Immutable once opened. Each thread queries through its own cursor of that database, so
    the server's worker threads run queries side by side (DuckDB releases the GIL while a
    query runs); one DuckDB thread per query, which on two shared cores answers small
    queries sooner than two."""

    def __init__(self, name: str, build_dir: Path, *, threads: int = 1) -> None:
        info = read_success(build_dir)
        self.name = name
        self.build_id = info["build_id"]
        self.built_at = info["built_at"]
        self.data_as_of = info["data_as_of"]
        try:
            marts = from_json((build_dir / SERVED).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError, DeclarationError) as err:
            raise BuildError(f"{build_dir / SERVED}: {err}") from err
        self.marts: Mapping[str, ServedMart] = {m.name: m for m in marts}
        self._local = threading.local()
        self._con = _connect(threads)
        self._relations: set[str] = set()
        try:
            for mart in marts:
                for name in mart.sorted_copies():
                    source = _mart_files(build_dir, name, required=name == mart.name)
                    if source is None:
                        continue
                    small = source[1] <= IN_MEMORY_BYTES
                    self._con.execute(
                        f'create {"table" if small else "view"} "{name}" as'
                        f" select * from read_parquet({source[0]})"
                    )
                    self._relations.add(name)
                described = {r[0] for r in self._con.execute(f'describe "{mart.name}"').fetchall()}
                missing = [c.name for c in mart.columns if c.name not in described]
                if missing:
                    raise BuildError(f"{build_dir}: {mart.name} lacks columns {missing}")
        except duckdb.Error as err:
            self._con.close()
            raise BuildError(f"{build_dir}: {err}") from err
        except BuildError:
            self._con.close()
            raise

    # -- the snapshot interface (api/service.py: Snapshot) ---------------------------------
    def table(self, mart: str, key: Sequence[str] = ()) -> str:
        if key and f"{mart}__by_{key[0]}" in self._relations:
            return f'"{mart}__by_{key[0]}"'  # the copy sorted by that id
        return f'"{mart}"'

    def query(self, sql: str, params: Sequence[object]) -> list[tuple]:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        return cursor.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self._con.close()


class LocalBackend:
    def __init__(
        self,
        lake: str | Path,
        *,
        reload_interval: float = 2.0,
        keep_builds: int = 3,
        clock: Callable[[], float] = time.monotonic,
        threads: int = 1,
    ) -> None:
        lake_text = str(lake)
        if "://" in lake_text:
            raise ValueError(
                f"the local backend reads a local lake directory, not {lake_text!r}; "
                "use DUFF_API_BACKEND=athena in AWS"
            )
        self.builds_dir = Path(lake_text).resolve() / "marts" / "builds"
        self.reload_interval = reload_interval
        self.keep_builds = keep_builds
        self._clock = clock
        self.threads = threads
        self._current: LocalSnapshot | None = None
        self._bad: set[str] = set()
        self._refresh_lock = threading.Lock()
        self._last_check = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what requests use --------------------------------------------------------------
    def snapshot(self) -> LocalSnapshot | None:
        """The build being served. Without a watcher thread, checks lazily (rate-limited)."""
        if self._thread is None and self._clock() - self._last_check >= self.reload_interval:
            self.refresh()
        return self._current

    # -- build discovery -------------------------------------------------------------------
    def _build_names(self) -> list[str]:
        try:
            names = [
                e.name for e in self.builds_dir.iterdir() if BUILD_NAME.match(e.name) and e.is_dir()
            ]
        except FileNotFoundError:
            return []
        return sorted(names)

    def refresh(self) -> bool:
        """Serve the newest complete build if it is newer than the current one.

        Returns True when it switched. Never moves to an older build; a build that fails to
        load is remembered and skipped (the current one stays in service).
        """
        if not self._refresh_lock.acquire(blocking=False):
            return False  # another thread is already loading
        try:
            self._last_check = self._clock()
            current = self._current.name if self._current else ""
            names = self._build_names()
            for name in reversed(names):
                if name <= current:
                    break
                if name in self._bad or not (self.builds_dir / name / SUCCESS).is_file():
                    continue
                started = time.perf_counter()
                try:
                    snap = LocalSnapshot(name, self.builds_dir / name, threads=self.threads)
                except BuildError as err:
                    log.error("cannot serve build %s: %s", name, err)
                    self._bad.add(name)
                    continue
                except Exception:  # unexpected data (e.g. nulls where none belong): skip it too
                    log.exception("cannot serve build %s", name)
                    self._bad.add(name)
                    continue
                self._current = snap  # the one swap: every later request sees the new build
                log.info(
                    "serving build %s (build_id %s), loaded in %.2fs",
                    name,
                    snap.build_id,
                    time.perf_counter() - started,
                )
                self._prune(names)
                return True
            return False
        finally:
            self._refresh_lock.release()

    def _prune(self, names: list[str]) -> None:
        """Remove builds older than the ``keep_builds`` newest complete ones."""
        complete = [
            n for n in names if n not in self._bad and (self.builds_dir / n / SUCCESS).is_file()
        ]
        if len(complete) <= self.keep_builds:
            return
        oldest_kept = complete[-self.keep_builds]
        serving = self._current.name if self._current else ""
        for name in names:
            if name < oldest_kept and name != serving:
                shutil.rmtree(self.builds_dir / name, ignore_errors=True)
                log.info("pruned old build %s", name)

    # -- background watcher --------------------------------------------------------------
    def start_watcher(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="duff-build-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval):
            try:
                self.refresh()
            except Exception:  # keep watching whatever happens
                log.exception("build watcher failed; will retry")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
