"""Benchmark: does an incremental `dbt build` cost follow the new data, not the history?

    .venv/bin/python bench/bench_dbt.py                          # 100,000 and 1,000,000 orders
    .venv/bin/python bench/bench_dbt.py --rows 1000000 10000000  # the recorded run

For each size N (orders over two years, 2023-01-01 .. 2024-12-31, from the sample generator
`ingestion.sample`, landed with the real ingestion CLI into a scratch lake) it times a full
`dbt build`, then lands what a real day brings: one new day of 10,000 orders plus 200 older
orders re-sent with a new status, channel and date, picked at random over the whole history
(so their old and new days are spread over two years), and times the incremental `dbt build`.
It does so for `--days` days in a row (default 3), one more day each, and compares their
median: one build's time varies by a second from run to run, and the days show a drift
(each day's re-sends add small files to ~200 day partitions that every later build opens).
The sizes' days alternate (each size's day 1, then each size's day 2 in the reverse order,
...), so the builds that (b) compares run a minute apart: the machine's speed drifts by
20-40 % within an hour, and with the sizes in two blocks of builds minutes apart (b) measured
1.09-1.36x in five runs of one dbt code.
The full build is measured the same way, as the median of `--full-builds` builds (default
3), each from an empty warehouse (the lake's warehouse directory removed) over the same
landed history: at 10 M orders single full builds measured 33.6-48.5 s in dbt's run on one
machine in one afternoon, which alone moved (a) between 0.14 and 0.17. The largest size gets
as many full builds again after its days, over the same landed history (a hard-linked copy
of the lake taken before the days, which add ~200 small files each), and (a) takes the
median of all of them: builds before and after the days cancel a steady drift.

It prints, from the same run:
  (a) incremental / full, inside dbt's run, at the largest size (goal <= 0.15);
  (b) incremental at the largest size / incremental at the smallest (goal <= 1.3): the cost
      of the same new data with ten times the history.
Times inside dbt's run are `elapsed_time` of run_results.json: every node and the on-run-end
hook, without the start-up every `dbt` command pays (import, profile, manifest). Wall
clock is printed too. Both builds run what the scheduled build runs (buildspec.yml:
`dbt build --exclude-resource-type unit_test`): every model, seed and data test. Unit tests
check SQL logic on fixed rows, cost the same whatever the data, and run in CI and on
analysts' machines, not in the scheduled build (dbt's own advice); `--with-unit-tests`
measures them too.

The lookback of the incremental models is set to 0 here: all files of the benchmark land
within minutes of each other, so the default 60-minute lookback would re-read everything.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
DBT = str(Path(sys.executable).with_name("dbt"))
NEW_DAY_ORDERS = 10_000
RESENT_ORDERS = 200
# What the scheduled build selects beyond the target (buildspec.yml; a unit test keeps them equal)
SCHEDULED_BUILD_ARGS = ("--exclude-resource-type", "unit_test")
GOAL_RATIO = 0.15
GOAL_GROWTH = 1.3
EXPORT_COLUMNS = (
    "client_id", "client_name", "order_id", "product_id", "product_description",
    "product_price", "product_ccf", "product_volume", "point_of_sale_channel", "status",
    "order_date",
)  # fmt: skip


def run(cmd: list[str], env: dict[str, str], label: str, settle: bool = False) -> float:
    if settle:
        # Write back what earlier steps left in the page cache (a landing, the previous
        # build's database), so that the timed build does not pay for their I/O.
        os.sync()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{label} failed (exit {proc.returncode})")
    return elapsed


def elapsed_in_dbt(target: Path) -> float:
    """The run's own time as dbt records it (every node and the on-run-end hook)."""
    return float(json.loads((target / "run_results.json").read_text())["elapsed_time"])


def slowest_nodes(target: Path, n: int = 6) -> str:
    results = json.loads((target / "run_results.json").read_text())["results"]
    top = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:n]
    return ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f}s" for r in top)


def timed_build(
    args: list[str], env: dict[str, str], target: Path, label: str
) -> tuple[float, float]:
    """One `dbt build`, timed: wall clock and time in dbt's run, printed with its slowest nodes."""
    wall = run([DBT, "build", *args], env, label, settle=True)
    in_dbt = elapsed_in_dbt(target)
    print(f"{label + ':':<19}{wall:7.1f}s wall, {in_dbt:6.1f}s in dbt's run")
    print(f"   slowest: {slowest_nodes(target)}")
    return wall, in_dbt


