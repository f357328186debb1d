"""Backends: where the marts come from. Imported lazily so each front end only loads its own.

``local``: the newest exported build under ``$DUFF_LAKE/marts/builds/`` (duckdb, pyarrow);
with ``watch``, a thread that also exports each clean ``dbt build`` (export/follow.py).
``athena``: the mart tables in ``$DUFF_ATHENA_SCHEMA`` (boto3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.app import Backend
    from api.settings import Settings


def make_backend(settings: Settings, *, watch: bool = False) -> Backend:
    if settings.backend == "athena":
        from api.backends.athena import AthenaBackend

        return AthenaBackend.from_settings(settings)
    from api.backends.local import LocalBackend

    follower = None
    if watch and settings.dbt_target_path:
        from export.follow import DbtFollower

        follower = DbtFollower(settings.lake, settings.dbt_target_path)
    backend = LocalBackend(
        settings.lake,
        reload_interval=settings.reload_interval_seconds,
        keep_builds=settings.keep_builds,
        follower=follower,
    )
    backend.refresh()
    if watch:
        backend.start_watcher()
    return backend
