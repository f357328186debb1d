"""``python -m export [--target-path target]``: publish the last dbt build's served marts.

The step after ``dbt build`` (or ``dbt run``) on the local target. ``python -m api`` runs it
by itself when dbt writes a new ``run_results.json`` (:mod:`export.follow`), so a running
server serves a build within seconds of ``dbt build`` returning (CONTRACT.md section 4);
``make build``, ``make demo`` and the tests run it explicitly. It reads what dbt itself wrote,
``run_results.json``
(did this invocation build every served mart, and did anything fail?), and copies each served
mart from the DuckDB warehouse, opened read-only once dbt has let go of it, into one build
directory the API serves (docs/serving.md):

    $DUFF_LAKE/marts/builds/<YYYYMMDDTHHMMSSffffffZ>_<invocation_id>/
        <mart>/part_<i>.parquet         each served mart in its first route's order, and
        <mart>__by_<id>/part_<i>.parquet a copy sorted by each id a route's path filters on
        <mart>.parquet, <mart>__by_<id>.parquet   each of them whole, in one file
        _served.json                    the served-mart declarations (models' yml)
        _SUCCESS.parquet                mart_build_info's row

Each relation is cut, in its sort order, into parts of ``PART_ROWS`` rows (part ``i`` holds
rows ``i * PART_ROWS`` onwards), so the API can read only the parts that hold an id or follow
a page's cursor (api/backends/local.py) instead of a file whose size grows with the lake;
statements that read most of a relation read its whole file.

It writes under a hidden temporary name and renames the directory into place last, so a
build directory is complete or absent; a crash leaves only a ``.*.tmp`` directory, removed
by the next run. One export runs at a time (``marts/.export.lock``); the second waits,
then finds the build exported. Exit codes: 0 exported (or nothing to export, with the reason:
a partial ``--select`` run, a failed build, the athena target, already exported), 1 an error,
75 (EX_TEMPFAIL) the warehouse is held by another process (a dbt command still running):
try again when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.declarations import ServedMart, from_project, to_json  # noqa: E402

PROBLEMS = ("error", "fail", "skipped", "runtime error")
# Rows per Parquet row group, and per part file (a whole number of row groups). A lookup
# opens the part(s) holding its id and decodes a row group or two of them; DuckDB's cost per
# query also grows with the row groups of the files it opens, even those it skips by their
# statistics, so parts stay small (docs/api.md, "The local backend" and "Benchmarks").
ROW_GROUP = 2_048
PART_ROWS = 8 * ROW_GROUP
# The whole relation, one file beside its parts, for statements that read most of it (a
# filter few rows pass): one file with large row groups costs far less to scan than
# hundreds of parts (10 M orders: ~40 ms against ~280 ms, docs/api.md).
WHOLE_GROUP = 16_384


EXIT_BUSY = 75  # EX_TEMPFAIL: the warehouse is locked by another process; retry later


class NothingToExport(Exception):
    """This invocation's results are not a complete, clean build of the served marts."""


class WarehouseBusy(Exception):
    """Another process (dbt) holds the DuckDB file's write lock."""


def _is_lock_conflict(err: Exception) -> bool:
    # DuckDB: IOException "Could not set lock on file ...: Conflicting lock is held in ..."
    return type(err).__name__ == "IOException" and "lock" in str(err).lower()


