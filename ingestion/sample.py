"""Realistic Duff Beer order exports, for the demo, the tests and the benchmarks.

    python -m ingestion.sample --rows 100000 --seed 7 --out sample/orders.csv
    python -m ingestion.sample --rows 10000000 --bad-share 0.01 --dup-share 0.005 \
        --truth sample/truth.csv --out sample/big.csv

The file follows CONTRACT.md section 1: the original Duff export's columns plus
`order_date`. Clients are Springfield people and businesses (a few hundred, one name shared
by two client ids as in the real export), ~40 products with stable prices and volumes,
channels and statuses in believable proportions, with the export's usual case and
whitespace noise in the enum columns (which the contract accepts).

`--bad-share` turns that share of rows into rows the contract rejects, one fault each, and
`--dup-share` re-sends that share of earlier order ids later in the same file. With
`--truth` the generator writes, for every row it made to be rejected, the line number, the
reason and the column the contract says it must be rejected for; the tests compare that
file with what ingestion rejects, row for row.

Everything is vectorised (numpy + pyarrow) and written in chunks, so 10 million rows take
seconds and memory stays flat.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = (
    "order_id",
    "client_id",
    "client_name",
    "product_id",
    "product_description",
    "product_price",
    "product_ccf",
    "product_volume",
    "point_of_sale_channel",
    "status",
    "order_date",
)

FIRST_NAMES = (
    "Homer",
    "Marge",
    "Bart",
    "Lisa",
    "Maggie",
    "Abe",
    "Ned",
    "Maude",
    "Rod",
    "Todd",
    "Moe",
    "Barney",
    "Lenny",
    "Carl",
    "Apu",
    "Manjula",
    "Seymour",
    "Edna",
    "Waylon",
    "Montgomery",
    "Clancy",
    "Sarah",
    "Ralph",
    "Milhouse",
    "Kirk",
    "Luann",
    "Otto",
    "Patty",
    "Selma",
    "Troy",
    "Lionel",
    "Julius",
    "Herman",
    "Cletus",
    "Brandine",
    "Agnes",
    "Jasper",
    "Hans",
    "Kent",
    "Arnie",
    "Gil",
    "Lurleen",
    "Helen",
    "Timothy",
    "Jimbo",
    "Kearney",
    "Dolph",
    "Nelson",
    "Martin",
    "Sherri",
    "Terri",
    "Wendell",
)
LAST_NAMES = (
    "Simpson",
    "Flanders",
    "Szyslak",
    "Gumble",
    "Leonard",
    "Carlson",
    "Nahasapeemapetilon",
    "Skinner",
    "Krabappel",
    "Smithers",
    "Burns",
    "Wiggum",
    "Van Houten",
    "Powell",
    "Bouvier",
    "McClure",
    "Hutz",
    "Hibbert",
    "Spuckler",
    "Beardly",
    "Moleman",
    "Brockman",
    "Pye",
    "Gunderson",
    "Lovejoy",
    "Quimby",
    "Frink",
    "Prince",
    "Muntz",
    "Zziz",
)
BUSINESSES = (
    "Moe's Tavern",
    "Kwik-E-Mart",
    "The Android's Dungeon",
    "Krusty Burger",
    "Lard Lad Donuts",
    "Springfield Elementary",
    "Springfield Nuclear Power Plant",
    "Barney's Bowl-A-Rama",
    "The Leftorium",
    "Luigi's",
    "Springfield Tire Yard",
    "Duff Gardens",
    "Capital City Brewhouse",
    "Shelbyville Sports Bar",
    "Aztec Theater",
    "Noiseland Arcade",
    "Springfield Retirement Castle",
    "Try-N-Save",
    "Monstromart",
    "Frying Dutchman",
)

# (description, price, litres per unit, popularity weight). Prices and volumes are stable.
PRODUCTS = (
    ("Duff Beer 33cl can", "1.10", "0.330", 30),
    ("Duff Beer 50cl can", "1.55", "0.500", 18),
    ("Duff Beer 33cl bottle", "1.25", "0.330", 16),
    ("Duff Beer 6-pack cans", "5.99", "1.980", 22),
    ("Duff Beer 12-pack cans", "10.99", "3.960", 14),
    ("Duff Beer 24-pack cans", "19.49", "7.920", 9),
    ("Duff Beer keg 20L", "64.00", "20.000", 4),
    ("Duff Beer keg 50L", "149.00", "50.000", 2),
    ("Duff Lite 33cl can", "1.05", "0.330", 12),
    ("Duff Lite 6-pack cans", "5.79", "1.980", 10),
    ("Duff Lite 24-pack cans", "18.99", "7.920", 4),
    ("Duff Dry 33cl bottle", "1.30", "0.330", 7),
    ("Duff Dry 6-pack bottles", "6.99", "1.980", 5),
    ("Duff Dark 50cl bottle", "2.10", "0.500", 5),
    ("Duff Stout 44cl can", "1.95", "0.440", 4),
    ("Duff Stout 4-pack cans", "6.49", "1.760", 3),
    ("Duff Ice 33cl bottle", "1.35", "0.330", 4),
    ("Duff Zero 33cl can", "0.99", "0.330", 6),
    ("Duff Zero 6-pack cans", "5.49", "1.980", 4),
    ("Duff Lemon Radler 33cl can", "1.15", "0.330", 3),
    ("Duff Raspberry Radler 33cl can", "1.15", "0.330", 2),
    ("Duff Christmas Ale 75cl bottle", "4.50", "0.750", 1),
    ("Duff Oktoberfest 1L stein", "3.99", "1.000", 1),
    ("Duff IPA 33cl bottle", "1.60", "0.330", 5),
    ("Duff IPA 6-pack bottles", "8.49", "1.980", 3),
    ("Duff Pilsner 33cl bottle", "1.20", "0.330", 5),
    ("Duff Wheat 50cl bottle", "1.85", "0.500", 3),
    ("Duff Amber 33cl bottle", "1.40", "0.330", 2),
    ("Duff Red 33cl bottle", "1.40", "0.330", 2),
    ('Duff "Extra Cold" 33cl can', "1.20", "0.330", 3),
    ("Duff Tall Boy 70cl can", "2.40", "0.700", 3),
    ("Duff Party Ball 5L", "17.99", "5.000", 2),
    ("Duff Mini Keg 5L", "16.49", "5.000", 2),
    ("Duff Gift Set, 4 bottles + glass", "12.99", "1.320", 1),
    ("Duff Sampler 8-pack", "11.49", "2.640", 2),
    ("Duff Beer 30-pack cans", "23.99", "9.900", 3),
    ("Duff Lite 30-pack cans", "22.99", "9.900", 2),
    ("Fudd 33cl can", "0.95", "0.330", 3),
    ("Fudd 12-pack cans", "9.49", "3.960", 2),
    ("Duff glass (promotional)", "0.00", "0.001", 1),
)

CHANNELS = ("Retail", "Online", "B2B")
CHANNEL_WEIGHTS = (0.52, 0.31, 0.17)
STATUSES = ("delivered", "created", "broken")
STATUS_WEIGHTS = (0.78, 0.19, 0.03)
# How the export spells the enums, weighted; every spelling is valid (case/space noise).
CHANNEL_SPELLINGS = {
    "Retail": (("Retail", 0.9), ("retail", 0.06), (" RETAIL ", 0.04)),
    "Online": (("Online", 0.9), ("online", 0.07), ("ONLINE", 0.03)),
    "B2B": (("B2B", 0.92), ("b2b", 0.08)),
}
STATUS_SPELLINGS = {
    "delivered": (("delivered", 0.93), ("Delivered", 0.05), (" DELIVERED", 0.02)),
    "created": (("created", 0.95), ("Created ", 0.05)),
    "broken": (("broken", 0.95), ("BROKEN", 0.05)),
}

# One fault per bad row: (column, bad value, reason). The reason and column are what the
# contract must reject the row for; every other value of the row stays valid.
FAULTS = (
    ("order_id", "56x9", "invalid"),
    ("order_id", "-12", "invalid"),
    ("order_id", "", "missing"),
    ("client_id", "1.5", "invalid"),
    ("client_id", "  ", "missing"),
    ("client_name", "", "missing"),
    ("product_id", "99999999999999999999", "invalid"),
    ("product_description", " ", "missing"),
    ("product_price", "12,50", "invalid"),
    ("product_price", "1e3", "invalid"),
    ("product_price", "-1.00", "invalid"),
    ("product_price", "1.999", "invalid"),
    ("product_ccf", "0", "invalid"),
    ("product_ccf", "2.5", "invalid"),
    ("product_ccf", "-3", "invalid"),
    ("product_volume", "0", "invalid"),
    ("product_volume", "NaN", "invalid"),
    ("product_volume", "", "missing"),
    ("point_of_sale_channel", "phone", "invalid"),
    ("point_of_sale_channel", "", "missing"),
    ("status", "lost", "invalid"),
    ("status", "", "missing"),
    ("order_date", "2024-02-30", "invalid"),
    ("order_date", "2024/03/01", "invalid"),
    ("order_date", "", "missing"),
)

CHUNK_ROWS = 500_000


@dataclass(frozen=True)
class Catalogue:
    """The stable reference data one seed produces: clients and products."""

    client_ids: np.ndarray
    client_names: list[str]
    client_weights: np.ndarray
    product_ids: np.ndarray
    product_weights: np.ndarray


@dataclass
class Stats:
    rows: int = 0
    bad: int = 0
    duplicates: int = 0
    truth: list[tuple[int, str, str]] = field(default_factory=list)


def make_catalogue(rng: np.random.Generator, n_clients: int = 300) -> Catalogue:
    """Clients and products for one seed. Two client ids share one name, as in Duff's export."""
    if n_clients < 2:
        raise ValueError("n_clients must be at least 2 (two of them share a name)")
    names: list[str] = []
    seen: set[str] = set()
    people = [f"{f} {last}" for last in LAST_NAMES for f in FIRST_NAMES]
    rng.shuffle(people)
    pool = list(BUSINESSES) + people
    for name in pool:
        if len(names) == n_clients - 1:
            break
        if name not in seen:
            seen.add(name)
            names.append(name)
    i = 0
    while len(names) < n_clients - 1:  # more clients than the name pool: number branches
        names.append(f"{pool[i % len(pool)]} #{i // len(pool) + 2}")
        i += 1
    names.append("Homer Simpson" if "Homer Simpson" in seen else names[0])
    client_ids = rng.choice(np.arange(1000, 1000 + n_clients * 20), n_clients, replace=False)
    # A few big accounts, a long tail (Zipf-like, as real order books look).
    weights = 1.0 / np.arange(1, n_clients + 1) ** 0.8
    rng.shuffle(weights)
    product_ids = np.arange(101, 101 + len(PRODUCTS), dtype=np.int64)
    product_weights = np.array([p[3] for p in PRODUCTS], dtype=float)
    return Catalogue(
        client_ids=client_ids.astype(np.int64),
        client_names=names,
        client_weights=weights / weights.sum(),
        product_ids=product_ids,
        product_weights=product_weights / product_weights.sum(),
    )


