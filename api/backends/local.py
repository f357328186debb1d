"""Local twin of the Athena backend: the newest complete exported build, queried with DuckDB.

A build is ``$DUFF_LAKE/marts/builds/<YYYYMMDDTHHMMSSffffffZ>_<invocation_id>/`` holding
``_served.json`` (the served-mart declarations it was exported with), each served mart (and
each copy sorted by an id) whole in ``<mart>.parquet`` and cut into ordered parts
``<mart>/part_<i>.parquet``, and ``_SUCCESS.parquet`` (mart_build_info's row); the export
writes it under a temporary name and renames it into place, so a build directory is complete
or absent (``python -m export``, docs/serving.md). Builds of earlier layouts (no parts) are
served too.

Each request runs the same parameterised SQL as on Athena (api/service.py) on an in-memory
DuckDB database whose views read the build's whole files: nothing of the data is loaded up
front (DuckDB's own memory is capped; the server's grows only with the number of files it
has open), and a new build is served as soon as its views exist. For a large mart, the
snapshot also keeps the range of its sort key in each part (from the files' statistics), so
a lookup by id or a page after a cursor reads the one or two parts that can hold its rows
(``windows``): its cost does not grow with the lake. The DuckDB warehouse file, which dbt
locks while it builds, is never opened here; with a ``follower`` (export/follow.py), the
watcher runs ``python -m export`` in a child process after each clean ``dbt build``. The
backend only ever moves to a build whose name sorts after the one it serves, checks at most
every ``reload_interval`` seconds, keeps serving the last good build when a newer one is
incomplete or unreadable, and prunes builds older than the ``keep_builds`` newest complete
ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from api.declarations import DeclarationError, ServedMart, from_json

if TYPE_CHECKING:
    from export.follow import DbtFollower

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


PART = re.compile(r"^part_([0-9]{1,9})\.parquet$")


@dataclass(frozen=True)
class _Files:
    sql: str  # the whole relation's files as SQL text: one file, or a glob
    size: int  # bytes
    parts: Path | None  # the folder of its ordered parts (``part_<i>.parquet``), if any


def _mart_files(build_dir: Path, name: str, *, required: bool = True) -> _Files | None:
    """The Parquet files of a served mart or of one of its sorted copies: the whole relation
    in one file and its parts, or for builds of earlier layouts the one file, the per-day
    files or the parts alone."""
    folder = build_dir / name
    single = build_dir / f"{name}.parquet"
    parts = list(folder.glob("part_*.parquet")) if folder.is_dir() else []
    if single.is_file():
        return _Files(_sql_text(str(single)), single.stat().st_size, folder if parts else None)
    if parts:
        size = sum(f.stat().st_size for f in parts)
        return _Files(_sql_text(str(folder / "part_*.parquet")), size, folder)
    files = list(folder.glob("*/*.parquet")) if folder.is_dir() else []  # the per-day layout
    if files:
        size = sum(f.stat().st_size for f in files)
        return _Files(_sql_text(str(folder / "*" / "*.parquet")), size, None)
    if required:
        raise BuildError(f"{folder} is missing")
    return None


@dataclass(frozen=True)
class _Part:
    path: str
    groups: tuple[tuple[int, int, int], ...]  # per row group: key min, key max, rows


def _read_parts(parts: Sequence[tuple[_Part, int]]) -> str:
    """SQL that reads these parts (as ``_PartIndex.candidates`` gives them), in their order."""
    return "read_parquet([" + ", ".join(_sql_text(p.path) for p, _ in parts) + "])"


@dataclass(frozen=True)
class _PartIndex:
    """The parts of one large sorted relation, in their order, with the range of its first
    sort column (an integer id) in each of their row groups."""

    column: str
    descending: bool
    order: tuple[tuple[str, bool], ...]  # the relation's whole sort order
    parts: tuple[_Part, ...]

    def candidates(self, equal: object = None, after: object = None) -> list[tuple[_Part, int]]:
        """The parts that can hold a row whose key equals ``equal``, or (``after``) a row
        that a keyset page after a row of that key can hold, each with the count of its rows
        that surely qualify (rows of row groups wholly past ``after``; with ``equal``, of the
        groups that can hold it)."""

        def can(lo: int, hi: int) -> bool:
            if equal is not None:
                return lo <= equal <= hi  # type: ignore[operator]
            if after is not None:
                return lo <= after if self.descending else hi >= after  # type: ignore[operator]
            return True

        def surely(lo: int, hi: int) -> bool:
            if equal is not None or after is None:
                return True
            return hi < after if self.descending else lo > after  # type: ignore[operator]

        found = []
        for part in self.parts:
            groups = [(lo, hi, n) for lo, hi, n in part.groups if can(lo, hi)]
            if groups:
                found.append((part, sum(n for lo, hi, n in groups if surely(lo, hi))))
        return found


def _index_parts(
    con: duckdb.DuckDBPyConnection, folder: Path, order: tuple[tuple[str, bool], ...]
) -> _PartIndex | None:
    """The part index of ``folder``, or None when its parts cannot be shown to be in order
    by their first sort column's statistics (then every statement reads the whole file)."""
    column, descending = order[0]
    paths = {}
    for path in folder.glob("*.parquet"):
        match = PART.match(path.name)
        if match is None:
            return None
        paths[str(path)] = int(match.group(1))
    if not paths:
        return None
    rows = con.execute(
        "select file_name, row_group_id, row_group_num_rows, stats_min_value, stats_max_value"
        f" from parquet_metadata({_sql_text(str(folder / '*.parquet'))})"
        " where path_in_schema = ?",
        [column],
    ).fetchall()
    groups: dict[str, list[tuple[int, int, int, int]]] = {p: [] for p in paths}
    try:
        for file, group, count, lo, hi in rows:
            if count:
                groups[file].append((group, int(lo), int(hi), count))
    except (KeyError, TypeError, ValueError):  # a file outside the glob, or no statistics
        return None
    parts = []
    previous: int | None = None
    for path in sorted(paths, key=paths.__getitem__):
        ranges = tuple((lo, hi, n) for _, lo, hi, n in sorted(groups[path]))
        for lo, hi, _ in ranges:  # each range follows the last, in the relation's direction
            first, last = (hi, lo) if descending else (lo, hi)
            if previous is not None and (first > previous if descending else first < previous):
                return None
            if last > first if descending else last < first:
                return None
            previous = last
        if ranges:
            parts.append(_Part(path, ranges))
    return _PartIndex(column, descending, order, tuple(parts))


