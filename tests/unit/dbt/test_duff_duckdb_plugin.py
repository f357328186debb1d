"""The dbt-duckdb plugin: the warehouse directory exists before DuckDB opens its file."""

from __future__ import annotations

import os
from types import SimpleNamespace

import duckdb
import pytest

from dbt_plugins.duff_duckdb import Plugin


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
