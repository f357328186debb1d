"""Build discovery of the local backend: newest complete build, never older, pruning."""

import datetime as dt

import pytest

from api.backends.local import LocalBackend
from api.fake_marts import make_orders, write_build

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def small_orders():
    return make_orders(50, clients=5, products=3, days=3, seed=11)


def build(lake, orders, minutes, build_id, **kw):
    return write_build(
        lake, orders, built_at=T0 + dt.timedelta(minutes=minutes), build_id=build_id, **kw
    )


def test_serves_newest_complete_build_and_ignores_incomplete(tmp_path, small_orders):
    # Given two complete builds and a newer one without _SUCCESS (dbt still exporting)
    build(tmp_path, small_orders, 1, "b1")
    build(tmp_path, small_orders, 2, "b2")
    build(tmp_path, small_orders, 3, "b3", write_success=False)
    backend = LocalBackend(tmp_path)
    # When it looks for builds / Then it serves b2
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "b2"


def test_never_goes_back_to_an_older_build(tmp_path, small_orders):
    build(tmp_path, small_orders, 5, "b5")
    backend = LocalBackend(tmp_path)
    backend.refresh()
    # Given an older build appears later (a slow export finishing late)
    build(tmp_path, small_orders, 4, "b4")
    # When refreshing / Then it stays on b5
    assert backend.refresh() is False
    assert backend.snapshot().build_id == "b5"


def test_a_corrupt_newer_build_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "bad")
    (bad / "mart_orders.parquet").write_bytes(b"not parquet")
    backend = LocalBackend(tmp_path)
    backend.refresh()
    assert backend.snapshot().build_id == "good"
    # and a build newer still is picked up later
    build(tmp_path, small_orders, 3, "newer")
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "newer"


def test_prunes_builds_older_than_the_three_newest_complete(tmp_path, small_orders):
    dirs = [build(tmp_path, small_orders, i, f"b{i}") for i in range(1, 6)]
    crashed = build(tmp_path, small_orders, 0, "crashed", write_success=False)
    in_progress = build(tmp_path, small_orders, 9, "running", write_success=False)
    backend = LocalBackend(tmp_path, keep_builds=3)
    backend.refresh()
    assert backend.snapshot().build_id == "b5"
    remaining = sorted(p.name for p in (tmp_path / "marts" / "builds").iterdir())
    assert remaining == sorted([dirs[2].name, dirs[3].name, dirs[4].name, in_progress.name])
    assert not crashed.exists()


def test_checks_at_most_every_reload_interval(tmp_path, small_orders):
    now = [0.0]
    backend = LocalBackend(tmp_path, reload_interval=2.0, clock=lambda: now[0])
    assert backend.snapshot() is None
    build(tmp_path, small_orders, 1, "b1")
    now[0] = 1.0
    assert backend.snapshot() is None  # not looked yet
    now[0] = 2.5
    assert backend.snapshot().build_id == "b1"


def test_refuses_an_s3_lake():
    with pytest.raises(ValueError):
        LocalBackend("s3://bucket/lake")


def test_a_build_with_impossible_values_is_skipped_not_retried_forever(tmp_path, small_orders):
    import pyarrow as pa
    import pyarrow.parquet as pq

    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "nulls")
    path = bad / "mart_client_sales.parquet"
    table = pq.read_table(path)
    spend = table.schema.get_field_index("total_spend")
    nulls = pa.nulls(len(table), table.schema.field(spend).type)
    pq.write_table(table.set_column(spend, "total_spend", nulls), path)
    backend = LocalBackend(tmp_path)
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "good"
    assert backend.refresh() is False  # remembered as bad


# -- mart_orders as one file per day (docs/architecture.md section 2) ------------------------


