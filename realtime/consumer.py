"""``python -m realtime consume``: apply the local stream to the store and land it in the lake.

Per shard, two positions live in the store: the next record to *apply* (figures) and the next
record to *land* (lake). Applying is one store transaction per batch (new versions, aggregates
and checkpoint together). Landing re-reads the applied range from the stream, which keeps
every record, so the consumer holds nothing in memory that a SIGKILL could lose:

1. the range and its ``ingest_id`` are recorded in the store (``landing``),
2. the batch is published to the lake (idempotent for that range and id),
3. the landed position moves and the record is cleared, in one transaction.

A consumer killed between 1 and 3 finishes that very batch when it starts again. A shard
lands at most once every ``land_seconds`` (60: at most one file per minute per shard per
partition), except on SIGTERM or Ctrl-C, when everything applied is landed before exiting.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from typing import Any

from ingestion.lake import Catalog, Lake
from ingestion.settings import Settings as IngestSettings
from realtime import metrics
from realtime.events import Judged, judge, latest_orders
from realtime.landing import batch_ingest_id, land_batch
from realtime.localstream import LocalStream, Position
from realtime.model import Record
from realtime.settings import Settings
from realtime.sqlite_store import Checkpoint, Landing, SqliteStore, now_us

log = logging.getLogger("realtime.consumer")
MAX_LANDING_RECORDS = 2_000_000


class Consumer:
    def __init__(
        self,
        stream: LocalStream,
        store: SqliteStore,
        lake: Lake,
        catalog: Catalog,
        settings: Settings,
        ingest_settings: IngestSettings,
        shards: list[str] | None = None,
    ) -> None:
        self.stream, self.store, self.lake, self.catalog = stream, store, lake, catalog
        self.shards = shards or stream.shards  # this consumer's share of the stream
        self.settings, self.ingest_settings = settings, ingest_settings
        self.started_us = now_us()
        self.stop = threading.Event()
        # shard -> the judged batches applied since its last landing, (first, last, judged),
        # consecutive: landing then needs no second read of the stream (a restart re-reads).
        self.held: dict[str, list[tuple[int, int, Judged]]] = {}

    # -- applying --------------------------------------------------------------------------

    def apply_once(self) -> int:
        """Apply what each shard holds beyond its checkpoint (one batch per shard)."""
        total = 0
        for shard in self.shards:
            cp = self.store.checkpoint(shard)
            records, pos = self.stream.read(
                shard, Position(cp.sequence, cp.offset), self.settings.max_batch
            )
            if not records:
                continue
            judged = judge(records)
            first, last = int(records[0].sequence), int(records[-1].sequence)
            held = self.held.setdefault(shard, [])
            if (held and held[-1][1] + 1 == first) or (not held and first == cp.landed_sequence):
                held.append((first, last, judged))
            else:
                held.clear()
            changed = self.store.apply(
                latest_orders(records, judged),
                Checkpoint(
                    shard,
                    pos.sequence,
                    pos.offset,
                    cp.landed_sequence,
                    cp.landed_offset,
                    cp.landed_at_us,
                ),
            )
            lag = max(0.0, (now_us() - records[-1].arrival_us) / 1e6)
            metrics.emit_batch(
                self.settings.metrics_namespace,
                shard,
                len(records),
                len(judged.valid),
                len(judged.rejected),
                lag,
            )
            log.info(
                "applied",
                extra={
                    "shard": shard,
                    "first_sequence": records[0].sequence,
                    "last_sequence": records[-1].sequence,
                    "events": len(records),
                    "valid": len(judged.valid),
                    "rejected": len(judged.rejected),
                    "changed": changed,
                    "lag_seconds": round(lag, 3),
                },
            )
            total += len(records)
        return total

    # -- landing ---------------------------------------------------------------------------

    def _records(self, shard: str, start: Position, last: int) -> tuple[list[Record], Position]:
        out: list[Record] = []
        pos = start
        while pos.sequence <= last:
            chunk, pos = self.stream.read(shard, pos, min(50_000, last - pos.sequence + 1))
            if not chunk:
                raise RuntimeError(f"{shard}: records {pos.sequence}..{last} are not in the log")
            out.extend(chunk)
        return out, pos

    def _judged(self, landing: Landing) -> Judged:
        """The judged records of a landing's range: from what is held, else from the stream."""
        held = self.held.get(landing.shard, [])
        parts = []
        if held and held[0][0] == landing.first_sequence:
            for _first, last, judged in held:
                parts.append(judged)
                if last >= landing.last_sequence:
                    if last == landing.last_sequence:
                        del held[: len(parts)]
                        return Judged.concat(parts)
                    break
        held.clear()
        records, _ = self._records(
            landing.shard, Position(landing.first_sequence, landing.offset), landing.last_sequence
        )
        return judge(records)

    def _publish(self, landing: Landing) -> dict[str, Any]:
        judged = self._judged(landing)
        landed_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            microseconds=landing.landed_at_us
        )
        manifest = land_batch(
            self.lake,
            self.catalog,
            self.ingest_settings,
            self.stream.source_file(landing.shard),
            str(landing.first_sequence),
            str(landing.last_sequence),
            judged,
            landed_at,
        )
        self.store.finish_landing(landing)
        return manifest

    def finish_interrupted(self) -> None:
        """Finish a landing a killed consumer started (same range, same ingest_id)."""
        for shard in self.shards:
            pending = self.store.pending_landing(shard)
            if pending is not None:
                log.warning(
                    "finishing an interrupted landing",
                    extra={"shard": shard, "ingest_id": pending.ingest_id},
                )
                self._publish(pending)

    def land_due(self, force: bool = False) -> list[dict[str, Any]]:
        out = []
        now = now_us()
        for shard in self.shards:
            cp = self.store.checkpoint(shard)
            if cp.landed_sequence >= cp.sequence:
                continue
            since = cp.landed_at_us if cp.landed_at_us is not None else self.started_us
            if not force and now - since < self.settings.land_seconds * 1e6:
                continue
            last = min(cp.sequence - 1, cp.landed_sequence + MAX_LANDING_RECORDS - 1)
            if last == cp.sequence - 1:
                end = Position(cp.sequence, cp.offset)
            else:  # a huge backlog lands in several batches
                _, end = self._records(shard, Position(cp.landed_sequence, cp.landed_offset), last)
            landed_at_us = max(now_us(), (cp.landed_at_us or 0) + 1)
            landed_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
                microseconds=landed_at_us
            )
            source = self.stream.source_file(shard)
            landing = Landing(
                shard,
                cp.landed_sequence,
                last,
                cp.landed_offset,
                end.offset,
                batch_ingest_id(source, str(cp.landed_sequence), str(last), landed_at),
                landed_at_us,
            )
            self.store.begin_landing(landing)
            out.append(self._publish(landing))
        return out

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        self.finish_interrupted()
        while not self.stop.is_set():
            applied = self.apply_once()
            self.land_due()
            if not applied:
                self.stop.wait(self.settings.poll_seconds)
        # SIGTERM / Ctrl-C: apply what is there, then land everything held.
        self.apply_once()
        self.land_due(force=True)


def install_signal_handlers(consumer: Consumer) -> None:
    def stop(signum: int, _frame: object) -> None:
        log.info("stopping: landing what is held", extra={"signal": signal.Signals(signum).name})
        consumer.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
