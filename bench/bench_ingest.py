"""Benchmark: our streaming ingestion vs a pandas baseline vs the pyarrow.csv.read_csv floor,
on several shapes of export, reported in one run.

    .venv/bin/python bench/bench_ingest.py                    # ~100 MB of each shape
    .venv/bin/python bench/bench_ingest.py --size-mb 1000     # the 1 GB case
    .venv/bin/python bench/bench_ingest.py --size-mb 5000 --shapes hidden --skip-pandas

Shapes (each written by a generator here, 1% bad rows and 0.5% re-sent orders in all):

* ``generator`` the sample generator's own file (``ingestion.sample``): ~300 ASCII clients,
                40 products, order ids in order, dates over two years (~730 partitions);
* ``shuffled``  the same catalogue, order ids shuffled over the whole file;
* ``wide``      20,000 clients whose names carry accents, commas and escaped quotes
                (``Szyslak, Moe "Big"``, written quoted with the quotes doubled), 320
                products, ids in order;
* ``hidden``    all of it at once: wide catalogue and ids shuffled over the whole file.

Each contender runs in its own fresh Python process, so its peak RSS (``ru_maxrss``) is its
own; wall time is measured inside the process around the work only (imports excluded):

* ``ours``   ``ingestion.land.land`` into a fresh local lake (everything: SHA-256 pass,
             validation, rejects, sorted zstd Parquet per partition, manifest);
* ``pandas`` what the public Duff solutions do: ``pandas.read_csv`` of the whole file,
             pandas validation and normalisation, ``drop_duplicates``,
             ``to_parquet(partition_cols=["pa_date"])``;
* ``floor``  ``pyarrow.csv.read_csv`` of the whole file, nothing else: no parser is faster.

It prints one table and the ratios against the issue's goals: at 1 GB ours >= 5x faster
than pandas and <= 3x the floor, at 200 MB >= 4x faster than pandas; peak RSS <= 1 GB.
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
BYTES_PER_ROW = {"generator": 92, "shuffled": 92, "wide": 115, "hidden": 115}
SHAPES = tuple(BYTES_PER_ROW)


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


def wide_catalogue(rng, n_clients: int = 20_000, n_products: int = 320):
    """Client names with accents, commas and quotes; product descriptions, prices, volumes."""
    from ingestion.sample import FIRST_NAMES, LAST_NAMES

    accents = ["Zoë", "Agnès", "Ñoño", "Jürgen", "Søren", "Łukasz", "Chloé", "Dóra", "Ísak"]
    firsts = list(FIRST_NAMES) + accents
    lasts = [*LAST_NAMES, "Müller", "Ørsted", "Côté", "Nuñez", "Brontë"]
    names = []
    for i in range(n_clients):
        first, last = firsts[i % len(firsts)], lasts[(i // len(firsts)) % len(lasts)]
        style = i % 4
        if style == 0:
            names.append(f"{first} {last} {i}")
        elif style == 1:
            names.append(f"{last}, {first} {i}")  # a comma: quoted
        elif style == 2:
            names.append(f'{first} "{last}" {i}')  # quotes: escaped as ""
        else:
            names.append(f"Café {last} & Söhne {i}")
    products = []
    for k in range(n_products):
        volume = (0.25, 0.33, 0.5, 0.75, 1.0, 5.0)[k % 6]
        products.append(
            (
                f'Duff "{("Lite", "Dry", "Dunkel", "Weiße")[k % 4]}" {volume} l, pack {k}',
                f"{1 + k * 0.37:.2f}",
                f"{volume:.3f}",
            )
        )
    return names, products


def write_shape(path: Path, rows: int, shape: str, seed: int = 7) -> None:
    """Write ``rows`` orders of ``shape`` to ``path``, a chunk at a time (bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ingestion import sample

    if shape == "generator":
        sample.write_csv(path, rows, seed=seed, bad_share=0.01, dup_share=0.005)
        return
    rng = np.random.default_rng(seed)
    wide = shape in ("wide", "hidden")
    if wide:
        names, products = wide_catalogue(rng)
    else:
        cat = sample.make_catalogue(rng)
        names = cat.client_names
        products = [(d, p, v) for d, p, v, _w in sample.PRODUCTS]
    client_ids = rng.choice(np.arange(1000, 1000 + len(names) * 20), len(names), replace=False)
    client_w = 1.0 / np.arange(1, len(names) + 1) ** 0.8
    client_w /= client_w.sum()
    q_names = pa.array([sample._quote(n) for n in names])
    q_desc = pa.array([sample._quote(d) for d, _, _ in products])
    prices = pa.array([p for _, p, _ in products])
    volumes = pa.array([v for _, _, v in products])
    ids = rng.permutation(rows) + 1 if shape in ("shuffled", "hidden") else None
    start = np.datetime64("2024-01-01", "D")
    with path.open("wb") as out:
        out.write((",".join(sample.COLUMNS) + "\n").encode())
        done = 0
        while done < rows:
            n = min(500_000, rows - done)
            order = ids[done : done + n] if ids is not None else np.arange(done + 1, done + n + 1)
            client = rng.choice(len(names), n, p=client_w)
            product = rng.integers(0, len(products), n)
            channel = rng.choice(3, n, p=sample.CHANNEL_WEIGHTS)
            status = rng.choice(3, n, p=sample.STATUS_WEIGHTS)
            units = rng.geometric(0.35, n).clip(1, 48)
            day = start + rng.integers(0, 731, n).astype("timedelta64[D]")
            columns = {
                "order_id": pc.cast(pa.array(order), pa.string()),
                "client_id": pc.cast(pa.array(client_ids[client]), pa.string()),
                "client_name": q_names.take(pa.array(client)),
                "product_id": pc.cast(pa.array(101 + product), pa.string()),
                "product_description": q_desc.take(pa.array(product)),
                "product_price": prices.take(pa.array(product)),
                "product_ccf": pc.cast(pa.array(units), pa.string()),
                "product_volume": volumes.take(pa.array(product)),
                "point_of_sale_channel": sample._spellings(rng, channel, sample.CHANNEL_SPELLINGS),
                "status": sample._spellings(rng, status, sample.STATUS_SPELLINGS),
                "order_date": pc.cast(pa.array(day), pa.string()),
            }
            kind = rng.random(n)
            # 0.5% re-send the id of an earlier row of the chunk
            dup = np.flatnonzero((kind >= 0.01) & (kind < 0.015))
            dup = dup[dup > 0]
            mask = np.zeros(n, dtype=bool)
            mask[dup] = True
            earlier = (rng.random(len(dup)) * dup).astype(np.int64)
            columns["order_id"] = pc.replace_with_mask(
                columns["order_id"],
                pa.array(mask),
                pa.array(order[earlier].astype(str), pa.string()),
            )
            # 1% with one fault each, from the generator's list of faults
            bad = np.flatnonzero(kind < 0.01)
            fault = rng.integers(0, len(sample.FAULTS), len(bad))
            for col in {f[0] for f in sample.FAULTS}:
                of_col = np.array([f[0] == col for f in sample.FAULTS])[fault]
                if not of_col.any():
                    continue
                mask = np.zeros(n, dtype=bool)
                mask[bad[of_col]] = True
                values = [sample._quote(sample.FAULTS[f][1]) for f in fault[of_col]]
                columns[col] = pc.replace_with_mask(
                    columns[col], pa.array(mask), pa.array(values, pa.string())
                )
            out.write(sample._csv_lines(pa.table(columns)))
            done += n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mb", type=float, default=100, help="input size in MB (default 100)")
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated (default: all)")
    p.add_argument("--workdir", help="where to write the inputs and outputs (default: a tmp dir)")
    p.add_argument("--repeat", type=int, default=1, help="runs per contender; best is kept")
    p.add_argument("--skip-pandas", action="store_true", help="skip the slow pandas baseline")
    p.add_argument(
        "--skip-floor",
        action="store_true",
        help="skip the floor (it holds the whole file in memory: ~3x its size)",
    )
    p.add_argument("--child", nargs=3, metavar=("NAME", "CSV", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        sys.stdout.flush()
        # Skip interpreter teardown: pyarrow's thread pools can abort ("terminate called
        # without an active exception") while pandas unloads, after the work is measured.
        os._exit(0)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    table = []
    for shape in shapes:
        rows = int(args.size_mb * 1_000_000 / BYTES_PER_ROW[shape])
        csv_path = work / f"{shape}-{rows}.csv"
        if not csv_path.exists():
            t = time.perf_counter()
            write_shape(csv_path, rows, shape)
            print(
                f"generated {shape}: {rows:,} rows in {time.perf_counter() - t:.1f}s",
                file=sys.stderr,
            )
        size_mb = csv_path.stat().st_size / 1e6
        names = ([] if args.skip_floor else ["floor"]) + ["ours"]
        names += [] if args.skip_pandas else ["pandas"]
        results: dict[str, dict] = {}
        for name in names:
            runs = [measure(name, csv_path, work) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            results[name] = best
        ours = results["ours"]
        row = {
            "shape": shape,
            "mb": size_mb,
            "rows": ours["rows"],
            "floor": results["floor"]["seconds"] if "floor" in results else None,
            "ours": ours["seconds"],
            "pandas": results["pandas"]["seconds"] if "pandas" in results else None,
            "rss": ours["peak_rss_mb"],
            "load": os.getloadavg()[0],
        }
        table.append(row)
        print_row(row, header=len(table) == 1)
        if not args.workdir:
            csv_path.unlink()
    large = args.size_mb >= 900
    goal_pandas = 5 if large else 4
    print(
        f"goals: pandas/ours >= {goal_pandas}x"
        + (", ours/floor <= 3x" if large else "")
        + ", peak RSS <= 1000 MB"
    )
    ok = True
    for row in table:
        ok &= row["rss"] <= 1000
        if row["pandas"] is not None:
            ok &= row["pandas"] / row["ours"] >= goal_pandas
        if large and row["floor"] is not None:
            ok &= row["ours"] / row["floor"] <= 3
    print("all goals met" if ok else "GOAL MISSED on at least one shape")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_row(row: dict, header: bool) -> None:
    if header:
        print(
            f"{'shape':<10} {'MB':>6} {'rows':>11} {'floor s':>8} {'ours s':>7} {'pandas s':>9} "
            f"{'ours/floor':>10} {'pandas/ours':>11} {'ours RSS MB':>11} {'load':>5}"
        )
    pandas = f"{row['pandas']:9.1f}" if row["pandas"] is not None else f"{'-':>9}"
    floor = f"{row['floor']:8.2f}" if row["floor"] is not None else f"{'-':>8}"
    vs_floor = f"{row['ours'] / row['floor']:9.2f}x" if row["floor"] is not None else f"{'-':>10}"
    speedup = f"{row['pandas'] / row['ours']:10.1f}x" if row["pandas"] is not None else f"{'-':>11}"
    print(
        f"{row['shape']:<10} {row['mb']:6.0f} {row['rows']:11,} {floor} "
        f"{row['ours']:7.2f} {pandas} {vs_floor} {speedup} "
        f"{row['rss']:11.0f} {row['load']:5.1f}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
