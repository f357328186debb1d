"""The dbt-duckdb plugin: the warehouse directory, and the mart export's Python hook that
stages the previous build and keeps its unchanged days of mart_orders as hard links."""

from __future__ import annotations

import errno
import os
from types import SimpleNamespace

import duckdb
import pytest

from dbt_plugins import duff_duckdb
from dbt_plugins.duff_duckdb import (
    PREVIOUS_FILES,
    Plugin,
    keep_days,
    make_day_dirs,
    previous_build,
    stage_previous,
)

OLD = "20240308T100000000000Z_old"
PREV = "20240309T100000000000Z_prev"
NEW = "20240310T100000000000Z_new"
DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")


def write_parquet(path, sql="select 1 as x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect().execute(f"copy ({sql}) to '{path}' (format parquet)")


def complete_build(builds, name, days=DAYS):
    """A complete build in the per-day layout: small marts, _SUCCESS and one file a day."""
    build = builds / name
    for file in PREVIOUS_FILES:
        sql = (
            "select 'b' as build_id, now()::timestamp as built_at" if file.startswith("_") else None
        )
        write_parquet(build / file, sql or "select 1 as x")
    for day in days:
        write_parquet(
            build / "mart_orders" / f"pa_date={day}" / f"{name}.parquet", f"select '{day}' as d"
        )
    return build


def test_the_warehouse_directory_is_created_before_duckdb_opens_it(tmp_path):
    # Given a DuckDB path whose directory does not exist yet
    path = tmp_path / "lake" / "warehouse" / "duff.duckdb"
    plugin = Plugin(name="duff", plugin_config={})
    # When dbt-duckdb asks the plugin to adjust the connection config
    plugin.update_connection_config(SimpleNamespace(path=str(path)), {})
    # Then the directory exists and DuckDB can create its file there
    assert path.parent.is_dir()
    duckdb.connect(str(path)).close()
    assert path.exists()


@pytest.mark.parametrize("path", [":memory:", "md:my_db", "s3://bucket/x.duckdb"])
def test_non_file_databases_are_left_alone(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    Plugin(name="duff", plugin_config={}).update_connection_config(SimpleNamespace(path=path), {})
    assert os.listdir(tmp_path) == []


def test_the_previous_build_is_the_newest_complete_one_before_the_new(tmp_path):
    complete_build(tmp_path, OLD)
    complete_build(tmp_path, PREV)
    (tmp_path / "20240309T110000000000Z_crashed").mkdir()  # no _SUCCESS: incomplete
    (tmp_path / "not-a-build").mkdir()
    assert previous_build(tmp_path / NEW) == tmp_path / PREV
    assert previous_build(tmp_path / OLD) is None


def test_staging_hard_links_the_previous_build_and_keeping_moves_the_days(tmp_path):
    # Given a complete previous build
    prev = complete_build(tmp_path, PREV)
    new = tmp_path / NEW
    # When staged (through the hook, as the export calls it)
    plugin = Plugin(name="duff", plugin_config={})
    hook = SimpleNamespace(location=SimpleNamespace(path=str(new)))
    plugin.store(SimpleNamespace(**vars(hook), config={"action": "stage_previous"}))
    # Then its small files and each day are hard links under _previous/, and mart_orders/ exists
    staged = new / "_previous"
    assert (new / "mart_orders").is_dir()
    for file in PREVIOUS_FILES:
        assert (staged / file).stat().st_ino == (prev / file).stat().st_ino
    prev_file = prev / "mart_orders" / "pa_date=2024-03-01" / f"{PREV}.parquet"
    assert (staged / "mart_orders" / "pa_date=2024-03-01" / f"{PREV}.parquet").samefile(prev_file)
    # When two days are kept (the third changed) and the writer's directory made
    plugin.store(
        SimpleNamespace(**vars(hook), config={"action": "keep_days", "days": list(DAYS[:2])})
    )
    plugin.store(
        SimpleNamespace(**vars(hook), config={"action": "make_day_dirs", "days": [DAYS[2]]})
    )
    # Then the kept days are the previous build's files, the third is an empty directory to
    # write, and nothing is left staged
    kept = new / "mart_orders" / "pa_date=2024-03-01" / f"{PREV}.parquet"
    assert kept.samefile(prev_file)
    assert list((new / "mart_orders" / "pa_date=2024-03-03").iterdir()) == []
    assert not staged.exists()
    # and removing the previous build (the API prunes it) leaves the new build's days intact
    import shutil

    shutil.rmtree(prev)
    assert duckdb.connect().execute(f"select d from '{kept}'").fetchall() == [("2024-03-01",)]


def test_an_old_layout_previous_build_stages_nothing(tmp_path):
    prev = complete_build(tmp_path, PREV, days=())
    write_parquet(prev / "mart_orders.parquet")
    assert stage_previous(tmp_path / NEW) is None
    assert not (tmp_path / NEW / "_previous").exists() and (tmp_path / NEW / "mart_orders").is_dir()


def test_an_unreadable_previous_build_stages_nothing(tmp_path):
    prev = complete_build(tmp_path, PREV)
    (prev / "mart_daily_sales.parquet").write_bytes(b"not parquet")
    assert stage_previous(tmp_path / NEW) is None
    assert not (tmp_path / NEW / "_previous").exists()


def test_a_day_that_vanishes_while_staging_is_not_staged(tmp_path, monkeypatch):
    # Given the API prunes the previous build while its days are being linked
    complete_build(tmp_path, PREV)
    real_link = os.link

    def link(src, dst):
        if "pa_date=2024-03-02" in str(src):
            raise FileNotFoundError(errno.ENOENT, "pruned", str(src))
        real_link(src, dst)

    monkeypatch.setattr(duff_duckdb.os, "link", link)
    assert stage_previous(tmp_path / NEW) == str(tmp_path / PREV)
    staged = sorted(p.name for p in (tmp_path / NEW / "_previous" / "mart_orders").iterdir())
    # Then only the other days are staged, and keeping all three moves just those two
    assert staged == ["pa_date=2024-03-01", "pa_date=2024-03-03"]
    assert keep_days(tmp_path / NEW, DAYS) == 2


def test_files_are_copied_where_hard_links_are_refused(tmp_path, monkeypatch):
    prev = complete_build(tmp_path, PREV)

    def no_link(src, dst):
        raise OSError(errno.EXDEV, "cross-device link", str(src))

    monkeypatch.setattr(duff_duckdb.os, "link", no_link)
    stage_previous(tmp_path / NEW)
    keep_days(tmp_path / NEW, DAYS)
    copied = tmp_path / NEW / "mart_orders" / "pa_date=2024-03-01" / f"{PREV}.parquet"
    original = prev / "mart_orders" / "pa_date=2024-03-01" / f"{PREV}.parquet"
    assert copied.read_bytes() == original.read_bytes() and not copied.samefile(original)


def test_days_must_be_dates(tmp_path):
    with pytest.raises(ValueError, match="not a day"):
        make_day_dirs(tmp_path, ["../../etc"])
    with pytest.raises(ValueError, match="not a day"):
        keep_days(tmp_path, ["2024-03-01/.."])


def test_an_unknown_hook_action_fails(tmp_path):
    hook = SimpleNamespace(location=SimpleNamespace(path=str(tmp_path)), config={"action": "x"})
    with pytest.raises(ValueError, match="unknown store action"):
        Plugin(name="duff", plugin_config={}).store(hook)


def test_the_plugin_registers_no_python_udf():
    # A DuckDB Python UDF costs a numpy import to register and a pandas import (~1.5 s) on
    # its first call; the export's hook is plain Python instead.
    con = duckdb.connect()
    Plugin(name="duff", plugin_config={}).configure_connection(con)
    names = {r[0] for r in con.execute("select function_name from duckdb_functions()").fetchall()}
    assert "duff_makedirs" not in names


def test_write_days_copies_each_day_sorted_by_order_id_over_two_cursors(tmp_path):
    # Given a database with orders of three days in no particular order
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(
        "create table mart_orders as select (1000 - i) as order_id, "
        "date '2024-03-01' + (i % 3)::int as pa_date from range(300) as r(i)"
    )
    # When two of the days are written
    duff_duckdb.write_days(
        con, "mart_orders", tmp_path / "b", DAYS[:2], "inv.parquet", {"TimeZone": "UTC"}
    )
    # Then each has one file holding exactly its rows, sorted by order_id; the third has none
    for day in DAYS[:2]:
        path = tmp_path / "b" / "mart_orders" / f"pa_date={day}" / "inv.parquet"
        got = [r[0] for r in duckdb.connect().execute(f"select order_id from '{path}'").fetchall()]
        want = [
            r[0]
            for r in con.execute(
                f"select order_id from mart_orders where pa_date = date '{day}' order by 1"
            ).fetchall()
        ]
        assert got == want and len(got) == 100
    assert not (tmp_path / "b" / "mart_orders" / f"pa_date={DAYS[2]}").exists()
