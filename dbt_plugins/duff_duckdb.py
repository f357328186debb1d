"""dbt-duckdb plugin for the local target: the filesystem work SQL cannot do on its own.

- ``update_connection_config`` creates the directory of the DuckDB file
  (``$DUFF_LAKE/warehouse/``) before dbt-duckdb opens it, so a fresh lake needs no setup.
- ``store`` is the mart export's Python hook (macros/export_served_marts.sql). dbt-duckdb calls
  a plugin's ``store`` from the Jinja ``adapter.store_relation('duff', ...)``; the export
  passes ``{'action': ...}`` as the config and the build directory as the path, and learns
  the outcome by globbing the files from SQL. It creates directories (DuckDB's ``COPY ... TO``
  does not), stages the previous complete build's files as hard links, moves the unchanged
  days of ``mart_orders`` into the new build, and writes the other days with one ``COPY`` each
  spread over two cursors of the warehouse kept from ``configure_connection``
  (docs/architecture.md section 2).

The hook is plain Python called from Jinja, not a DuckDB Python UDF: registering a UDF
imports numpy (~0.25 s on every dbt command), and DuckDB imports pandas (~1.5-1.9 s) on the
first call of a UDF that returns a value (it checks each result against ``pandas.NA``).

Loaded through ``plugins``/``module_paths`` in profiles.yml.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin

log = logging.getLogger("duff.export")

BUILD_NAME = re.compile(r"^[0-9]{8}T[0-9]{12}Z_[A-Za-z0-9_-]{1,64}$")
SUCCESS = "_SUCCESS.parquet"
ORDERS = "mart_orders"
PREVIOUS = "_previous"  # inside the new build until the export finishes; never served
DAY_DIR = re.compile(r"^pa_date=[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# What the export reads of the previous build, beside its days of mart_orders.
PREVIOUS_FILES = (
    SUCCESS,
    "mart_product_sales.parquet",
    "mart_channel_sales.parquet",
    "mart_status_summary.parquet",
    "mart_daily_sales.parquet",
)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target``; copy it where the filesystem refuses links.

    FileNotFoundError (the source vanished) propagates: the caller then writes that data.
    """
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # EXDEV, EPERM, ENOTSUP, EMLINK...: no hard link here
        shutil.copyfile(source, target)


def previous_build(build_dir: Path) -> Path | None:
    """The newest complete build before ``build_dir`` (its name sorts before), or None."""
    try:
        names = sorted(
            e.name
            for e in build_dir.parent.iterdir()
            if BUILD_NAME.match(e.name) and e.name < build_dir.name
        )
    except FileNotFoundError:
        return None
    for name in reversed(names):
        if (build_dir.parent / name / SUCCESS).is_file():
            return build_dir.parent / name
    return None


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _readable(staged: Path) -> bool:
    """The staged small files read whole, and _SUCCESS has one row with a built_at.

    Paths are inlined as SQL literals: a bound Python parameter makes DuckDB import pandas.
    """
    con = duckdb.connect()
    try:
        for name in PREVIOUS_FILES:
            path = _sql_text(str(staged / name))
            rows = con.execute(f"select * from read_parquet({path})").fetchall()
            if name == SUCCESS:
                counts = con.execute(
                    f"select count(*), count(built_at) from read_parquet({path})"
                ).fetchone()
                if len(rows) != 1 or counts != (1, 1):
                    return False
        return True
    except duckdb.Error:
        return False
    finally:
        con.close()


def stage_previous(build_dir: str | Path) -> str | None:
    """Create ``build_dir/mart_orders/`` and pin the previous complete build in
    ``build_dir/_previous/`` as hard links (copies where links fail).

    Staged: the files of PREVIOUS_FILES, then every day of its ``mart_orders/`` that holds
    exactly one Parquet file (``_previous/mart_orders/pa_date=.../<file>``). Nothing is staged
    when there is no previous build, it has the old layout (``mart_orders.parquet``), or its
    small files are missing or unreadable; a day whose file vanishes meanwhile (the API
    pruned the build) is simply not staged, so the export writes it. Once staged, the export
    never reads the previous build again. Returns the previous build's path, or None.
    """
    build = Path(build_dir)
    (build / ORDERS).mkdir(parents=True, exist_ok=True)
    staged = build / PREVIOUS
    shutil.rmtree(staged, ignore_errors=True)
    prev = previous_build(build)
    if prev is None or not (prev / ORDERS).is_dir() or (prev / f"{ORDERS}.parquet").exists():
        log.info("duff export: no previous build in the per-day layout; writing every day")
        return None
    try:
        staged.mkdir()
        for name in PREVIOUS_FILES:
            link_or_copy(prev / name, staged / name)
        if not _readable(staged):
            raise OSError(f"{prev}: unreadable")
        days = [d for d in (prev / ORDERS).iterdir() if DAY_DIR.match(d.name)]
    except OSError as err:
        log.info("duff export: cannot use the previous build (%s); writing every day", err)
        shutil.rmtree(staged, ignore_errors=True)
        return None
    for day in days:
        try:
            files = [f for f in day.iterdir() if f.name.endswith(".parquet")]
            if len(files) != 1:
                continue
            (staged / ORDERS / day.name).mkdir(parents=True)
            link_or_copy(files[0], staged / ORDERS / day.name / files[0].name)
        except OSError:  # vanished meanwhile: this day gets written
            shutil.rmtree(staged / ORDERS / day.name, ignore_errors=True)
    return str(prev)


