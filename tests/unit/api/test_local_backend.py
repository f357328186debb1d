"""Build discovery of the local backend: newest complete build, never older, pruning."""

import datetime as dt

import pytest

from api.backends.local import LocalBackend
from tests.support.fake_marts import make_orders, write_build

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


def test_a_build_missing_a_declared_column_is_skipped_not_retried_forever(tmp_path, small_orders):
    import pyarrow.parquet as pq

    # Given a good build, then a newer one whose mart_client_sales lost a declared column
    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "lacks-spend")
    path = bad / "mart_client_sales.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["total_spend"]), path)
    # When the backend looks / Then it serves the good one and remembers the bad one
    backend = LocalBackend(tmp_path)
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "good"
    assert backend.refresh() is False


def test_a_build_without_its_declarations_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "no-served-json")
    (bad / "_served.json").unlink()
    backend = LocalBackend(tmp_path)
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "good"


def test_a_build_without_any_mart_orders_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    (build(tmp_path, small_orders, 2, "no-orders") / "mart_orders.parquet").unlink()
    backend = LocalBackend(tmp_path)
    backend.refresh()
    assert backend.snapshot().build_id == "good"
