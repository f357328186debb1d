"""A test double of the pipeline: synthetic builds of the served marts, laid out as the
export (``python -m export``) lays them out.

For tests and benchmarks of the API without running dbt: ``make_orders`` draws orders
(deterministic for a seed), ``write_build`` aggregates them with DuckDB into the served
relations with the documented types and writes one build directory: each mart whole and
in Parquet parts (``export.write_parts``), ``_served.json`` (the declarations of the
project's yml) and ``_SUCCESS.parquet``, under a temporary name renamed into place.

    python -m tests.support.fake_marts --lake /tmp/lake --orders 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from api.declarations import from_project, to_json
from export.__main__ import PART_ROWS, write_parts

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("Retail", "Online", "B2B")
STATUSES = ("created", "delivered", "broken")
PRODUCTS = (
    "Duff Beer 33cl",
    "Duff Lite 33cl",
    'Duff "Dry" 50cl \u00fc\\',
    "Duff Dark 50cl",
    "Duff Beer keg 20l",
    "Duff Lemon 33cl",
    "Duff Zero 33cl",
    "Duff Beer 6-pack",
)


def make_orders(
    n: int,
    *,
    clients: int = 500,
    products: int = 8,
    days: int = 60,
    seed: int = 1,
    start: dt.date = dt.date(2024, 3, 1),
    first_order_id: int = 1,
) -> pa.Table:
    """``n`` orders with ids ``first_order_id..`` (gaps every 7th id, so ids are not dense).

    Columns: order_id, client_id, client_name, product_id, product_description,
    unit_price_cents, units, volume_ml (per unit), channel, status, pa_date.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(first_order_id, first_order_id + n + n // 6 + 2, dtype=np.int64)
    ids = ids[ids % 7 != 3][:n]
    client_id = rng.integers(1, clients + 1, n, dtype=np.int64) * 10 + 3
    product_id = rng.integers(1, products + 1, n, dtype=np.int64)
    # price per product with a per-order discount; some free samples
    base = 99 + (product_id * 137) % 900
    price = base - rng.integers(0, 50, n) * (rng.random(n) < 0.3)
    price = np.where(rng.random(n) < 0.01, 0, price).astype(np.int64)
    units = rng.integers(1, 48, n, dtype=np.int32)
    volume = (330 + (product_id % 4) * 170).astype(np.int64)
    channel = rng.integers(0, len(CHANNELS), n)
    status = rng.integers(0, len(STATUSES), n)
    day = rng.integers(0, days, n)
    names = np.array([f'Client {i} & Sons, "Springfield" Ünïcode' for i in range(clients + 1)])
    descs = np.array([PRODUCTS[(i - 1) % len(PRODUCTS)] + f" #{i}" for i in range(products + 1)])
    dates = np.datetime64(start.isoformat(), "D") + day
    return pa.table(
        {
            "order_id": ids,
            "client_id": client_id,
            "client_name": pa.array(names[(client_id - 3) // 10]),
            "product_id": product_id,
            "product_description": pa.array(descs[product_id]),
            "unit_price_cents": price,
            "units": units,
            "volume_ml": volume,
            "channel": pa.array(np.array(CHANNELS)[channel]),
            "status": pa.array(np.array(STATUSES)[status]),
            "pa_date": pa.array(dates, type=pa.date32()),
        }
    )


_MARTS_SQL = {
    "mart_orders": """
        select order_id, client_id, product_id, product_description,
               units::integer as units,
               (unit_price_cents::decimal(18, 0) / 100)::decimal(12, 2) as unit_price,
               (unit_price_cents::decimal(18, 0) * units / 100)::decimal(22, 2) as total_amount,
               (volume_ml::decimal(18, 0) * units / 1000)::decimal(20, 3) as liters,
               channel, status, pa_date
        from src order by order_id""",
    "mart_client_sales": """
        with per_product as (
            select client_id, product_id, product_description,
                   sum(units)::bigint as units, sum(total_amount) as spend
            from mart_orders group by all
        ),
        ranked as (
            select *, row_number() over (
                partition by client_id order by units desc, spend desc, product_id
            ) as rn
            from per_product
        ),
        totals as (
            select o.client_id, any_value(s.client_name) as client_name,
                   count(*)::bigint as orders, sum(o.units)::bigint as units,
                   sum(o.liters)::decimal(38, 3) as liters,
                   sum(o.total_amount)::decimal(38, 2) as total_spend
            from mart_orders as o join src as s using (order_id) group by o.client_id
        )
        select t.client_id, t.client_name, t.orders, t.units, t.liters, t.total_spend,
               r.product_id as top_product_id, r.product_description as top_product_description,
               r.units as top_product_units
        from totals as t join ranked as r on r.client_id = t.client_id and r.rn = 1
        order by t.client_id""",
    "mart_product_sales": """
        select product_id, product_description, count(*)::bigint as orders,
               sum(units)::bigint as units, sum(liters)::decimal(38, 3) as liters,
               sum(total_amount)::decimal(38, 2) as revenue
        from mart_orders group by all order by product_id""",
    "mart_channel_sales": """
        select channel, count(*)::bigint as orders, sum(units)::bigint as units,
               sum(liters)::decimal(38, 3) as liters,
               sum(total_amount)::decimal(38, 2) as revenue
        from mart_orders group by all order by channel""",
    "mart_product_channel_sales": """
        select product_id, product_description, channel, count(*)::bigint as orders,
               sum(units)::bigint as units, sum(liters)::decimal(38, 3) as liters,
               sum(total_amount)::decimal(38, 2) as revenue
        from mart_orders group by all order by product_id, channel""",
    "mart_status_summary": """
        select status, count(*)::bigint as orders, sum(units)::bigint as units,
               sum(total_amount)::decimal(38, 2) as revenue
        from mart_orders group by all order by status""",
    "mart_daily_sales": """
        select pa_date, count(*)::bigint as orders, sum(units)::bigint as units,
               sum(liters)::decimal(38, 3) as liters,
               sum(total_amount)::decimal(38, 2) as revenue
        from mart_orders group by all order by pa_date""",
}


def empty_mart_sql(mart) -> str:
    """A DuckDB query of no rows with the columns and types ``mart`` declares."""
    return (
        "select " + ", ".join(f"null::{c.data_type} as {c.name}" for c in mart.columns) + " limit 0"
    )


def build_dir_name(built_at: dt.datetime, invocation_id: str) -> str:
    return built_at.strftime("%Y%m%dT%H%M%S%fZ") + "_" + invocation_id


def write_build(
    lake: str | Path,
    orders: pa.Table,
    *,
    built_at: dt.datetime | None = None,
    data_as_of: dt.datetime | None = None,
    build_id: str | None = None,
    write_success: bool = True,
    part_rows: int = PART_ROWS,
) -> Path:
    """Write one build of every served relation; ``_SUCCESS.parquet`` last. Returns its dir.
    ``part_rows``: rows per part file (the export's own size unless a test wants many)."""
    built_at = built_at or dt.datetime.now(dt.UTC)
    data_as_of = data_as_of or built_at - dt.timedelta(minutes=5)
    build_id = build_id or str(uuid.uuid4())
    final = Path(lake) / "marts" / "builds" / build_dir_name(built_at, build_id)
    out = final.with_name("." + final.name + ".tmp")
    out.mkdir(parents=True, exist_ok=False)
    (out / "_served.json").write_text(to_json(from_project(ROOT)), encoding="utf-8")
    con = duckdb.connect(":memory:")
    try:
        con.register("src_arrow", orders)
        con.execute("create table src as select * from src_arrow")
        con.execute(f"create table mart_orders as {_MARTS_SQL['mart_orders']}")
        for name, sql in _MARTS_SQL.items():
            if name != "mart_orders":
                con.execute(f"create table {name} as {sql}")
        con.execute(
            "create table mart_build_info as select ?::varchar as build_id, "
            "?::timestamp as built_at, ?::timestamp as data_as_of",
            [
                build_id,
                built_at.astimezone(dt.UTC).replace(tzinfo=None),
                data_as_of.astimezone(dt.UTC).replace(tzinfo=None),
            ],
        )
        for mart in from_project(ROOT):
            if mart.name not in _MARTS_SQL:  # e.g. the quality marts: no rows from orders
                con.execute(f"create table {mart.name} as {empty_mart_sql(mart)}")
        for mart in from_project(ROOT):  # as python -m export writes them: sorted, its groups
            for name, order in mart.sorted_copies().items():
                order_sql = ", ".join(f"{c}{' desc' if d else ''}" for c, d in order)
                write_parts(
                    con,
                    f"select * from {mart.name} order by {order_sql}",
                    out / name,
                    part_rows=part_rows,
                )
        if write_success:
            path = str(out / "_SUCCESS.parquet").replace("'", "''")
            con.execute(f"copy mart_build_info to '{path}' (format parquet)")
    finally:
        con.close()
    out.rename(final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = write_build(args.lake, make_orders(args.orders, clients=args.clients, seed=args.seed))
    print(out)


if __name__ == "__main__":
    main()
