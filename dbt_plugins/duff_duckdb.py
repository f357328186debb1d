"""dbt-duckdb plugin for the local target.

``update_connection_config`` creates the directory of the DuckDB file
(``$DUFF_LAKE/warehouse/``) before dbt-duckdb opens it, so a fresh lake needs no setup. (The
export of the served marts is its own step after the build, ``python -m export``.)

Loaded through ``plugins``/``module_paths`` in profiles.yml.
"""

from __future__ import annotations

import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin


class Plugin(BasePlugin):
    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        path = getattr(creds, "path", None)
        if path and path != ":memory:" and "://" not in path and not path.startswith("md:"):
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
