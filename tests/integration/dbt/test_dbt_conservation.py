"""The conservation test (tests/singular/assert_raw_rows_conserved.sql) catches a fact that
lost a row or kept a superseded version.

It only self-joins the versions of orders landed more than once (the cheap form); this proves
that form still fails on both kinds of damage, so it is not a test that cannot fail. And
tests/singular/assert_fact_rows_are_served.sql fails a build whose fact holds an order on an
unknown member, which every served relation would leave out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from .conftest import Order, RawLake, failed_tests, warehouse_query
from .conftest import warehouse_execute as execute

pytestmark = pytest.mark.slow  # minutes of dbt builds: scheduled first under xdist

UTC = dt.UTC
D = dt.date
T1 = dt.datetime(2024, 4, 1, 8, 0, tzinfo=UTC)
T2 = dt.datetime(2024, 4, 2, 8, 0, tzinfo=UTC)
BASE = [
    Order(1, 10, "Moe", 100, "Duff", "1.50", 2, "0.330", "Retail", "created", D(2024, 3, 30)),
    Order(2, 11, "Barney", 100, "Duff", "1.50", 5, "0.330", "Online", "created", D(2024, 3, 30)),
    Order(3, 10, "Moe", 101, "Duff Dry", "2.00", 3, "0.500", "B2B", "created", D(2024, 3, 31)),
]
# order 2 re-sent: delivered, on a later day
RESENT = [
    Order(2, 11, "Barney", 100, "Duff", "1.50", 5, "0.330", "Online", "delivered", D(2024, 4, 1)),
]
# a new order of the second landing
NEW_ORDER = Order(
    4, 12, "Lenny", 101, "Duff Dry", "2.00", 1, "0.500", "Retail", "created", D(2024, 4, 2)
)
TEST = ("test", "--select", "assert_raw_rows_conserved")


def leave_stale_copy(lake: RawLake, order_id: int, ingest_id: str, source_line: int) -> None:
    """Copy the fact's row of `order_id` back as an older version (`ingest_id`, `source_line`)
    on its old day, 2024-03-30, stamped with the oldest batch: what a delete+insert that
    forgot the delete would leave."""
    execute(
        lake,
        "insert into fact_orders select * replace ("
        f"'{ingest_id}' as ingest_id, {source_line} as source_line, "
        "date '2024-03-30' as pa_date, (select min(merged_at) from fact_orders) as merged_at) "
        f"from fact_orders where order_id = {order_id}",
    )


def put_back_first_version_of_order_2(
    lake: RawLake, first_ingest: str, landed_at: dt.datetime | None = None
) -> None:
    """Put the fact's row of order 2 back to its first version (BASE's line 3 on its old
    day; with `landed_at`, that version's landing time too), keeping the row's batch stamp:
    what a merge that kept the older version leaves."""
    landed = f", landed_at = '{landed_at.isoformat()}'" if landed_at else ""
    execute(
        lake,
        f"update fact_orders set ingest_id = '{first_ingest}', source_line = 3, "
        f"pa_date = date '2024-03-30'{landed} where order_id = 2",
    )


def compiled_conservation_test(work: Path) -> str:
    """The SQL the last run compiled for the conservation test."""
    return (
        work / "target" / "compiled" / "duff" / "tests" / "singular"
        / "assert_raw_rows_conserved.sql"
    ).read_text()  # fmt: skip


def test_conservation_fails_on_a_superseded_fact_row_and_on_a_lost_row(dbt_project_factory):
    # Given three orders, one of them re-sent later, built once (the test passes)
    project = dbt_project_factory("dbt_conservation")
    lake = RawLake(project.lake)
    first_ingest = lake.land(BASE, T1)
    lake.land(RESENT, T2)
    project.run("build")
    assert project.run(*TEST).returncode == 0

    # When the fact's row of order 2 is put back to its superseded first version
    put_back_first_version_of_order_2(lake, first_ingest)
    # Then the conservation test fails
    stale = project.run(*TEST, check=False)
    assert stale.returncode != 0 and "FAIL 1" in stale.output, stale.output[-3000:]

    # When that is undone but order 1 (landed once) disappears from the fact
    lake_rows = lake.latest_versions()[2]
    execute(
        lake,
        f"update fact_orders set ingest_id = '{lake_rows['ingest_id']}', "
        f"source_line = {lake_rows['source_line']}, pa_date = date '2024-04-01' "
        "where order_id = 2",
    )
    assert project.run(*TEST).returncode == 0
    execute(lake, "delete from fact_orders where order_id = 1")
    # Then it fails again: raw rows != fact rows + superseded rows
    lost = project.run(*TEST, check=False)
    assert lost.returncode != 0 and "FAIL 1" in lost.output, lost.output[-3000:]


def test_incremental_runs_test_the_latest_batch_and_still_catch_a_stale_copy(
    dbt_project_factory,
):
    # Given a first build, then order 2 re-sent to a later day and an incremental build:
    # the data tests of fact_orders and mart_orders now cover the latest batch only
    project = dbt_project_factory("dbt_batch_scope")
    lake = RawLake(project.lake)
    first_ingest = lake.land(BASE, T1)
    project.run("build")
    lake.land(RESENT, T2)
    project.run("build")
    assert project.run("test").returncode == 0

    # When order 3 (not in the batch) loses its client key: the batch-scoped tests do not
    # read its row, and the whole-table run does
    execute(lake, "update fact_orders set client_key = null where order_id = 3")
    assert project.run("test").returncode == 0
    whole = project.run("test", "--vars", "{data_tests_scope: all}", check=False)
    assert whole.returncode != 0
    assert any("not_null_in_batch_fact_orders_client_key" in t for t in failed_tests(whole.output))
    execute(lake, "update fact_orders set client_key = md5('10') where order_id = 3")
    assert project.run("test", "--vars", "{data_tests_scope: all}").returncode == 0

    # When a stale copy of re-sent order 2 is left on its old day (as a delete+insert that
    # forgot the delete would), with the old batch's stamp
    leave_stale_copy(lake, order_id=2, ingest_id=first_ingest, source_line=3)
    # Then the batch-scoped unique tests of the fact and mart_orders and the conservation
    # test all fail on it
    stale = project.run("test", check=False)
    failed = failed_tests(stale.output)
    assert stale.returncode != 0
    assert any(t.startswith("unique_in_batch_fact_orders_order_id") for t in failed), failed
    assert any(t.startswith("unique_in_batch_mart_orders_order_id") for t in failed), failed
    assert "assert_raw_rows_conserved" in failed, failed


def test_a_file_landing_while_the_build_runs_is_left_to_the_next_build(dbt_project_factory):
    # Given a first build, then order 2 re-sent (delivered, a later day)
    project = dbt_project_factory("dbt_conservation_mid_build")
    lake = RawLake(project.lake)
    lake.land(BASE, T1)
    project.run("build")
    lake.land(RESENT, T2)
    # When the build's models run (the fact merges that re-send), and before its tests run
    # another file lands: order 2 re-sent again (broken, B2B, on the day the build's batch
    # wrote it to, which the batch-scoped tests read) and a new order 4
    project.run("run")
    late = [
        Order(2, 11, "Barney", 100, "Duff", "1.50", 5, "0.330", "B2B", "broken", D(2024, 4, 1)),
        Order(4, 12, "Lenny", 101, "Duff Dry", "2.00", 1, "0.500", "Retail", "created", T2.date()),
    ]
    lake.land(late, dt.datetime.now(UTC))
    # Then that build's tests pass: the late file is not yet the fact's business
    during = project.run("test", check=False)
    assert during.returncode == 0, failed_tests(during.output)

    # And the next build merges it: every order at its latest version, on its latest day,
    # and the conservation test over whole tables passes
    project.run("build")
    assert project.run(*TEST, "--vars", "{data_tests_scope: all}").returncode == 0
    fact = warehouse_query(
        lake, "select order_id, ingest_id, source_line, pa_date from fact_orders"
    )
    assert sorted(fact) == sorted(
        (order_id, v["ingest_id"], v["source_line"], v["pa_date"])
        for order_id, v in lake.latest_versions().items()
    )
    assert {r[0] for r in fact} == {1, 2, 3, 4}


def test_an_incremental_run_catches_a_row_its_batch_lost(dbt_project_factory):
    # Given a first build, then a new order 4 and order 2 re-sent, and an incremental build:
    # the conservation test covers the latest batch only
    project = dbt_project_factory("dbt_lost_in_batch")
    lake = RawLake(project.lake)
    lake.land(BASE, T1)
    project.run("build")
    lake.land([*RESENT, NEW_ORDER], T2)
    project.run("build")
    assert project.run(*TEST).returncode == 0

    # When the batch loses new order 4 as a merge that dropped it would: no row in the fact,
    # none in the change log (so the fact's batch no longer names it)
    execute(lake, "delete from fact_orders where order_id = 4")
    execute(lake, "delete from fact_orders__change_log where order_id = 4")
    # Then the batch-scoped conservation test fails: it finds the order by its landed version
    lost = project.run(*TEST, check=False)
    assert lost.returncode != 0 and "FAIL 1" in lost.output, lost.output[-3000:]
    # and checking every order says the same
    whole = project.run(*TEST, "--vars", "{data_tests_scope: all}", check=False)
    assert whole.returncode != 0, whole.output[-3000:]


def test_a_batch_of_consecutive_new_ids_is_scoped_by_a_range_and_still_caught(
    dbt_project_factory,
):
    # Given a first build, then a batch of 1,200 new orders with consecutive ids (a day's
    # new orders) and re-sent order 2, and an incremental build
    project = dbt_project_factory("dbt_batch_ranges")
    lake = RawLake(project.lake)
    first_ingest = lake.land(BASE, T1)
    project.run("build")
    new_orders = [
        Order(1000 + i, 10 + i % 3, "Moe", 100, "Duff", "1.50", 1, "0.330", "Retail",
              "created", D(2024, 4, 2))
        for i in range(1200)
    ]  # fmt: skip
    lake.land([*RESENT, *new_orders], T2)
    project.run("build")
    assert project.run("test").returncode == 0
    # Then mart_orders' order-scoped tests read the run as one range and order 2 as a literal
    compiled = next((project.work / "target" / "run").rglob("unique_in_batch_mart_orders_*.sql"))
    scope = compiled.read_text()
    assert "order_id between 1000 and 2199" in scope and "order_id in (2)" in scope, scope

    # When a stale copy of an order inside the range is left behind with the old stamp
    leave_stale_copy(lake, order_id=1500, ingest_id=first_ingest, source_line=9)
    # Then the unique tests of the fact and of mart_orders fail on it
    failed = failed_tests(project.run("test", check=False).output)
    assert any(t.startswith("unique_in_batch_fact_orders_order_id") for t in failed), failed
    assert any(t.startswith("unique_in_batch_mart_orders_order_id") for t in failed), failed
    # And with the stale copy on order 2 instead (the literal list), the same
    execute(lake, "delete from fact_orders where order_id = 1500 and source_line = 9")
    assert project.run("test").returncode == 0
    leave_stale_copy(lake, order_id=2, ingest_id=first_ingest, source_line=3)
    failed = failed_tests(project.run("test", check=False).output)
    assert any(t.startswith("unique_in_batch_fact_orders_order_id") for t in failed), failed
    assert any(t.startswith("unique_in_batch_mart_orders_order_id") for t in failed), failed


def test_an_incremental_run_reads_the_window_alone_and_catches_an_older_version_kept(
    dbt_project_factory,
):
    # Given a first build, then order 2 re-sent (delivered, a later day) and a new order 4,
    # and an incremental build: the batch-scoped conservation test passes
    project = dbt_project_factory("dbt_conservation_window")
    lake = RawLake(project.lake)
    first_ingest = lake.land(BASE, T1)
    project.run("build")
    lake.land([*RESENT, NEW_ORDER], T2)
    project.run("build")
    assert project.run(*TEST).returncode == 0
    # and it reads only the batch's window: not the first landing's files, where order 2's
    # older version sits (its old day is not among the days it reads)
    compiled = compiled_conservation_test(project.work)
    assert "pa_date in (" not in compiled, compiled
    assert T1.strftime("%Y%m%dT%H%M%S%fZ") in compiled  # the window starts after the first landing

    # When the fact's row of order 2 goes back to its older version (first landing, line 3,
    # its old day), still stamped with the batch: a merge that kept the older version
    put_back_first_version_of_order_2(lake, first_ingest)
    # Then the batch-scoped test fails on it (the fact row is no version in the window),
    # and checking every order says the same
    kept = project.run(*TEST, check=False)
    assert kept.returncode != 0 and "FAIL 1" in kept.output, kept.output[-3000:]
    whole = project.run(*TEST, "--vars", "{data_tests_scope: all}", check=False)
    assert whole.returncode != 0, whole.output[-3000:]


def test_a_batch_row_landed_before_the_window_is_checked_against_its_older_versions(
    dbt_project_factory,
):
    # Given a first build, a build of a later landing (new order 4 at T2 + 30 min), then a
    # file stamped earlier (T2) but published after that build: order 2 re-sent. The next
    # build's lookback (60 minutes) merges it, so the batch holds a row landed before the
    # batch's window (which starts after order 4's landing)
    project = dbt_project_factory("dbt_conservation_late_row")
    lake = RawLake(project.lake)
    first_ingest = lake.land(BASE, T1)
    project.run("build")
    lake.land([NEW_ORDER], T2 + dt.timedelta(minutes=30))
    project.run("build")
    lake.land(RESENT, T2)
    # (the fact alone first: the test must not need the change log, which is then behind)
    project.run("run", "--select", "fact_orders")
    assert project.run(*TEST).returncode == 0
    project.run("build")
    fact = dict(warehouse_query(lake, "select order_id, ingest_id from fact_orders"))
    assert fact[2] != first_ingest  # the late re-send was merged
    # Then the conservation test also reads that order's versions landed since that row
    # (T2), and passes: without them the fact's row would count as a row no landed version
    # accounts for
    assert project.run(*TEST).returncode == 0
    since = (T2 - dt.timedelta(microseconds=1)).strftime("%Y%m%dT%H%M%S%fZ")
    assert since in compiled_conservation_test(project.work)

    # When the fact's row of order 2 goes back to its first version (landed at T1), still
    # in the batch: a merge that kept the older version
    put_back_first_version_of_order_2(lake, first_ingest, landed_at=T1)
    # Then it fails: that row landed before the window too, so the test reads the order's
    # versions since T1, and the re-send supersedes the row the fact holds
    kept = project.run(*TEST, check=False)
    assert kept.returncode != 0 and "FAIL 1" in kept.output, kept.output[-3000:]


def test_a_fact_row_on_an_unknown_member_fails_the_build_instead_of_vanishing(
    dbt_project_factory,
):
    # Given three orders built once, then order 3 re-sent with a status no seed lists,
    # written into the lake by hand (the ingestion would have rejected the row)
    project = dbt_project_factory("dbt_unknown_member")
    lake = RawLake(project.lake)
    lake.land(BASE, T1)
    project.run("build")
    lake.land([dataclasses.replace(BASE[2], status="shipped")], T2)
    # When the next build runs
    result = project.run("build", check=False)
    # Then it fails on that order, which the fact holds on the unknown status and every
    # served relation leaves out (the relationships tests pass: the unknown member exists)
    assert result.returncode != 0
    failed = failed_tests(result.output)
    assert any(name.startswith("assert_fact_rows_are_served") for name in failed), failed
    assert not any(name.startswith("relationships_in_batch") for name in failed), failed
    assert warehouse_query(lake, "select order_id from fact_orders order by 1") == [
        (1,), (2,), (3,)
    ]  # fmt: skip
    assert warehouse_query(lake, "select order_id from mart_orders order by 1") == [(1,), (2,)]
