"""dbt-duckdb plugin for the local target: the two things SQL cannot do on its own.

- ``update_connection_config`` creates the directory of the DuckDB file
  (``$DUFF_LAKE/warehouse/``) before dbt-duckdb opens it, so a fresh lake needs no setup.
- ``configure_connection`` registers ``duff_makedirs(path) -> absolute path``, which the
  ``on-run-end`` export (macros/export_served_marts.sql) calls to create a build directory:
  DuckDB's ``COPY ... TO`` does not create missing parent directories.

Loaded through ``plugins``/``module_paths`` in profiles.yml.
"""

from __future__ import annotations

import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin


def makedirs(path: str) -> str:
    """Create ``path`` and its parents when missing; return it as an absolute path."""
    if not path or not path.strip():
        raise ValueError("duff_makedirs needs a non-empty path")
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path)


class Plugin(BasePlugin):
    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        path = getattr(creds, "path", None)
        if path and path != ":memory:" and "://" not in path and not path.startswith("md:"):
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)

    def configure_connection(self, conn: Any) -> None:
        conn.create_function(
            "duff_makedirs",
            makedirs,
            ["VARCHAR"],
            "VARCHAR",
            side_effects=True,
        )
