"""Landing batches: a consumer killed between recording a landing and finishing it lands
that very batch once, and SIGTERM lands what is held (in-process, deterministic)."""

from __future__ import annotations

import json

import pytest

from ingestion.lake import LocalLake, NullCatalog
from ingestion.settings import Settings as IngestSettings
from realtime.consumer import Consumer
from realtime.localstream import LocalStream
from realtime.settings import Settings
from realtime.sqlite_store import SqliteStore
from tests.unit.realtime.helpers import event


def _consumer(root, land_seconds=60.0) -> Consumer:
    stream = LocalStream(root / "stream", "orders", shards=1)
    store = SqliteStore(root / "realtime" / "store.sqlite")
    settings = Settings(lake=str(root), land_seconds=land_seconds)
    return Consumer(
        stream, store, LocalLake(root), NullCatalog(), settings, IngestSettings(lake=str(root))
    )


def _manifests(root):
    return sorted(
        (json.loads(p.read_text()) for p in (root / "manifests").glob("*.json")),
        key=lambda m: m["ingest_id"],
    )


class Boom(Exception):
    pass


@pytest.mark.parametrize("crash_at", ["publish", "finish"])
def test_an_interrupted_landing_is_finished_once_on_restart(tmp_path, monkeypatch, crash_at):
    # Given a consumer that applied 3 events and dies while landing them
    c = _consumer(tmp_path)
    c.stream.put([event(1, order_date="2024-03-01"), b"bad", event(2, order_date="2024-03-02")])
    c.apply_once()
    import realtime.consumer as mod

    if crash_at == "publish":  # before anything reached the lake
        monkeypatch.setattr(mod, "land_batch", lambda *a, **k: (_ for _ in ()).throw(Boom()))
    else:  # after the lake has it, before the store knows
        monkeypatch.setattr(
            c.store, "finish_landing", lambda landing: (_ for _ in ()).throw(Boom())
        )
    with pytest.raises(Boom):
        c.land_due(force=True)
    pending = c.store.pending_landing("shard-0000")
    assert pending is not None
    c.store.close()
    monkeypatch.undo()

    # When a new consumer starts
    again = _consumer(tmp_path)
    again.finish_interrupted()
    again.land_due(force=True)  # nothing more to land

    # Then the batch landed exactly once, under the id recorded before the crash
    (m,) = _manifests(tmp_path)
    assert m["ingest_id"] == pending.ingest_id
    assert (m["rows_in"], m["valid"], m["rejected"]["invalid"]) == (3, 2, 1)
    assert m["partitions"] == ["2024-03-01", "2024-03-02"]
    assert (m["first_sequence"], m["last_sequence"]) == ("1", "3")
    assert again.store.pending_landing("shard-0000") is None
    assert again.store.checkpoint("shard-0000").landed_sequence == 4
    assert not list((tmp_path / "_staging").glob("*/*"))
    raw = sorted(p.name for p in (tmp_path / "raw" / "orders").glob("*/*.parquet"))
    assert raw == [f"{pending.ingest_id}-0.parquet"] * 2


def test_a_shard_lands_at_most_once_per_interval_unless_stopping(tmp_path):
    c = _consumer(tmp_path, land_seconds=60)
    c.stream.put([event(1, order_date="2024-03-01")])
    c.apply_once()
    assert c.land_due() == []  # less than a minute since the consumer started
    c.stream.put([event(2, order_date="2024-03-01")])
    c.apply_once()
    (m,) = c.land_due(force=True)  # a stop lands what is held
    assert (m["rows_in"], m["source_file"]) == (2, "stream://orders/shard-0000")
    c.stream.put([event(3, order_date="2024-03-01")])
    c.apply_once()
    c.started_us = 0
    assert c.land_due() == []  # landed under a minute ago


def test_reset_from_the_lake_then_replay_gives_the_same_figures(tmp_path):
    import datetime as dt

    from realtime.operate import replay, reset_from_lake

    # Given events applied and landed, then more applied but not landed yet
    c = _consumer(tmp_path)
    c.stream.put(
        [
            event(1, order_date="2024-03-01", product_ccf=2),
            event(2, order_date="2024-03-01"),
            event(1, order_date="2024-03-02", product_ccf=3),  # a re-send moves order 1
            b"bad",
        ]
    )
    c.apply_once()
    c.land_due(force=True)
    c.stream.put([event(2, order_date="2024-03-02", status="broken"), event(3)])
    c.apply_once()
    days = [dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.datetime.now(dt.UTC).date()]

    def figures():
        return [
            {k: v for k, v in c.store.summary(d).items() if k not in ("as_of", "last_event_at")}
            for d in days
        ]

    before = figures()
    # When the store is rebuilt from the lake, and the consumer runs again
    starts = reset_from_lake(c.stream, c.store, tmp_path)
    assert starts == {"shard-0000": 5}  # the first 4 records are in the lake
    assert figures() != before  # the two records not landed yet are missing...
    c.held.clear()
    c.apply_once()
    assert figures() == before  # ...until the consumer applies them from the stream
    # And replaying the whole shard changes nothing (exactly-once effect)
    replay(c.stream, c.store, "shard-0000", 1)
    c.apply_once()
    assert figures() == before


def test_a_replay_forward_past_the_checkpoint_is_refused(tmp_path):
    import datetime as dt

    from realtime.operate import replay

    # Given a shard whose first two records are applied, and three more not yet
    c = _consumer(tmp_path)
    c.stream.put([event(1), event(2)])
    c.apply_once()
    c.stream.put([event(3), event(4), event(5)])
    before = c.store.checkpoint("shard-0000")
    assert before.sequence == 3
    # When an operator asks to replay from sequence 5 (past what was applied)
    with pytest.raises(ValueError, match="applies from sequence 3 next; a replay goes back"):
        replay(c.stream, c.store, "shard-0000", 5)
    # Then the checkpoint did not move, and the consumer applies records 3, 4 and 5
    assert c.store.checkpoint("shard-0000") == before
    c.apply_once()
    today = c.store.summary(dt.datetime.now(dt.UTC).date())
    assert today["orders"] == 5
    # And a replay back to the start is still allowed
    assert replay(c.stream, c.store, "shard-0000", 1).sequence == 1


def test_an_unknown_key_holding_a_lone_surrogate_leaves_a_manifest_dbt_reads(tmp_path):
    import duckdb

    from tests.unit.realtime.helpers import Raw

    # Given a valid event with one more key, spelled with a lone surrogate escape
    c = _consumer(tmp_path)
    c.stream.put([event(1, note=Raw("1")).replace(b'"note"', b'"note\\ud800"')])
    c.apply_once()
    # When its batch lands
    c.land_due(force=True)
    # Then the event counts, and the manifest names the ignored key as text that the
    # manifests source of dbt reads (DuckDB refused "no low surrogate in string")
    (manifest,) = _manifests(tmp_path)
    assert manifest["valid"] == 1 and manifest["ignored_columns"] == ["note\\ud800"]
    glob = str(tmp_path / "manifests" / "*.json")
    read = duckdb.sql(
        f"select ignored_columns from read_json('{glob}', format = 'unstructured', "
        "columns = {ignored_columns: 'json'})"
    ).fetchall()
    assert [json.loads(row[0]) for row in read] == [["note\\ud800"]]
