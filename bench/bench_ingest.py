"""Benchmark: our streaming ingestion vs a pandas baseline vs the pyarrow.csv.read_csv floor.

    .venv/bin/python bench/bench_ingest.py                 # ~100 MB, a couple of minutes
    .venv/bin/python bench/bench_ingest.py --size-mb 1000  # the 1 GB case of issue 4

The input is made by the sample generator (``ingestion.sample``: realistic Duff orders with
1% bad rows and 0.5% re-sent orders, dates over two years, so ~730 partitions). Each
contender runs in its own fresh Python process, so its peak RSS (``ru_maxrss``) is its own;
wall time is measured inside the process around the work only (imports excluded for all):

* ``ours``   ``ingestion.land.land`` into a fresh local lake (everything: SHA-256 pass,
             validation, rejects, sorted zstd Parquet per partition, manifest);
* ``pandas`` what the public Duff solutions do: ``pandas.read_csv`` of the whole file,
             pandas validation and normalisation, ``drop_duplicates``,
             ``to_parquet(partition_cols=["pa_date"])``;
* ``floor``  ``pyarrow.csv.read_csv`` of the whole file, nothing else: no parser is faster.

It prints the figures and the ratios against the issue's goals: ours >= 5x faster than pandas,
ours within 2.5x of the floor, ours' peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BYTES_PER_ROW = 92  # what the sample generator writes on average


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(csv_path: str, out: str) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    from ingestion.lake import LocalLake
    from ingestion.land import land
    from ingestion.settings import Settings

    pc.add(pa.array([1]), pa.array([1]))  # pyarrow.compute's lazy import of pandas, up front
    t = time.perf_counter()
    m = land(csv_path, settings=Settings(lake=out), lake=LocalLake(out))
    return {"seconds": time.perf_counter() - t, "rows": m["rows_in"], "valid": m["valid"]}


def run_floor(csv_path: str, out: str) -> dict:
    import pyarrow.csv as pacsv

    t = time.perf_counter()
    table = pacsv.read_csv(csv_path)
    return {"seconds": time.perf_counter() - t, "rows": table.num_rows}


def run_pandas(csv_path: str, out: str) -> dict:
    import pandas as pd

    t = time.perf_counter()
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    rows = len(df)
    df.columns = [c.strip().lower() for c in df.columns]
    for c in df.columns:
        df[c] = df[c].str.strip()
    ok = pd.Series(True, index=df.index)
    for c in ("order_id", "client_id", "product_id", "product_ccf"):
        ok &= df[c].str.fullmatch(r"[0-9]{1,18}")
    ok &= df["product_price"].str.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?")
    ok &= df["product_volume"].str.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,3})?")
    ok &= df["client_name"] != ""
    ok &= df["product_description"] != ""
    df["point_of_sale_channel"] = df["point_of_sale_channel"].str.lower()
    ok &= df["point_of_sale_channel"].isin(["retail", "online", "b2b"])
    df["status"] = df["status"].str.lower()
    ok &= df["status"].isin(["created", "delivered", "broken"])
    dates = pd.to_datetime(df["order_date"], format="%Y-%m-%d", errors="coerce")
    ok &= dates.notna()
    df = df[ok].copy()
    dates = dates[ok]
    for c in ("order_id", "client_id", "product_id"):
        df[c] = df[c].astype("int64")
    df["product_ccf"] = df["product_ccf"].astype("int32")
    df["product_price"] = df["product_price"].astype("float64")
    df["product_volume"] = df["product_volume"].astype("float64")
    ok = (df["product_ccf"] > 0) & (df["product_volume"] > 0) & (df["order_id"] > 0)
    df = df[ok]
    df = df.drop_duplicates(subset="order_id", keep="first").copy()
    df["point_of_sale_channel"] = df["point_of_sale_channel"].map(
        {"retail": "Retail", "online": "Online", "b2b": "B2B"}
    )
    df["total_amount"] = df["product_price"] * df["product_ccf"]
    df["total_liters"] = df["product_volume"] * df["product_ccf"]
    df["pa_date"] = dates.loc[df.index].dt.strftime("%Y-%m-%d")
    df.to_parquet(out, partition_cols=["pa_date"], compression="zstd", index=False)
    return {"seconds": time.perf_counter() - t, "rows": rows, "valid": len(df)}


CONTENDERS = {"ours": run_ours, "pandas": run_pandas, "floor": run_floor}


def child(name: str, csv_path: str, out: str) -> None:
    result = CONTENDERS[name](csv_path, out)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(name: str, csv_path: Path, work: Path) -> dict:
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, str(csv_path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mb", type=float, default=100, help="input size in MB (default 100)")
    p.add_argument("--rows", type=int, help="input rows (overrides --size-mb)")
    p.add_argument("--workdir", help="where to write the input and outputs (default: a tmp dir)")
    p.add_argument("--repeat", type=int, default=1, help="runs per contender; best is kept")
    p.add_argument("--skip-pandas", action="store_true", help="skip the slow pandas baseline")
    p.add_argument("--child", nargs=3, metavar=("NAME", "CSV", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        sys.stdout.flush()
        # Skip interpreter teardown: pyarrow's thread pools can abort ("terminate called
        # without an active exception") while pandas unloads, after the work is measured.
        os._exit(0)

    from ingestion.sample import write_csv

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = args.rows or int(args.size_mb * 1_000_000 / BYTES_PER_ROW)
    csv_path = work / f"orders-{rows}.csv"
    if not csv_path.exists():
        t = time.perf_counter()
        write_csv(csv_path, rows, seed=7, bad_share=0.01, dup_share=0.005)
        print(f"generated {rows:,} rows in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    size_mb = csv_path.stat().st_size / 1e6
    print(f"input: {csv_path} ({size_mb:,.0f} MB, {rows:,} rows), {os.cpu_count()} CPUs")

    names = ["floor", "ours"] + ([] if args.skip_pandas else ["pandas"])
    results: dict[str, dict] = {}
    for name in names:
        runs = [measure(name, csv_path, work) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        results[name] = best
        print(
            f"{name:>7}: {best['seconds']:8.2f} s  {size_mb / best['seconds']:7.1f} MB/s  "
            f"peak RSS {best['peak_rss_mb']:7.0f} MB  rows {best['rows']:,}"
        )
    ours = results["ours"]
    vs_floor = ours["seconds"] / results["floor"]["seconds"]
    print(f"ours / floor time : {vs_floor:5.2f}x   (goal <= 2.5x)")
    if "pandas" in results:
        speedup = results["pandas"]["seconds"] / ours["seconds"]
        print(f"pandas / ours time: {speedup:5.2f}x   (goal >= 5x faster)")
        print(
            f"valid rows        : ours {ours['valid']:,}, pandas {results['pandas']['valid']:,}"
            " (pandas is laxer: floats, no int64/int32 range checks)"
        )
    print(f"ours peak RSS     : {ours['peak_rss_mb']:.0f} MB (goal < 1000 MB)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
