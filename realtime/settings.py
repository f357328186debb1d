"""Real-time configuration: environment variables parsed once into one typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

_KINESIS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_LOCAL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


class SettingsError(ValueError):
    """An environment variable holds a value the real-time part cannot use."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything ``python -m realtime`` and the Lambda read from the environment.

    ``lake``          DUFF_LAKE (``./lake``): the local stream and store live under it.
    ``stream``        DUFF_STREAM: ``local://<name>`` (default ``local://orders``, a durable log
                      under ``$DUFF_LAKE/stream/``) or ``kinesis://<name>``.
    ``shards``        DUFF_STREAM_SHARDS: shards of a new local stream (2).
    ``land_seconds``  DUFF_REALTIME_LAND_SECONDS: how long a shard's valid events are held
                      before they land as one batch (60: at most one file per minute per shard
                      per partition; lower it only in tests).
    ``poll_seconds``  DUFF_REALTIME_POLL_SECONDS: the consumer's wait when the stream is idle.
    ``max_batch``     DUFF_REALTIME_MAX_BATCH: records applied per transaction (5000).
    ``workers``       DUFF_REALTIME_WORKERS: consumer processes, at most one per shard (the
                      number of CPUs); 1 consumes every shard in one process.
    ``table``         DUFF_REALTIME_TABLE: the DynamoDB table (AWS only).
    ``metrics_namespace``  DUFF_METRICS_NAMESPACE for the real-time EMF metrics.
    ``consumer``      DUFF_REALTIME_CONSUMER, what the Lambda does with a batch: ``figures``
                      (apply to DynamoDB, the default) or ``lake`` (land it).
    """

    lake: str = "./lake"
    stream: str = "local://orders"
    shards: int = 2
    land_seconds: float = 60.0
    poll_seconds: float = 0.05
    max_batch: int = 5000
    workers: int = 1
    table: str | None = None
    metrics_namespace: str = "Duff/Realtime"
    consumer: str = "figures"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stream = env.get("DUFF_STREAM", "").strip() or "local://orders"
        kind, _, name = stream.partition("://")
        # Kinesis' own rule for stream names; a local stream's name is also a directory, so
        # never hidden (a leading dot) and never a path
        pattern = _LOCAL_NAME if kind == "local" else _KINESIS_NAME
        if kind not in ("local", "kinesis") or not pattern.fullmatch(name):
            raise SettingsError(
                f"DUFF_STREAM={stream!r}: expected local://<name> or kinesis://<name>, the name "
                "1-128 letters, digits, '_', '-' or '.' (a local one not starting with '.')"
            )
        consumer = env.get("DUFF_REALTIME_CONSUMER", "").strip() or "figures"
        if consumer not in ("figures", "lake"):
            raise SettingsError(f"DUFF_REALTIME_CONSUMER={consumer!r}: expected figures or lake")
        return cls(
            consumer=consumer,
            lake=env.get("DUFF_LAKE", "").strip() or "./lake",
            stream=stream,
            shards=int(_number(env, "DUFF_STREAM_SHARDS", 2, 1)),
            land_seconds=_number(env, "DUFF_REALTIME_LAND_SECONDS", 60.0, 0.0),
            poll_seconds=_number(env, "DUFF_REALTIME_POLL_SECONDS", 0.05, 0.001),
            max_batch=int(_number(env, "DUFF_REALTIME_MAX_BATCH", 5000, 1)),
            workers=int(_number(env, "DUFF_REALTIME_WORKERS", os.cpu_count() or 1, 1)),
            table=env.get("DUFF_REALTIME_TABLE", "").strip() or None,
            metrics_namespace=env.get("DUFF_METRICS_NAMESPACE", "").strip() or "Duff/Realtime",
        )

    @property
    def stream_kind(self) -> str:
        return self.stream.split("://", 1)[0]

    @property
    def stream_name(self) -> str:
        return self.stream.split("://", 1)[1]