class LocalSnapshot:
    """One build: an in-memory DuckDB database holding its small marts as tables and views
    over its large Parquet files.

    Immutable once opened. Each thread queries through its own cursor of that database, so
    the server's worker threads run queries side by side (DuckDB releases the GIL while a
    query runs); one DuckDB thread per query, which on two shared cores answers small
    queries sooner than two."""

    def __init__(
        self,
        name: str,
        build_dir: Path,
        *,
        threads: int = 1,
        in_memory_bytes: int = IN_MEMORY_BYTES,
    ) -> None:
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
        self._parts: dict[str, _PartIndex] = {}
        try:
            for mart in marts:
                for name, order in mart.sorted_copies().items():
                    source = _mart_files(build_dir, name, required=name == mart.name)
                    if source is None:
                        continue
                    small = source.size <= in_memory_bytes
                    self._con.execute(
                        f'create {"table" if small else "view"} "{name}" as'
                        f" select * from read_parquet({source.sql})"
                    )
                    self._relations.add(name)
                    indexable = order and mart.column(order[0][0]).kind == "int"
                    if not small and indexable and source.parts is not None:
                        index = _index_parts(self._con, source.parts, order)
                        if index is not None:
                            self._parts[name] = index
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
    def _relation(self, mart: str, key: Sequence[str]) -> str:
        for column in key:  # the copy sorted by an id the statement holds to one value
            if f"{mart}__by_{column}" in self._relations:
                return f"{mart}__by_{column}"
        return mart

    def table(self, mart: str, key: Sequence[str] = ()) -> str:
        return f'"{self._relation(mart, key)}"'

    def windows(
        self,
        mart: str,
        order: Sequence[tuple[str, bool]],
        equal: Mapping[str, object],
        after: object,
        need: int,
    ) -> Iterator[tuple[str, bool]]:
        """Part files in windows: the first holds parts until ``need`` rows surely qualify,
        the second eight times that; then the whole relation in one file, from the start (a
        filter few rows pass costs at most three statements, and never a read of hundreds
        of parts). By one id: the parts that can hold it, at once."""
        name = self._relation(mart, tuple(equal))
        index = self._parts.get(name)
        key = equal.get(index.column) if index else None
        if isinstance(key, int) and not isinstance(key, bool):  # one id: one or two parts
            parts = index.candidates(key)  # type: ignore[union-attr]
            if parts:  # none: no row has that id
                yield _read_parts(parts), False
            return
        wanted = tuple(o for o in order if o[0] not in equal)
        sorted_by = tuple(o for o in index.order if o[0] not in equal) if index else ()
        if index is None or sorted_by[: len(wanted)] != wanted:
            yield f'"{name}"', True  # not in parts, or not in this route's order
            return
        if not isinstance(after, int) or index.column in equal or order[:1] != index.order[:1]:
            after = None
        parts = index.candidates(None, after)
        start, want = 0, max(need, 1)
        for _ in range(2):
            if start >= len(parts):
                return
            end, rows = start, 0
            while end < len(parts) and (end == start or rows < want):
                rows += parts[end][1]
                end += 1
            yield _read_parts(parts[start:end]), False
            start, want = end, want * 8
        if start < len(parts):
            yield f'"{name}"', True

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
        in_memory_bytes: int = IN_MEMORY_BYTES,
        follower: DbtFollower | None = None,
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
        self.in_memory_bytes = in_memory_bytes
        self._current: LocalSnapshot | None = None
        self._bad: set[str] = set()
        self._refresh_lock = threading.Lock()
        self._last_check = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.follower = follower  # exports each clean dbt build (export/follow.py)

    # -- what requests use --------------------------------------------------------------
    def snapshot(self) -> LocalSnapshot | None:
        """The build being served. Without a watcher thread, checks lazily (rate-limited)."""
        if self._thread is None and self._clock() - self._last_check >= self.reload_interval:
            self.refresh()
        return self._current

    @property
    def refused(self) -> list[str]:
        """The complete builds that failed to load (logged as errors when they did)."""
        return sorted(self._bad)

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
                    snap = LocalSnapshot(
                        name,
                        self.builds_dir / name,
                        threads=self.threads,
                        in_memory_bytes=self.in_memory_bytes,
                    )
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
        """Every ``reload_interval``: export a new clean dbt build when following dbt (first
        thing too: a build dbt finished before the server started), then serve the newest."""
        while True:
            try:
                if self.follower is not None and self.follower.poll():
                    self.refresh()
            except Exception:  # keep watching whatever happens
                log.exception("following dbt failed; will retry")
            if self._stop.wait(self.reload_interval):
                return
            try:
                self.refresh()
            except Exception:  # keep watching whatever happens
                log.exception("build watcher failed; will retry")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
