"""Configuration: environment variables parsed once into one typed settings object."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


class SettingsError(ValueError):
    """A configuration value is invalid."""


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SettingsError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Everything the API reads from its environment.

    ``api_key`` is never logged or shown by ``repr`` (see ``__repr__``).
    """

    api_key: str | None
    backend: str  # "local" or "athena"
    lake: str
    cache_ttl_seconds: float = 60.0
    cache_max_entries: int = 4096
    cache_max_mb: int = 64
    reload_interval_seconds: float = 2.0
    keep_builds: int = 3
    athena_region: str = "us-east-1"
    athena_work_group: str = "primary"
    athena_schema: str = "duff_analytics"
    athena_output_location: str | None = None
    athena_timeout_seconds: float = 20.0
    athena_reuse_minutes: int = 60
    athena_build_check_seconds: float = 10.0
    cursor_secret_env: str | None = None
    # Local server (python -m api): a connection's first request must start within
    # idle_timeout_seconds (later ones: the keep-alive timeout, the same value), and each
    # request must arrive whole within request_timeout_seconds of its first byte.
    idle_timeout_seconds: float = 15.0
    request_timeout_seconds: float = 10.0
    # Local server: dbt's target directory whose run_results.json the server follows, to
    # export each clean `dbt build` itself (export/follow.py); None: serve what is exported.
    dbt_target_path: str | None = None

    def __repr__(self) -> str:  # never print the key or the cursor secret
        return (
            f"Settings(backend={self.backend!r}, lake={self.lake!r}, "
            f"api_key={'<set>' if self.api_key else None}, "
            f"athena_schema={self.athena_schema!r}, athena_work_group={self.athena_work_group!r})"
        )

    __str__ = __repr__

    @property
    def cursor_secret(self) -> bytes:
        """Key that signs pagination cursors.

        ``DUFF_API_CURSOR_SECRET`` when set; otherwise derived from the API key, so every
        Lambda instance and every restart of the local server accepts the cursors the others
        issued (rotating the key invalidates outstanding cursors, which is harmless).
        """
        if self.cursor_secret_env:
            return self.cursor_secret_env.encode("utf-8")
        base = (self.api_key or "duff-dev-no-key").encode("utf-8")
        return hmac.new(base, b"duff-api-cursor-v1", hashlib.sha256).digest()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
        backend = env.get("DUFF_API_BACKEND", "").strip().lower() or (
            "athena" if in_lambda else "local"
        )
        if backend not in ("local", "athena"):
            raise SettingsError(f"DUFF_API_BACKEND must be 'local' or 'athena', got {backend!r}")
        schema = env.get("DUFF_ATHENA_SCHEMA", "").strip() or "duff_analytics"
        if not _SCHEMA_RE.fullmatch(schema):
            raise SettingsError(f"DUFF_ATHENA_SCHEMA is not a valid schema name: {schema!r}")
        key = env.get("DUFF_API_KEY") or None
        if key is not None and not key.strip():
            # a key of spaces would start a server that no request can authenticate against
            raise SettingsError("DUFF_API_KEY is blank: set a key, or unset it")
        # (whitespace around a header value is not part of it, so none around the key either)
        key = key.strip(" \t") if key is not None else None
        return cls(
            api_key=key,
            backend=backend,
            lake=env.get("DUFF_LAKE", "").strip() or "./lake",
            cache_ttl_seconds=_float(env, "DUFF_API_CACHE_TTL", 60.0, 0.0),
            cache_max_entries=_int(env, "DUFF_API_CACHE_MAX_ENTRIES", 4096, 0),
            cache_max_mb=_int(env, "DUFF_API_CACHE_MAX_MB", 64, 0),
            reload_interval_seconds=_float(env, "DUFF_API_RELOAD_SECONDS", 2.0, 0.1),
            keep_builds=_int(env, "DUFF_API_KEEP_BUILDS", 3, 1),
            athena_region=env.get("DUFF_ATHENA_REGION", "").strip() or "us-east-1",
            athena_work_group=env.get("DUFF_ATHENA_WORK_GROUP", "").strip() or "primary",
            athena_schema=schema,
            athena_output_location=env.get("DUFF_ATHENA_S3_STAGING_DIR", "").strip() or None,
            athena_timeout_seconds=_float(env, "DUFF_ATHENA_TIMEOUT", 20.0, 0.1),
            athena_reuse_minutes=_int(env, "DUFF_ATHENA_REUSE_MINUTES", 60, 1),
            athena_build_check_seconds=_float(env, "DUFF_ATHENA_BUILD_CHECK_SECONDS", 10.0, 0.0),
            cursor_secret_env=env.get("DUFF_API_CURSOR_SECRET") or None,
            idle_timeout_seconds=_float(env, "DUFF_API_IDLE_TIMEOUT", 15.0, 0.1),
            request_timeout_seconds=_float(env, "DUFF_API_REQUEST_TIMEOUT", 10.0, 0.1),
            dbt_target_path=_dbt_target_path(env),
        )


def _dbt_target_path(env: Mapping[str, str]) -> str | None:
    """dbt's target path (``DBT_TARGET_PATH``, as dbt reads it; default ``target``, relative
    to where the server starts: the repo root), unless ``DUFF_API_FOLLOW_DBT`` is off."""
    follow = env.get("DUFF_API_FOLLOW_DBT", "").strip().lower() or "1"
    if follow in ("0", "false", "no", "off"):
        return None
    if follow not in ("1", "true", "yes", "on"):
        raise SettingsError(f"DUFF_API_FOLLOW_DBT must be 1 or 0, got {follow!r}")
    return env.get("DBT_TARGET_PATH", "").strip() or "target"