def resend_rows(lake: Path, out_csv: Path, count: int, seed: int) -> int:
    """Write `count` landed orders picked at random over the whole history, re-sent with a
    new status, channel and a random date of the two years (as the export re-sends them)."""
    con = duckdb.connect()
    rows = con.execute(
        f"""
        select {", ".join(EXPORT_COLUMNS[:-1])},
            date '2023-01-01' + cast(floor(random() * 731) as integer) as order_date
        from read_parquet('{lake}/raw/orders/*/*.parquet')
        using sample reservoir({count} rows) repeatable ({seed})
        """
    ).fetchall()
    with out_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EXPORT_COLUMNS)
        for i, row in enumerate(rows):
            row = list(row)
            row[9] = "delivered" if row[9] != "delivered" else "broken"
            row[8] = ("Retail", "Online", "B2B")[(i + seed) % 3]
            writer.writerow(row)
    return len(rows)


def dbt_args(target: Path, logs: Path) -> list[str]:
    """What every dbt command of one lake gets: its target and log paths, and no lookback."""
    return [
        "--target-path", str(target), "--log-path", str(logs),
        "--vars", '{"fact_orders_lookback_minutes": 0}',
    ]  # fmt: skip


class Size:
    """One history size: its scratch lake, landed and fully built once by `setup`; `day`
    then lands one more day and times the incremental build."""

    def __init__(self, rows: int, seed: int, work: Path, unit_tests: bool) -> None:
        self.rows, self.seed, self.work = rows, seed, work
        self.lake, self.target = work / "lake", work / "target"
        self.env = {
            **os.environ, "DUFF_LAKE": str(self.lake), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }  # fmt: skip
        self.env.pop("DUFF_DBT_TARGET", None)
        self.dbt_args = dbt_args(self.target, work / "logs")
        self.build_args = [] if unit_tests else list(SCHEDULED_BUILD_ARGS)
        self.full_walls: list[float] = []
        self.full_ins: list[float] = []
        self.walls: list[float] = []
        self.ins: list[float] = []

    def setup(self, full_builds: int) -> None:
        """Land two years of `rows` orders, then `full_builds` full builds; their medians
        (with those `full_builds` adds later) stand for the full build."""
        work, env = self.work, self.env
        history = work / "history.csv"
        print(f"\n== {self.rows:,} orders over two years")
        t = run(
            [PY, "-m", "ingestion.sample", "--rows", str(self.rows), "--seed", str(self.seed),
             "--start", "2023-01-01", "--end", "2024-12-31", "--out", str(history)],
            env, "sample generation",
        )  # fmt: skip
        t += run([PY, "-m", "ingestion", str(history), "--json"], env, "landing the history")
        history.unlink()
        print(f"generated and landed in {t:.1f}s")
        # The history as landed, for the full builds after the days (full_builds(after=True)):
        # hard links, as the lake never rewrites a file it published.
        shutil.copytree(self.lake, self.work / "history_lake", copy_function=os.link)
        run([DBT, "parse", *self.dbt_args], env, "dbt parse")  # parse once, outside the timings

        self.full_builds(full_builds)

    def full_builds(self, count: int, after: bool = False) -> None:
        """`count` full builds, each from an empty warehouse (its directory removed); `after`:
        on the copy of the history as landed, not on the lake the days have grown (the days
        add ~200 small files each, which every full build opens)."""
        lake, env, target, args = self.lake, self.env, self.target, self.dbt_args
        if after:
            lake, target = self.work / "history_lake", self.work / "history_target"
            env = {**env, "DUFF_LAKE": str(lake)}
            args = dbt_args(target, self.work / "history_logs")
            run([DBT, "parse", *args], env, "dbt parse (history)")
        for _ in range(count):
            shutil.rmtree(lake / "warehouse", ignore_errors=True)
            wall, in_dbt = timed_build([*self.build_args, *args], env, target, "full build")
            self.full_walls.append(wall)
            self.full_ins.append(in_dbt)
        if len(self.full_ins) > 1:
            print(
                f"full build, median of {len(self.full_ins)}: {self.full:.1f}s wall, "
                f"{self.full_in:.1f}s in dbt's run"
            )

    def day(self, n: int) -> None:
        """Day n (2025-01-01 + n): 10,000 new orders (ids after every earlier one) and 200
        older ones re-sent, landed, then the incremental build, timed."""
        work, env, rows, seed = self.work, self.env, self.rows, self.seed
        day, resent = work / "day.csv", work / "resent.csv"
        date = f"2025-01-{n + 1:02d}"
        run(
            [PY, "-m", "ingestion.sample", "--rows", str(NEW_DAY_ORDERS),
             "--seed", str(seed + 1 + n), "--start", date, "--end", date,
             "--first-order-id", str(10 * rows + 1 + n * NEW_DAY_ORDERS), "--out", str(day)],
            env, "sample generation (new day)",
        )  # fmt: skip
        n_resent = resend_rows(self.lake, resent, RESENT_ORDERS, seed + n)
        run([PY, "-m", "ingestion", str(day), "--json"], env, "landing the new day")
        run([PY, "-m", "ingestion", str(resent), "--json"], env, "landing the re-sent orders")
        print(
            f"{rows:,} orders, day {n + 1}: landed {NEW_DAY_ORDERS:,} new orders, "
            f"{n_resent} re-sent older ones"
        )
        wall, in_dbt = timed_build(
            [*self.build_args, *self.dbt_args], env, self.target, "incremental build"
        )
        self.walls.append(wall)
        self.ins.append(in_dbt)

    @property
    def full(self) -> float:
        return statistics.median(self.full_walls)

    @property
    def full_in(self) -> float:
        return statistics.median(self.full_ins)

    @property
    def inc(self) -> float:
        return statistics.median(self.walls)

    @property
    def inc_in(self) -> float:
        return statistics.median(self.ins)

    def report(self) -> None:
        print(
            f"{self.rows:,} orders: incremental / full: {self.inc_in / self.full_in:.3f} in "
            f"dbt's run, {self.inc / self.full:.3f} wall clock (median of {len(self.ins)} "
            "days; each day: " + ", ".join(f"{i / self.full_in:.3f}" for i in self.ins) + ")"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows", type=int, nargs="+", default=[100_000, 1_000_000],
        help="history sizes, smallest first (default: 100000 1000000)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument(
        "--with-unit-tests", action="store_true",
        help="run the unit tests in both builds too (the scheduled build leaves them out)",
    )  # fmt: skip
    p.add_argument(
        "--days", type=int, default=3,
        help="incremental builds, one more day each; the median is compared (default: 3)",
    )  # fmt: skip
    p.add_argument(
        "--full-builds", type=int, default=3,
        help="full builds per size, each from an empty warehouse, and as many again for the "
        "largest size after its days; the median is compared (default: 3)",
    )  # fmt: skip
    args = p.parse_args()
    if args.full_builds < 1 or args.days < 1:
        p.error("--full-builds and --days must be at least 1")
    sizes = sorted(args.rows)

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_dbt_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 min)")
    measured = [Size(rows, args.seed, work / str(rows), args.with_unit_tests) for rows in sizes]
    try:
        for size in measured:
            size.setup(args.full_builds)
        # The sizes' days alternate (day 1 of each size, then day 2, ...), so that (b)
        # compares builds a minute apart, not two blocks of builds minutes apart on a
        # machine whose speed drifts.
        # Each day's order is the reverse of the day before's, so neither size is always the
        # one built right after the other's landing.
        print()
        for n in range(args.days):
            for size in measured if n % 2 == 0 else measured[::-1]:
                size.day(n)
        # The largest size's full builds again after its days, over the same landed history:
        # (a) divides the median of the builds before and after by the days' median, which
        # cancels a steady drift of the machine.
        print()
        measured[-1].full_builds(args.full_builds, after=True)
        print()
        for size in measured:
            size.report()
    finally:
        if args.keep or args.work:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    small, large = measured[0], measured[-1]
    ratio = large.inc_in / large.full_in
    growth = large.inc_in / small.inc_in
    print(f"\nload average at end: {os.getloadavg()[0]:.1f} (1 min)")
    print(
        f"(a) incremental / full at {sizes[-1]:,} orders, in dbt's run = {ratio:.3f} "
        f"({'meets' if ratio <= GOAL_RATIO else 'misses'} the <= {GOAL_RATIO} goal)"
    )
    print(
        f"(b) incremental at {sizes[-1]:,} / at {sizes[0]:,} orders, in dbt's run = "
        f"{growth:.2f}x ({'meets' if growth <= GOAL_GROWTH else 'misses'} the <= "
        f"{GOAL_GROWTH}x goal); wall clock {large.inc / small.inc:.2f}x"
    )


if __name__ == "__main__":
    main()