def keep_days(build_dir: str | Path, days: Iterable[str]) -> int:
    """Move the staged ``pa_date=<day>`` directories named by ``days`` into the new build's
    ``mart_orders/``, then drop ``_previous/``. Returns how many days moved."""
    build = Path(build_dir)
    staged = build / PREVIOUS / ORDERS
    moved = 0
    for day in days:
        name = f"pa_date={day}"
        if not DAY_DIR.match(name):
            raise ValueError(f"not a day: {day!r}")
        try:
            os.rename(staged / name, build / ORDERS / name)
            moved += 1
        except OSError:  # not staged, or already there: the export writes what is missing
            continue
    shutil.rmtree(build / PREVIOUS, ignore_errors=True)
    return moved


def make_day_dirs(build_dir: str | Path, days: Iterable[str]) -> None:
    """Create ``mart_orders/pa_date=<day>/`` for each day the export writes."""
    for day in days:
        name = f"pa_date={day}"
        if not DAY_DIR.match(name):
            raise ValueError(f"not a day: {day!r}")
        (Path(build_dir) / ORDERS / name).mkdir(parents=True, exist_ok=True)


def write_days(
    conn: Any,
    relation: str,
    build_dir: str | Path,
    days: Sequence[str],
    file_name: str,
    settings: dict[str, Any] | None = None,
    workers: int = 2,
) -> None:
    """COPY each day of ``relation`` (a view or table with ``pa_date`` and ``order_id``) to
    ``build_dir/mart_orders/pa_date=<day>/<file_name>``, sorted by order_id.

    A day's COPY is small and runs on one core, so the days are spread over ``workers``
    cursors of the same database (DuckDB releases the GIL while a query runs). Each cursor
    gets the profile's settings, as dbt-duckdb's own cursors do.
    """
    build = Path(build_dir)
    make_day_dirs(build, days)
    if not file_name.endswith(".parquet") or "/" in file_name or "'" in file_name:
        raise ValueError(f"not a file name: {file_name!r}")

    def run(share: Sequence[str]) -> None:
        cursor = conn.cursor()
        try:
            for key, value in (settings or {}).items():
                cursor.execute(f"set {key} = {_sql_text(str(value))}")
            for day in share:
                target = _sql_text(str(build / ORDERS / f"pa_date={day}" / file_name))
                cursor.execute(
                    f"copy (select * from {relation} where pa_date = date '{day}'"
                    f" order by order_id) to {target} (format parquet)"
                )
        finally:
            cursor.close()

    workers = max(1, min(workers, len(days)))
    shares = [list(days[i::workers]) for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(run, share) for share in shares]:
            done.result()  # re-raises a failed COPY: the export stops before _SUCCESS


class Plugin(BasePlugin):
    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        path = getattr(creds, "path", None)
        if path and path != ":memory:" and "://" not in path and not path.startswith("md:"):
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)

    def configure_connection(self, conn: Any) -> None:
        self._conn = conn  # the database dbt builds in: write_days opens cursors on it

    def store(self, target_config: Any) -> None:
        """The export's hook: ``adapter.store_relation('duff', none, [], <build dir>, 'duff',
        {'action': ..., 'days': [...]})``. dbt-duckdb discards the return value."""
        config = target_config.config or {}
        build_dir = target_config.location.path
        action = config.get("action")
        if action == "stage_previous":
            stage_previous(build_dir)
        elif action == "keep_days":
            keep_days(build_dir, config.get("days") or [])
        elif action == "make_day_dirs":
            make_day_dirs(build_dir, config.get("days") or [])
        elif action == "write_days":
            settings = getattr(self.creds, "settings", None) or {}
            threads = getattr(self.creds, "threads", None) or 2
            write_days(
                self._conn, config["relation"], build_dir, config.get("days") or [],
                config["file_name"], settings, workers=threads,
            )  # fmt: skip
        else:
            raise ValueError(f"duff plugin: unknown store action {action!r}")