@contextlib.contextmanager
def _export_lock(builds: Path):
    """One export at a time per lake (``make build`` beside a server that follows dbt)."""
    with open(builds.parent / ".export.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_exported(builds: Path, invocation_id: str) -> bool:
    """Whether ``builds`` (``$DUFF_LAKE/marts/builds``) holds that invocation's build."""
    return any(builds.glob(f"*_{invocation_id}"))


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_results(run_results: dict, marts: list[ServedMart]) -> str:
    """The invocation id of a clean build of every served mart, else NothingToExport."""
    args = run_results.get("args", {})
    which = args.get("which")
    if which not in ("run", "build"):
        raise NothingToExport(f"the last dbt command was {which!r}, not run or build")
    if args.get("target") not in (None, "local"):
        raise NothingToExport(f"it built the {args['target']!r} target; the API reads it there")
    problems = [
        f"{r['unique_id']}: {r['status']}"
        for r in run_results["results"]
        if r["status"] in PROBLEMS
    ]
    if problems:
        raise NothingToExport("this build had problems: " + ", ".join(problems))
    built = {
        r["unique_id"].split(".")[-1]
        for r in run_results["results"]
        if r["unique_id"].startswith("model.") and r["status"] == "success"
    }
    missing = [m.name for m in marts if m.name not in built] + (
        [] if "mart_build_info" in built else ["mart_build_info"]
    )
    if missing:
        raise NothingToExport("not rebuilt by this invocation: " + ", ".join(missing))
    return run_results["metadata"]["invocation_id"]


def write_parts(con, select_sql: str, folder: Path, *, part_rows: int = PART_ROWS) -> None:
    """Write the rows of ``select_sql`` (which orders them), streamed from DuckDB as Arrow,
    in one pass to ``folder.parquet`` (the whole relation, row groups of ``WHOLE_GROUP``
    rows) and to ``folder/part_<i>.parquet``: ``i`` counts from 000000 in that order,
    ``part_rows`` rows per part (the last may hold fewer; an empty relation gets one empty
    part, which keeps its columns), row groups of at most ``ROW_GROUP`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if part_rows < 1:
        raise ValueError(f"part_rows must be positive, not {part_rows}")
    folder.mkdir()
    reader = con.execute(select_sql).to_arrow_reader(min(part_rows, 65_536))
    options = {"store_decimal_as_integer": True}  # INT32/INT64 up to 18 digits, as DuckDB
    group = min(part_rows, ROW_GROUP)
    index, pending, held = 0, [], 0

    def flush(batches: list) -> None:
        nonlocal index
        table = pa.Table.from_batches(batches, schema=reader.schema)
        path = folder / f"part_{index:06d}.parquet"
        pq.write_table(table, path, row_group_size=group, **options)
        index += 1

    with pq.ParquetWriter(
        folder.with_name(folder.name + ".parquet"), reader.schema, **options
    ) as whole:
        for batch in reader:
            whole.write_batch(batch, row_group_size=WHOLE_GROUP)
            while batch.num_rows:
                take = min(batch.num_rows, part_rows - held)
                pending.append(batch.slice(0, take))
                held += take
                batch = batch.slice(take)
                if held == part_rows:
                    flush(pending)
                    pending, held = [], 0
        if held or index == 0:
            flush(pending)


def export(
    lake: Path,
    target_path: Path,
    project_dir: Path = ROOT,
    *,
    part_rows: int = PART_ROWS,
    run_results: dict | None = None,
) -> Path:
    """Publish the served marts of the build ``run_results`` describes (by default
    ``target_path/run_results.json``) from the lake's warehouse; returns the build directory."""
    marts = from_project(project_dir)
    if run_results is None:
        run_results = json.loads((target_path / "run_results.json").read_text(encoding="utf-8"))
    invocation_id = check_results(run_results, marts)
    builds = lake / "marts" / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    with _export_lock(builds):
        if is_exported(builds, invocation_id):
            raise NothingToExport(f"build {invocation_id} is already exported")
        for stale in builds.glob(".*.tmp"):  # a crashed export's leftovers
            shutil.rmtree(stale, ignore_errors=True)
        return _write_build(lake, builds, marts, invocation_id, part_rows)


def _write_build(
    lake: Path, builds: Path, marts: list[ServedMart], invocation_id: str, part_rows: int
) -> Path:
    import duckdb

    warehouse = lake / "warehouse" / "duff.duckdb"
    if not warehouse.exists():  # dbt's target/ is the repository's, whatever DUFF_LAKE is
        raise NothingToExport(f"no warehouse at {warehouse}: that build was of another lake")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as err:
        if _is_lock_conflict(err):
            raise WarehouseBusy(str(err).split(". See also")[0]) from err
        raise
    name = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "_" + invocation_id
    tmp = builds / f".{name}.tmp"
    tmp.mkdir()
    try:
        con.execute("set TimeZone = 'UTC'")
        info = con.execute("select build_id from main.mart_build_info").fetchall()
        if info != [(invocation_id,)]:
            raise NothingToExport(f"mart_build_info is not this build's ({info})")
        for mart in marts:
            columns = ", ".join(c.name for c in mart.columns)
            for copy, order in mart.sorted_copies().items():
                order_sql = ", ".join(f"{c}{' desc' if d else ''}" for c, d in order)
                write_parts(
                    con,
                    f"select {columns} from main.{mart.name} order by {order_sql}",
                    tmp / copy,
                    part_rows=part_rows,
                )
        (tmp / "_served.json").write_text(to_json(marts), encoding="utf-8")
        success = _sql_text(str(tmp / "_SUCCESS.parquet"))
        con.execute(f"copy (select * from main.mart_build_info) to {success} (format parquet)")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    final = builds / name
    os.rename(tmp, final)  # the one step that publishes: complete or absent
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    parser.add_argument("--target-path", default=os.environ.get("DBT_TARGET_PATH", "target"))
    parser.add_argument(
        "--run-results",
        metavar="FILE",
        help="dbt's run results to export (default: TARGET_PATH/run_results.json; - for stdin)",
    )
    args = parser.parse_args(argv)
    lake = Path((os.environ.get("DUFF_LAKE", "").strip() or "lake").rstrip("/"))
    if "://" in str(lake) or os.environ.get("DUFF_DBT_TARGET", "local") != "local":
        print("export: nothing to export (the API reads the marts in Athena)")
        return 0
    try:
        run_results = None
        if args.run_results == "-":
            run_results = json.load(sys.stdin)
        elif args.run_results:
            run_results = json.loads(Path(args.run_results).read_text(encoding="utf-8"))
        out = export(lake, Path(args.target_path), run_results=run_results)
    except NothingToExport as why:
        print(f"export: not exporting the served marts; {why}")
        return 0
    except WarehouseBusy as why:
        print(f"export: the warehouse is in use by another process; try again ({why})")
        return EXIT_BUSY
    except (OSError, ValueError) as err:
        print(f"export: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # duckdb.Error: the warehouse cannot be read
        print(f"export: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"export: served marts of this build published to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
