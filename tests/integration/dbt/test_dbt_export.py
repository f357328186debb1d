"""The local export of mart_orders, one file per day, after incremental builds.

One sequence per module (each dbt call takes seconds):
build 1 over four days; build 2 after order 1 is re-sent from day A (its only order) to day B
and a new day E lands; a from-scratch build of the same raw files in a fresh lake; build 3
after product 302 is renamed; build 4 with nothing new. Expected rows are computed here in
Python from the rows the test landed.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import SERVED_FILES, Order, RawLake

UTC = dt.UTC
A, B, C, D, E = (dt.date(2024, 6, day) for day in range(1, 6))
T1 = dt.datetime(2024, 6, 6, 8, 0, tzinfo=UTC)
T2 = T1 + dt.timedelta(days=1)
T3 = T2 + dt.timedelta(days=1)

FIRST = [
    Order(1, 5, "Lenny", 300, "Duff", "1.25", 4, "0.330", "Retail", "created", A),
    Order(2, 6, "Carl", 301, "Duff Dry", "2.00", 1, "0.500", "B2B", "created", B),
    Order(3, 5, "Lenny", 302, "Duff Lite", "1.00", 2, "0.330", "Online", "delivered", C),
    Order(4, 7, "Homer", 300, "Duff", "1.25", 6, "0.330", "Retail", "broken", C),
    Order(5, 7, "Homer", 302, "Duff Lite", "1.00", 3, "0.330", "B2B", "created", D),
]
# order 1 re-sent to day B (day A is left with no order) and a new day E
SECOND = [
    Order(1, 5, "Lenny", 300, "Duff", "1.25", 4, "0.330", "Online", "delivered", B),
    Order(6, 6, "Carl", 301, "Duff Dry", "2.00", 2, "0.500", "Retail", "created", E),
]
# product 302 renamed by its newest row: every day it appears in (C, D, E) changes
THIRD = [
    Order(7, 6, "Carl", 302, "Duff Lite Gold", "1.00", 1, "0.330", "Retail", "created", E),
]


def builds(lake: Path) -> list[Path]:
    return sorted((lake / "marts" / "builds").iterdir())


def day_files(build: Path) -> dict[dt.date, Path]:
    """The build's mart_orders files by day; exactly one file per day directory."""
    out = {}
    for folder in sorted((build / "mart_orders").iterdir()):
        files = list(folder.iterdir())
        assert folder.name.startswith("pa_date=") and len(files) == 1, folder
        out[dt.date.fromisoformat(folder.name.removeprefix("pa_date="))] = files[0]
    return out


def rows_of(path: Path) -> list[tuple]:
    return [tuple(r.values()) for r in pq.read_table(path).to_pylist()]


def expected_days(lake: RawLake) -> dict[dt.date, list[tuple]]:
    """mart_orders by day, computed from the landed rows: the latest version of each order,
    the product's description from its latest landed row, sorted by order_id."""
    names = lake.latest_attribute("product_id", "product_description")
    days: dict[dt.date, list[tuple]] = {}
    for order_id, r in sorted(lake.latest_versions().items()):
        days.setdefault(r["pa_date"], []).append(
            (
                order_id,
                r["client_id"],
                r["product_id"],
                names[r["product_id"]],
                r["product_ccf"],
                r["product_price"],
                r["total_amount"],
                r["total_liters"],
                r["point_of_sale_channel"],
                r["status"],
                r["pa_date"],
            )
        )
    return days


@pytest.fixture(scope="module")
def export(dbt_project_factory):
    project = dbt_project_factory("dbt_export")
    lake = RawLake(Path(project.lake))
    out: dict = {"lake": Path(project.lake)}

    lake.land(FIRST, T1)
    project.run("build")
    (out["build1"],) = builds(out["lake"])

    lake.land(SECOND, T2)
    out["run2"] = project.run("build")
    out["build2"] = builds(out["lake"])[-1]
    out["expected2"] = expected_days(lake)

    # the same raw files in a fresh lake, built from scratch (no previous build)
    scratch = dbt_project_factory("dbt_export_scratch")
    shutil.copytree(out["lake"] / "raw", Path(scratch.lake) / "raw")
    out["scratch_run"] = scratch.run("build")
    (out["scratch"],) = builds(Path(scratch.lake))

    lake.land(THIRD, T3)
    out["run3"] = project.run("build")
    out["build3"] = builds(out["lake"])[-1]
    out["expected3"] = expected_days(lake)

    out["run4"] = project.run("build")
    out["build4"] = builds(out["lake"])[-1]
    assert len(builds(out["lake"])) == 4
    return out


def test_a_first_build_writes_every_day_sorted_by_order_id(export):
    files = day_files(export["build1"])
    assert sorted(files) == [A, B, C, D]
    assert [r[0] for r in rows_of(files[C])] == [3, 4]
    first = {r[0]: r for rows in map(rows_of, files.values()) for r in rows}
    assert first[1][3:] == (
        "Duff", 4, Decimal("1.25"), Decimal("5.00"), Decimal("1.320"), "Retail", "created", A
    )  # fmt: skip


def test_after_a_moved_order_and_a_new_day_only_those_days_are_written(export):
    before, after = day_files(export["build1"]), day_files(export["build2"])
    # Then day A, left without orders, has no file (nor directory); B and E are new files
    assert sorted(after) == [B, C, D, E]
    assert not (export["build2"] / "mart_orders" / f"pa_date={A}").exists()
    # the unchanged days are hard links of the previous build's files: the same inode
    for day in (C, D):
        assert after[day].stat().st_ino == before[day].stat().st_ino, day
    for day in (B,):
        assert after[day].stat().st_ino != before[day].stat().st_ino, day
    assert "2 days written, 2 linked" in export["run2"].output


def test_the_incremental_days_equal_a_from_scratch_export_row_for_row(export):
    incremental, scratch = day_files(export["build2"]), day_files(export["scratch"])
    assert sorted(incremental) == sorted(scratch) == sorted(export["expected2"])
    for day, path in incremental.items():
        assert rows_of(path) == rows_of(scratch[day]) == export["expected2"][day], day
    # and order 1 shows once, in day B, as re-sent
    moved = [r for r in rows_of(incremental[B]) if r[0] == 1]
    assert moved == [(1, 5, 300, "Duff", 4, Decimal("1.25"), Decimal("5.00"),
                      Decimal("1.320"), "Online", "delivered", B)]  # fmt: skip


def test_a_renamed_product_rewrites_every_day_correctly(export):
    before, after = day_files(export["build2"]), day_files(export["build3"])
    assert "product_descriptions 1" in export["run3"].output
    assert sorted(after) == sorted(export["expected3"]) == [B, C, D, E]
    for day, path in after.items():
        assert path.stat().st_ino != before[day].stat().st_ino, day  # every day rewritten
        assert rows_of(path) == export["expected3"][day], day
    descriptions = {r[3] for day in (C, D, E) for r in rows_of(after[day]) if r[2] == 302}
    assert descriptions == {"Duff Lite Gold"}


def test_a_build_with_nothing_new_links_every_day(export):
    before, after = day_files(export["build3"]), day_files(export["build4"])
    assert sorted(after) == sorted(before)
    assert all(after[d].stat().st_ino == before[d].stat().st_ino for d in after)
    assert "0 days written, 4 linked" in export["run4"].output


def test_a_build_holds_the_served_files_and_no_staging(export):
    names = {p.name for p in export["build4"].iterdir()}
    assert names == SERVED_FILES
