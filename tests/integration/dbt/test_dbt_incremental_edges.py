"""Incremental builds in the situations a schedule meets: part of the DAG run alone, a batch
whose tests failed, a clock that stepped back, and an order re-sent twice while the rollups
waited.

Each case compares the served marts after the incremental build with figures computed here
in Python from the rows the test landed (never read back from the warehouse).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import RAW_SCHEMA, Order, RawLake, failed_tests
from .conftest import warehouse_execute as execute
from .conftest import warehouse_query as query

pytestmark = pytest.mark.slow  # minutes of dbt builds: scheduled first under xdist

UTC = dt.UTC
D = dt.date
BASE = [
    Order(1, 10, "Moe", 100, "Duff", "1.50", 2, "0.330", "Retail", "created", D(2024, 3, 1)),
    Order(2, 11, "Barney", 100, "Duff", "1.50", 5, "0.330", "Online", "delivered", D(2024, 3, 2)),
]
# one more order of Moe's, on a new day (2024-03-12)
NEW_DAY = [
    Order(21, 10, "Moe", 100, "Duff", "1.50", 3, "0.330", "Retail", "created", D(2024, 3, 12)),
]


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, tzinfo=UTC)


def expected_daily(lake: RawLake) -> list[tuple]:
    days: dict[dt.date, list] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for row in lake.latest_versions().values():
        d = days[row["pa_date"]]
        d[0] += 1
        d[1] += row["product_ccf"]
        d[2] += row["total_liters"]
        d[3] += row["total_amount"]
    return sorted((day, *v) for day, v in days.items())


def expected_clients(lake: RawLake) -> list[tuple]:
    clients: dict[int, list] = defaultdict(lambda: [0, Decimal(0)])
    for row in lake.latest_versions().values():
        clients[row["client_id"]][0] += 1
        clients[row["client_id"]][1] += row["total_amount"]
    return sorted((cid, *v) for cid, v in clients.items())


def assert_marts_match(lake: RawLake) -> None:
    assert query(lake, "select * from mart_daily_sales order by pa_date") == expected_daily(lake)
    assert query(
        lake, "select client_id, orders, total_spend from mart_client_sales order by 1"
    ) == expected_clients(lake)
    products = {row["product_id"] for row in lake.latest_versions().values()}
    assert {r[0] for r in query(lake, "select product_id from mart_product_sales")} == products


def test_part_of_the_dag_run_alone_then_a_build_serves_every_order(dbt_project_factory):
    # Given a build, then a new client and product landed and only `fact_orders+` run
    project = dbt_project_factory("dbt_partial_dag")
    lake = RawLake(project.lake)
    lake.land(BASE, at(8))
    project.run("build")
    lake.land(
        [
            Order(
                20,
                30,
                "Lenny",
                300,
                "Duff Red",
                "2.00",
                4,
                "0.500",
                "B2B",
                "created",
                D(2024, 3, 10),
            ),
            Order(
                22, 10, "Moe", 100, "Duff", "1.50", 1, "0.330", "Retail", "created", D(2024, 3, 10)
            ),
        ],
        at(9),
    )
    # the dimensions are downstream of the fact, so the selection builds them too
    project.run("run", "-s", "fact_orders+")
    # When another order lands and the scheduled build runs
    lake.land(NEW_DAY, at(11))
    project.run("build")
    # Then client 30, product 300 and both orders of 2024-03-10 are served
    assert_marts_match(lake)
    assert project.run("test", "--vars", "{data_tests_scope: all}").returncode == 0


def test_a_batch_whose_tests_failed_is_tested_again_by_the_next_build(dbt_project_factory):
    # Given a build, then a hand-written file whose row has no ingest_id: the build fails
    project = dbt_project_factory("dbt_failed_batch")
    lake = RawLake(project.lake)
    lake.land(BASE, at(8))
    project.run("build")
    row = {
        "order_id": 40, "client_id": 10, "client_name": "Moe", "product_id": 100,
        "product_description": "Duff", "product_price": Decimal("1.50"), "product_ccf": 1,
        "product_volume": Decimal("0.330"), "point_of_sale_channel": "Retail",
        "status": "created", "order_date": D(2024, 3, 11), "total_amount": Decimal("1.50"),
        "total_liters": Decimal("0.330"), "source_file": "/landing/broken.csv",
        "source_line": 2, "ingest_id": None, "landed_at": at(10),
    }  # fmt: skip
    folder = lake.root / "raw" / "orders" / "pa_date=2024-03-11"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=RAW_SCHEMA), folder / "broken-0.parquet")
    first = project.run("build", check=False)
    assert first.returncode != 0
    failed = failed_tests(first.output)
    assert any(t.startswith("not_null_in_batch_fact_orders_ingest_id") for t in failed)
    # When an unrelated, valid batch lands and the next build runs
    lake.land(NEW_DAY, at(11))
    second = project.run("build", check=False)
    # Then the failed batch is tested again (and still fails) instead of being let through
    assert second.returncode != 0
    failed = failed_tests(second.output)
    assert any(t.startswith("not_null_in_batch_fact_orders_ingest_id") for t in failed)


def test_a_clock_that_stepped_back_loses_no_batch(dbt_project_factory):
    # Given two builds whose stored batch stamps are an hour ahead of this machine's clock
    project = dbt_project_factory("dbt_clock_back")
    lake = RawLake(project.lake)
    lake.land(BASE, at(8))
    project.run("build")
    lake.land(
        [
            Order(
                3, 12, "Lenny", 101, "Duff Dry", "2.00", 1, "0.500", "B2B", "broken", D(2024, 3, 5)
            )
        ],
        at(9),
    )
    project.run("build")
    for table in (
        "fact_orders",
        "fact_orders__change_log",
        "agg_sales__daily",
        "agg_sales__by_client",
    ):
        execute(lake, f"update {table} set merged_at = merged_at + interval 1 hour")
    # When an order lands on a new day and the next build runs
    lake.land(
        [
            Order(
                50,
                11,
                "Barney",
                100,
                "Duff",
                "1.50",
                7,
                "0.330",
                "Retail",
                "created",
                D(2024, 3, 20),
            )
        ],
        at(12),
    )
    project.run("build")
    # Then its batch sorts after the others and every mart has it
    stamps = query(lake, "select merged_at from fact_orders where order_id = 50")
    assert (
        stamps[0][0]
        > query(lake, "select max(merged_at) from fact_orders where order_id < 50")[0][0]
    )
    assert_marts_match(lake)


def test_an_order_re_sent_twice_while_the_rollups_wait_is_counted_once(dbt_project_factory):
    # Given a build, then order 1 re-sent to another day, client and product, merged into
    # the fact and its change log while the rollups were left out of the run
    project = dbt_project_factory("dbt_resent_twice")
    lake = RawLake(project.lake)
    lake.land(BASE, at(8))
    project.run("build")
    lake.land(
        [
            Order(
                1, 11, "Barney", 101, "Duff Dry", "2.00", 4, "0.500", "B2B", "broken", D(2024, 3, 7)
            )
        ],
        at(9),
    )
    project.run("run", "-s", "fact_orders", "fact_orders__change_log")
    # When it is re-sent once more (back to Moe, a third day) and the scheduled build runs
    lake.land(
        [
            Order(
                1, 10, "Moe", 100, "Duff", "1.50", 6, "0.330", "Online", "delivered", D(2024, 3, 9)
            )
        ],
        at(10),
    )
    project.run("build")
    # Then the rollups subtracted the version they had counted (the first), not the one in
    # between, and every mart matches the latest versions
    assert_marts_match(lake)
    assert query(lake, "select count(*) from agg_sales__daily where pa_date = '2024-03-07'") == [
        (0,)
    ]


def test_an_incremental_read_skips_older_files_by_name_and_reads_unstamped_ones(
    dbt_project_factory,
):
    # Given a build, then files with rows landed after it: one landed normally, one whose
    # name claims an older landing than its rows (landing never writes such a name), one
    # whose name carries no landing stamp but sorts below every stamp, and, named as landed
    # before the cutoff, one that is not Parquet at all
    project = dbt_project_factory("dbt_file_names")
    lake = RawLake(project.lake)
    lake.land(BASE, at(8))
    project.run("build")
    lake.land(NEW_DAY, at(12))

    def plant(order_id: int, name: str, stamped: dt.datetime) -> None:
        row = {
            "order_id": order_id, "client_id": 10, "client_name": "Moe", "product_id": 100,
            "product_description": "Duff", "product_price": Decimal("1.50"), "product_ccf": 1,
            "product_volume": Decimal("0.330"), "point_of_sale_channel": "Retail",
            "status": "created", "order_date": D(2024, 3, 12), "total_amount": Decimal("1.50"),
            "total_liters": Decimal("0.330"), "source_file": f"/landing/{name}.csv",
            "source_line": 2, "ingest_id": f"{name}-{order_id}", "landed_at": at(12),
        }  # fmt: skip
        folder = lake.root / "raw" / "orders" / "pa_date=2024-03-12"
        pq.write_table(pa.Table.from_pylist([row], schema=RAW_SCHEMA), folder / f"{name}-0.parquet")
        # with a manifest as its name tells the landing (stamped and published at `stamped`;
        # the build's conservation of deliveries fails raw rows of no landing)
        lake.publish_manifest(
            row["ingest_id"], row["source_file"], stamped, {D(2024, 3, 12): [row]}, stamped
        )

    # stamped 2024-03-08 08:00, before the cutoff (the build's newest landing, 10:00, less
    # the 60-minute lookback)
    old_stamp = at(8, 8).strftime("%Y%m%dT%H%M%S%fZ")
    plant(30, f"{old_stamp}-{30:012x}", at(8, 8))
    plant(31, "0-manual", at(12))
    # (on a day no order of the batch sits on: the conservation test reads those days whole)
    garbage = (
        lake.root / "raw" / "orders" / "pa_date=2024-03-05" / f"{old_stamp}-{1:012x}-0.parquet"
    )
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not parquet")

    # When the next build runs
    project.run("build")

    # Then the incremental read trusted the names: it skipped the files named as landed
    # before its cutoff without opening them (the build would fail on the garbage file),
    # and read the unstamped one
    ids = [r[0] for r in query(lake, "select order_id from fact_orders order by 1")]
    assert ids == [1, 2, 21, 31]
    # and a full build, which reads every file, has the skipped order too
    garbage.unlink()
    project.run("build", "--full-refresh")
    ids = [r[0] for r in query(lake, "select order_id from fact_orders order by 1")]
    assert ids == [1, 2, 21, 30, 31]


def test_a_landing_published_long_after_its_stamp_reaches_every_model(dbt_project_factory):
    # Given two landings, each published five minutes after its stamp, and a build after each
    project = dbt_project_factory("dbt_late_landing")
    lake = RawLake(project.lake)
    march8 = dt.datetime(2024, 3, 8, tzinfo=UTC)
    h = dt.timedelta(hours=1)
    lake.land(BASE, march8 + 8 * h, published=march8 + 8 * h + dt.timedelta(minutes=5))
    project.run("build")
    lake.land(NEW_DAY, march8 + 12 * h, published=march8 + 12 * h + dt.timedelta(minutes=5))
    project.run("build")
    # When a landing stamped 09:00 (a stream batch stamped with its records' arrival, its
    # Lambda retrying for four hours; a large file landed from a laptop) is published at
    # 13:00, after the last build read the lake: a new client and product, and order 2
    # re-sent with a new status (newer than its 08:00 version)
    lake.land(
        [
            Order(60, 40, "Lenny", 102, "Duff Lite", "1.25", 4, "0.330", "B2B", "created",
                  D(2024, 3, 15)),
            Order(2, 11, "Barney", 100, "Duff", "1.50", 5, "0.330", "Online", "broken",
                  D(2024, 3, 2)),
        ],
        march8 + 9 * h,
        published=march8 + 13 * h,
    )  # fmt: skip
    project.run("build")
    # Then the next build merged it, older than the cutoff (12:00 less the 60-minute
    # lookback) though it is: the fact, the dims and every mart have its rows
    assert query(lake, "select order_id from fact_orders order by 1") == [(1,), (2,), (21,), (60,)]
    assert query(
        lake,
        "select s.status from fact_orders as f join dim_status as s using (status_key) "
        "where f.order_id = 2",
    ) == [("broken",)]
    assert query(lake, "select client_name from dim_clients where client_id = 40") == [("Lenny",)]
    assert query(lake, "select product_description from dim_products where product_id = 102") == [
        ("Duff Lite",)
    ]
    assert_marts_match(lake)
    # and each incremental model read back to just before that landing's stamp, no further
    # (the 08:00 landing, published before the last build read the lake, moved no cutoff)
    just_before = "landed_at > cast('2024-03-08 08:59:59.999999+00' as timestamptz)"
    compiled = project.work / "target" / "compiled" / "duff" / "models" / "marts" / "core"
    for model in ("fact_orders", "dim_clients", "dim_products"):
        ran = (compiled / f"{model}.sql").read_text()
        assert just_before in ran, (model, ran)


@pytest.mark.parametrize("lookback", [None, 0], ids=["default-lookback", "no-lookback"])
def test_a_landing_stamped_in_the_future_hides_no_later_landing(dbt_project_factory, lookback):
    # Given a build, then a landing from a host whose clock runs two hours fast (its stamp
    # and its manifest's time ahead of every clock here): a new order and a re-send. Without
    # a lookback (a daily build's cutoff is about a day past its last landings) only the
    # previous build's start tells the landings it read from those it did not.
    project = dbt_project_factory(f"dbt_future_stamp_{lookback}")
    lake = RawLake(project.lake)
    args = [] if lookback is None else ["--vars", f"{{fact_orders_lookback_minutes: {lookback}}}"]

    def now() -> dt.datetime:
        return dt.datetime.now(UTC)

    lake.land(BASE, now() - dt.timedelta(hours=3))
    project.run("build", *args)
    lake.land(
        [
            Order(3, 12, "Lenny", 101, "Duff Dry", "2.00", 2, "0.500", "B2B", "delivered",
                  D(2024, 3, 5)),
            Order(1, 10, "Moe", 100, "Duff", "1.50", 4, "0.330", "Retail", "delivered",
                  D(2024, 3, 1)),
        ],
        now() + dt.timedelta(hours=2),
    )  # fmt: skip
    project.run("build", *args)
    # When later landings are stamped honestly, when they land: a new order on a new day,
    # a re-send of order 2 to another day, each followed by a build
    lake.land([NEW_DAY[0]], now())
    project.run("build", *args)
    lake.land(
        [Order(2, 11, "Barney", 100, "Duff", "1.50", 9, "0.330", "Online", "delivered",
               D(2024, 3, 9))],
        now(),
    )  # fmt: skip
    project.run("build", *args)
    # Then every mart serves the latest version of every order (the greatest landed_at)
    assert_marts_match(lake)
    assert query(lake, "select order_id, units, pa_date from fact_orders order by 1") == [
        (1, 4, D(2024, 3, 1)),
        (2, 9, D(2024, 3, 9)),
        (3, 2, D(2024, 3, 5)),
        (21, 3, D(2024, 3, 12)),
    ]
    # And the whole-table tests agree
    assert project.run("test", "--vars", "{data_tests_scope: all}").returncode == 0