def split_into_days(build_dir, *, link_from=None):
    """Turn a written build's mart_orders.parquet into mart_orders/pa_date=<day>/<file>, each
    sorted by order_id, as the dbt export writes it; days in ``link_from`` (day -> a file of
    another build) are hard links of that file instead."""
    import os

    import duckdb

    single = build_dir / "mart_orders.parquet"
    (build_dir / "mart_orders").mkdir()
    con = duckdb.connect()
    days = [r[0] for r in con.execute(f"select distinct pa_date from '{single}'").fetchall()]
    for day in days:
        folder = build_dir / "mart_orders" / f"pa_date={day.isoformat()}"
        folder.mkdir(parents=True)
        if link_from and day in link_from:
            os.link(link_from[day], folder / "linked.parquet")
            continue
        con.execute(
            f"copy (select * from '{single}' where pa_date = date '{day}' order by order_id) "
            f"to '{folder}/part.parquet' (format parquet)"
        )
    con.close()
    single.unlink()
    folder = build_dir / "mart_orders"
    return {d: folder / f"pa_date={d.isoformat()}" / "part.parquet" for d in days}


def every_order(backend):
    from api.service import OrderFilter

    return backend.snapshot().orders_page(OrderFilter(), None, 10_000)


def test_a_per_day_build_serves_the_same_orders_as_a_single_file(tmp_path, small_orders):
    # Given the same orders exported as one file (the earlier layout) and as per-day files
    single_lake, daily_lake = tmp_path / "single", tmp_path / "daily"
    build(single_lake, small_orders, 1, "single")
    split_into_days(build(daily_lake, small_orders, 1, "daily"))
    one, daily = LocalBackend(single_lake), LocalBackend(daily_lake)
    assert one.refresh() and daily.refresh()
    # Then every order is served, once, sorted by order_id, with the same values
    rows = every_order(daily)
    assert len(rows) == small_orders.num_rows
    assert [r[0] for r in rows] == sorted(small_orders.column("order_id").to_pylist())
    assert rows == every_order(one)
    # and the pre-rendered JSON path agrees with the rows
    from api.service import OrderFilter

    pairs = daily.snapshot().orders_json_page(OrderFilter(), None, 10_000)
    assert [p[0] for p in pairs] == [r[0] for r in rows]


def test_an_empty_orders_directory_is_a_build_with_no_orders(tmp_path):
    # Given a build of an empty lake: mart_orders/ exists and holds no file
    from api.fake_marts import make_orders

    empty = make_orders(0, clients=1, products=1, days=1, seed=1)
    out = build(tmp_path, empty, 1, "empty")
    split_into_days(out)
    assert list((out / "mart_orders").iterdir()) == []
    backend = LocalBackend(tmp_path)
    # When served / Then it loads with zero orders
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "empty"
    assert every_order(backend) == []


def test_a_build_without_any_mart_orders_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    (build(tmp_path, small_orders, 2, "no-orders") / "mart_orders.parquet").unlink()
    backend = LocalBackend(tmp_path)
    backend.refresh()
    assert backend.snapshot().build_id == "good"


def test_a_corrupt_day_file_makes_the_build_unservable(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    files = split_into_days(build(tmp_path, small_orders, 2, "bad-day"))
    next(iter(files.values())).write_bytes(b"not parquet")
    backend = LocalBackend(tmp_path)
    backend.refresh()
    assert backend.snapshot().build_id == "good"


def test_pruning_a_build_keeps_the_days_a_newer_build_hard_linked(tmp_path, small_orders):
    # Given build 1 per day, and builds 2..4 whose days are hard links of build 1's files
    first = split_into_days(build(tmp_path, small_orders, 1, "b1"))
    for i in range(2, 5):
        split_into_days(build(tmp_path, small_orders, i, f"b{i}"), link_from=first)
    backend = LocalBackend(tmp_path, keep_builds=3)
    # When b4 is served, b1 is pruned
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "b4"
    assert not any(p.exists() for p in first.values())
    # Then a new backend still loads b4 from its own links, with every order
    again = LocalBackend(tmp_path)
    assert again.refresh() is True
    assert len(every_order(again)) == small_orders.num_rows
