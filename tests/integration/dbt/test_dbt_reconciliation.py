"""Two checks the conservation test does not make: each fact row is the landed version it
names, value for value (tests/singular/assert_fact_rows_are_their_versions.sql), and the
rollups kept by difference equal a recomputation from the fact
(tests/singular/assert_rollups_match_the_fact.sql). Each tampers with a warehouse and sees
its test fail. (A file of its own: pytest-xdist runs a file on one worker, and the
conservation file was the longest.)"""

from __future__ import annotations

import datetime as dt

import pytest

from .conftest import Order, RawLake
from .conftest import warehouse_execute as execute
from .test_dbt_conservation import BASE, NEW_ORDER, RESENT, T1, T2

pytestmark = pytest.mark.slow  # minutes of dbt builds: scheduled first under xdist

D = dt.date

VALUES_TEST = ("test", "--select", "assert_fact_rows_are_their_versions")


def test_a_fact_row_that_is_not_its_version_value_for_value_fails(dbt_project_factory):
    # Given a first build, then a new order and order 2 re-sent: an incremental build
    project = dbt_project_factory("dbt_fact_values")
    lake = RawLake(project.lake)
    lake.land(BASE, T1)
    project.run("build")
    lake.land([*RESENT, NEW_ORDER], T2)
    project.run("build")
    assert project.run(*VALUES_TEST).returncode == 0

    def fails(update: str, *extra: str) -> bool:
        execute(lake, "create or replace table fact_backup as select * from fact_orders")
        execute(lake, update)
        run = project.run(*VALUES_TEST, *extra, check=False)
        execute(lake, "delete from fact_orders")
        execute(lake, "insert into fact_orders select * from fact_backup")
        return run.returncode != 0 and "FAIL 1" in run.output

    # When a batch row moves to another partition, or its units, or its status, change,
    # or it names a version that never landed: Then the test fails on each
    assert fails("update fact_orders set pa_date = date '2024-01-01' where order_id = 4")
    assert fails("update fact_orders set units = units + 7 where order_id = 2")
    assert fails(
        "update fact_orders set status_key = (select status_key from dim_status"
        " where status = 'broken') where order_id = 2"
    )
    assert fails("update fact_orders set source_line = 99 where order_id = 4")
    # An older row (order 3, not in the batch) is read by the whole-table run only
    older = "update fact_orders set total_amount = total_amount + 1000 where order_id = 3"
    assert not fails(older)
    assert fails(older, "--vars", "{data_tests_scope: all}")
    # and the untouched fact passes both ways
    assert project.run(*VALUES_TEST, "--vars", "{data_tests_scope: all}").returncode == 0


ROLLUPS_TEST = ("test", "--select", "assert_rollups_match_the_fact")
ALL = ("--vars", "{data_tests_scope: all}")


def test_the_rollups_kept_by_difference_equal_the_fact_and_drift_fails(dbt_project_factory):
    # Given three builds: order 2 re-sent to another day and status, then a new order and
    # order 2 again (the rollups subtract and add versions twice)
    project = dbt_project_factory("dbt_rollups_match")
    lake = RawLake(project.lake)
    lake.land(BASE, T1)
    project.run("build")
    lake.land(RESENT, T2)
    project.run("build")
    again = Order(2, 11, "Barney", 100, "Duff", "1.50", 9, "0.330", "B2B", "broken", D(2024, 4, 3))
    lake.land([again, NEW_ORDER], T2 + dt.timedelta(days=1))
    project.run("build")
    # Then the rollups equal a recomputation from the fact, grain by grain
    assert project.run(*ROLLUPS_TEST, *ALL).returncode == 0
    # When one rollup row drifts (a revenue off by 5)
    one_row = " where rowid = (select min(rowid) from agg_sales__daily)"
    execute(lake, "update agg_sales__daily set revenue = revenue + 5" + one_row)
    # Then the whole-table run fails on it (an incremental run leaves it to that run)
    assert project.run(*ROLLUPS_TEST).returncode == 0
    drift = project.run(*ROLLUPS_TEST, *ALL, check=False)
    assert drift.returncode != 0 and "FAIL 1" in drift.output, drift.output[-3000:]
    # and a grain the rollup lacks fails too
    execute(lake, "update agg_sales__daily set revenue = revenue - 5" + one_row)
    execute(lake, "delete from agg_sales__by_client where client_key = md5('12')")
    missing = project.run(*ROLLUPS_TEST, *ALL, check=False)
    assert missing.returncode != 0 and "FAIL 1" in missing.output, missing.output[-3000:]