def _spellings(rng: np.random.Generator, canonical: np.ndarray, table: dict) -> pa.Array:
    """Pick a spelling of each canonical enum value (index into `table`'s keys)."""
    keys = list(table)
    out = np.empty(len(canonical), dtype=object)
    for k, key in enumerate(keys):
        where = np.flatnonzero(canonical == k)
        spellings = [s for s, _ in table[key]]
        weights = np.array([w for _, w in table[key]])
        out[where] = np.array(spellings, dtype=object)[
            rng.choice(len(spellings), len(where), p=weights / weights.sum())
        ]
    return pa.array(out, type=pa.string())


def _chunk(
    rng: np.random.Generator,
    cat: Catalogue,
    n: int,
    first_order_id: int,
    first_line: int,
    start: dt.date,
    days: int,
    bad_share: float,
    dup_share: float,
    with_order_date: bool,
    stats: Stats,
) -> pa.Table:
    order_ids = np.arange(first_order_id, first_order_id + n, dtype=np.int64)
    client = rng.choice(len(cat.client_ids), n, p=cat.client_weights)
    product = rng.choice(len(cat.product_ids), n, p=cat.product_weights)
    channel = rng.choice(3, n, p=CHANNEL_WEIGHTS)
    status = rng.choice(3, n, p=STATUS_WEIGHTS)
    # Units: small baskets in retail/online, cases in B2B.
    units = np.where(
        channel == 2, rng.integers(6, 121, n), rng.geometric(0.35, n).clip(1, 48)
    ).astype(np.int64)
    day = rng.integers(0, days, n)

    # Values are CSV-quoted here, on the small reference lists, not on millions of rows.
    descriptions = pa.array([_quote(p[0]) for p in PRODUCTS])
    prices = pa.array([p[1] for p in PRODUCTS])
    volumes = pa.array([p[2] for p in PRODUCTS])
    names = pa.array([_quote(name) for name in cat.client_names])
    dates = pc.cast(
        pa.array(np.datetime64(start.isoformat(), "D") + day.astype("timedelta64[D]")),
        pa.string(),
    )

    columns: dict[str, pa.Array] = {
        "order_id": pc.cast(pa.array(order_ids), pa.string()),
        "client_id": pc.cast(pa.array(cat.client_ids[client]), pa.string()),
        "client_name": names.take(pa.array(client)),
        "product_id": pc.cast(pa.array(cat.product_ids[product]), pa.string()),
        "product_description": descriptions.take(pa.array(product)),
        "product_price": prices.take(pa.array(product)),
        "product_ccf": pc.cast(pa.array(units), pa.string()),
        "product_volume": volumes.take(pa.array(product)),
        "point_of_sale_channel": _spellings(rng, channel, CHANNEL_SPELLINGS),
        "status": _spellings(rng, status, STATUS_SPELLINGS),
    }
    if with_order_date:
        columns["order_date"] = dates

    # Faults and duplicates go on distinct rows, so each row has exactly one expected reason.
    faults = FAULTS if with_order_date else tuple(f for f in FAULTS if f[0] != "order_date")
    kind = rng.random(n)
    is_bad = kind < bad_share
    is_dup = (kind >= bad_share) & (kind < bad_share + dup_share)
    # A duplicate re-sends an earlier VALID, non-duplicate order of this chunk (the first valid
    # row of an order id wins), so the row it copies must come before it and be clean.
    clean = np.flatnonzero(~is_bad & ~is_dup)
    dup_rows = np.flatnonzero(is_dup)
    if len(clean) and len(dup_rows):
        # Pick the latest clean row before each duplicate, then jump back a random distance.
        pos = np.searchsorted(clean, dup_rows) - 1
        keep = pos >= 0
        dup_rows, pos = dup_rows[keep], pos[keep]
        is_dup[:] = False
        is_dup[dup_rows] = True
        back = np.minimum(pos, rng.integers(0, 1000, len(pos)))
        src = clean[pos - back]
        ids = order_ids[src]
        # Same order written three ways: the contract compares ids as integers.
        style = rng.integers(0, 3, len(ids))
        spelled = np.where(
            style == 0,
            ids.astype(str),
            np.where(
                style == 1, np.char.zfill(ids.astype(str), 9), np.char.add(" ", ids.astype(str))
            ),
        )
        mask = np.zeros(n, dtype=bool)
        mask[dup_rows] = True
        columns["order_id"] = pc.replace_with_mask(
            columns["order_id"], pa.array(mask), pa.array(spelled.astype(object), pa.string())
        )
    else:
        is_dup[:] = False

    bad_rows = np.flatnonzero(is_bad)
    fault_of_row = rng.integers(0, len(faults), len(bad_rows))
    for col in {f[0] for f in faults}:
        of_col = np.array([f[0] == col for f in faults])[fault_of_row]
        rows = bad_rows[of_col]
        if not len(rows):
            continue
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        values = np.array([_quote(f[1]) for f in faults], dtype=object)[fault_of_row[of_col]]
        columns[col] = pc.replace_with_mask(
            columns[col], pa.array(mask), pa.array(values, pa.string())
        )

    truth = [
        (first_line + int(r), faults[f][2], faults[f][0])
        for r, f in zip(bad_rows, fault_of_row, strict=True)
    ]
    truth += [(first_line + int(r), "duplicate", "order_id") for r in dup_rows]
    truth.sort()
    stats.truth.extend(truth)
    stats.rows += n
    stats.bad += len(bad_rows)
    stats.duplicates += len(dup_rows)
    return pa.table(columns)


