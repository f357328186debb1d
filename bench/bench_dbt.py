"""Benchmark: a full `dbt build` against an incremental one after one new day lands.

    .venv/bin/python bench/bench_dbt.py                 # 300,000 orders (a few minutes)
    .venv/bin/python bench/bench_dbt.py --rows 10000000 # the real run

Generates N orders over two years with the sample generator (`ingestion.sample`), lands them
with the real ingestion CLI into a scratch lake, times a full `dbt build` (baseline), lands one
new day (N / 730 new orders plus re-sent versions of 0.5% of that many existing orders, with a
new status, channel and date), times an incremental `dbt build`, and prints the ratio. The
goal is an incremental build under 10% of the full one. Both builds run the same DAG: every
model, seed, data test, unit test and the Parquet export of the served marts.

Last, it times `dbt build` selecting no node at all, the fixed cost under any incremental
build (docs/warehouse.md, "Where the incremental time goes").

The lookback of the incremental models is set to 0 here: all files of the benchmark land
within minutes of each other, so the default 60-minute lookback would re-read everything.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
DBT = str(Path(sys.executable).with_name("dbt"))
DAYS = 731  # 2023-01-01 .. 2024-12-31


def run(cmd: list[str], env: dict[str, str], label: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{label} failed (exit {proc.returncode})")
    return elapsed


def elapsed_in_dbt(target: Path) -> float:
    """The run's own time as dbt records it: executing every node and the on-run-end export,
    without the Python start-up, import of dbt and manifest loading that every invocation
    pays whatever the data."""
    return float(json.loads((target / "run_results.json").read_text())["elapsed_time"])


def slowest_nodes(target: Path, n: int = 6) -> str:
    results = json.loads((target / "run_results.json").read_text())["results"]
    top = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:n]
    return ", ".join(f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f}s" for r in top)


def resend_rows(source_csv: Path, out_csv: Path, count: int, seed: int) -> int:
    """Copy `count` rows of `source_csv` with a new status, channel and date (re-sent)."""
    rng = random.Random(seed)
    with source_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = []
        for i, row in enumerate(reader):
            if i >= count * 20:
                break
            rows.append(row)
    picked = rng.sample(rows, min(count, len(rows)))
    with out_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in picked:
            row["status"] = (
                "delivered" if row["status"].strip().lower() != "delivered" else "broken"
            )
            row["point_of_sale_channel"] = rng.choice(["Retail", "Online", "B2B"])
            row["order_date"] = "2025-01-01"
            writer.writerow(row)
    return len(picked)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=300_000, help="orders over two years")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--work", type=Path, help="scratch directory (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_dbt_"))
    work.mkdir(parents=True, exist_ok=True)
    lake, target = work / "lake", work / "target"
    env = {**os.environ, "DUFF_LAKE": str(lake), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.pop("DUFF_DBT_TARGET", None)
    # Every file here lands within minutes, whereas in production days pass between landings:
    # without this the default 60-minute lookback would make the "incremental" run re-read
    # the whole history. The lookback's own cost is re-reading one hour of landings.
    dbt_args = [
        "--target-path", str(target), "--log-path", str(work / "logs"),
        "--vars", '{"fact_orders_lookback_minutes": 0}',
    ]  # fmt: skip
    try:
        history, day, resent = work / "history.csv", work / "day.csv", work / "resent.csv"
        t = run(
            [PY, "-m", "ingestion.sample", "--rows", str(args.rows), "--seed", str(args.seed),
             "--start", "2023-01-01", "--end", "2024-12-31", "--out", str(history)],
            env, "sample generation",
        )  # fmt: skip
        print(f"generated {args.rows:,} orders over two years in {t:.1f}s")
        t = run([PY, "-m", "ingestion", str(history), "--json"], env, "landing the history")
        print(f"landed them with the ingestion CLI in {t:.1f}s")
        run([DBT, "parse", *dbt_args], env, "dbt parse")  # parse once, outside the timings

        full = run([DBT, "build", *dbt_args], env, "full dbt build")
        full_in = elapsed_in_dbt(target)
        print(f"full build:        {full:8.1f}s   ({full_in:.1f}s in dbt's run)")
        print(f"   slowest: {slowest_nodes(target)}")

        new_rows = max(1, args.rows // DAYS)
        run(
            [PY, "-m", "ingestion.sample", "--rows", str(new_rows), "--seed", str(args.seed + 1),
             "--start", "2025-01-01", "--end", "2025-01-01",
             "--first-order-id", str(10 * args.rows + 1), "--out", str(day)],
            env, "sample generation (new day)",
        )  # fmt: skip
        n_resent = resend_rows(history, resent, max(1, new_rows // 200), args.seed)
        run([PY, "-m", "ingestion", str(day), "--json"], env, "landing the new day")
        run([PY, "-m", "ingestion", str(resent), "--json"], env, "landing the re-sent orders")
        print(f"landed one new day: {new_rows:,} new orders and {n_resent:,} re-sent ones")

        incremental = run([DBT, "build", *dbt_args], env, "incremental dbt build")
        incremental_in = elapsed_in_dbt(target)
        print(f"incremental build: {incremental:8.1f}s   ({incremental_in:.1f}s in dbt's run)")
        print(f"   slowest: {slowest_nodes(target)}")
        ratio = incremental / full
        verdict = "meets" if ratio < 0.10 else "misses"
        print(f"ratio incremental / full, wall clock = {ratio:.3f} ({verdict} the < 0.10 goal)")
        ratio_in = incremental_in / full_in
        print(
            f"ratio inside dbt's run              = {ratio_in:.3f} (the start-up every `dbt` "
            f"command pays, {incremental - incremental_in:.1f}s here, left out)"
        )
        # The floor under any incremental build: the same command selecting no node at all
        # (dbt's import, profile, manifest and artifacts; no query, no test, no export).
        floor = run(
            [DBT, "build", *dbt_args, "--select", "tag:__selects_no_node__"], env,
            "dbt build selecting nothing",
        )  # fmt: skip
        print(
            f"floor: `dbt build` selecting no node {floor:6.1f}s = {floor / full:.3f} of the "
            f"full build; incremental minus floor = {(incremental - floor) / full:.3f} of it"
        )
    finally:
        if args.keep or args.work:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
