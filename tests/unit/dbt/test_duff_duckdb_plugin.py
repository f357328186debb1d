"""The dbt-duckdb plugin: the warehouse directory and duff_makedirs() for the mart export."""

from __future__ import annotations

import os
from types import SimpleNamespace

import duckdb
import pytest

from dbt_plugins.duff_duckdb import Plugin, makedirs


def test_makedirs_creates_nested_directories_and_returns_the_absolute_path(tmp_path):
    # Given a path three levels below an existing directory
    target = tmp_path / "marts" / "builds" / "20240308T100000000000Z_abc"
    # When created twice (the second time is a no-op)
    first = makedirs(str(target))
    second = makedirs(str(target))
    # Then it exists and the absolute path comes back
    assert target.is_dir() and first == second == str(target)


def test_makedirs_resolves_a_relative_path_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert makedirs("lake/marts/builds/x") == str(tmp_path / "lake" / "marts" / "builds" / "x")
    assert (tmp_path / "lake" / "marts" / "builds" / "x").is_dir()


@pytest.mark.parametrize("bad", ["", "   "])
def test_makedirs_refuses_an_empty_path(bad):
    with pytest.raises(ValueError, match="non-empty"):
        makedirs(bad)


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


def test_duff_makedirs_is_callable_from_sql(tmp_path):
    # Given a connection configured by the plugin
    con = duckdb.connect()
    Plugin(name="duff", plugin_config={}).configure_connection(con)
    target = tmp_path / "a" / "b"
    # When the SQL function runs; Then the directory exists and a COPY into it works
    (made,) = con.execute("select duff_makedirs(?)", [str(target)]).fetchone()
    assert made == str(target) and target.is_dir()
    con.execute(f"copy (select 1 as x) to '{target}/x.parquet' (format parquet)")
    assert con.execute(f"select x from '{target}/x.parquet'").fetchall() == [(1,)]