def generate(
    rows: int,
    *,
    seed: int = 7,
    start: dt.date = dt.date(2024, 1, 1),
    end: dt.date = dt.date(2025, 12, 31),
    clients: int = 300,
    bad_share: float = 0.0,
    dup_share: float = 0.0,
    with_order_date: bool = True,
    first_order_id: int = 1,
    chunk_rows: int = CHUNK_ROWS,
    stats: Stats | None = None,
) -> Iterator[pa.Table]:
    """Yield the file's rows as string tables of at most `chunk_rows` rows each."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if not 0 <= bad_share + dup_share <= 1:
        raise ValueError("bad_share + dup_share must be between 0 and 1")
    if end < start:
        raise ValueError("end date is before start date")
    stats = stats if stats is not None else Stats()
    rng = np.random.default_rng(seed)
    cat = make_catalogue(rng, clients)
    days = (end - start).days + 1
    done = 0
    while done < rows:
        n = min(chunk_rows, rows - done)
        yield _chunk(
            rng,
            cat,
            n,
            first_order_id + done,
            2 + done,
            start,
            days,
            bad_share,
            dup_share,
            with_order_date,
            stats,
        )
        done += n


def _quote(value: str) -> str:
    """RFC 4180 quoting, only where a value needs it."""
    if any(c in value for c in '",\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_lines(table: pa.Table) -> pa.Buffer:
    """Encode a table of already-quoted string values as CSV lines, one contiguous buffer."""
    lines = pc.binary_join_element_wise(*table.columns, ",")
    lines = pc.binary_join_element_wise(lines, "", "\n")
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def write_csv(path: Path | str, rows: int, **kwargs) -> Stats:
    """Write a sample export to `path`; returns what was generated, including the truth."""
    stats = Stats()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(COLUMNS if kwargs.get("with_order_date", True) else COLUMNS[:-1])
    with path.open("wb") as out:
        out.write((",".join(names) + "\n").encode())
        for table in generate(rows, stats=stats, **kwargs):
            out.write(_csv_lines(table))
    return stats


def write_truth(path: Path | str, stats: Stats) -> None:
    """The expected rejects: one line per row the contract must reject."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_line", "reason", "column"])
        w.writerows(stats.truth)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ingestion.sample", description="Write a realistic Duff orders CSV."
    )
    p.add_argument("--rows", type=int, default=100_000, help="data rows (default 100000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 1, 1))
    p.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 12, 31))
    p.add_argument("--clients", type=int, default=300, help="distinct clients (default 300)")
    p.add_argument("--bad-share", type=float, default=0.0, help="share of rows with one fault")
    p.add_argument("--dup-share", type=float, default=0.0, help="share of re-sent order ids")
    p.add_argument("--first-order-id", type=int, default=1)
    p.add_argument("--no-order-date", action="store_true", help="omit the order_date column")
    p.add_argument("--truth", type=Path, help="write the expected rejects to this CSV")
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        stats = write_csv(
            a.out,
            a.rows,
            seed=a.seed,
            start=a.start,
            end=a.end,
            clients=a.clients,
            bad_share=a.bad_share,
            dup_share=a.dup_share,
            with_order_date=not a.no_order_date,
            first_order_id=a.first_order_id,
        )
    except ValueError as e:
        p.error(str(e))
    if a.truth:
        write_truth(a.truth, stats)
    size = a.out.stat().st_size
    print(
        f"wrote {stats.rows} rows ({stats.bad} bad, {stats.duplicates} duplicates), "
        f"{size / 1e6:.1f} MB to {a.out} in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
