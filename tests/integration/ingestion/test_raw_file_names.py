"""Raw file names carry their rows' landing time: the warehouse relies on it.

Incremental dbt runs on DuckDB skip the lake files landed before their cutoff by name,
without opening them (macros/lake.sql: raw_files_landed_after). That is right only while
every file under raw/orders/ is named `<ingest_id>-<n>.parquet` and its ingest_id starts
with the landed_at of every row in it, as YYYYMMDDTHHMMSSffffffZ. Both writers of raw/
(the CSV landing and the order stream's batches) are held to that here."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow.parquet as pq

from ingestion.lake import LocalLake, NullCatalog
from ingestion.settings import Settings as IngestSettings
from realtime.consumer import Consumer
from realtime.localstream import LocalStream
from realtime.settings import Settings
from realtime.sqlite_store import SqliteStore
from tests.integration.ingestion.landing_helpers import HEADER, land_text, row
from tests.unit.realtime.helpers import event

NAME = re.compile(r"(\d{8}T\d{12}Z)-[0-9a-f]{12}-\d+\.parquet")


def stamps_and_landed_at(lake: Path) -> list[tuple[str, set[dt.datetime]]]:
    """For each raw file: the stamp its name starts with, and the landed_at of its rows."""
    out = []
    for path in sorted((lake / "raw" / "orders").glob("pa_date=*/*.parquet")):
        match = NAME.fullmatch(path.name)
        assert match, f"raw file not named <ingest_id>-<n>.parquet: {path.name}"
        landed = set(pq.read_table(path, columns=["landed_at"]).column(0).to_pylist())
        out.append((match.group(1), landed))
    return out


def as_stamp(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def test_a_landed_csv_names_its_files_by_the_rows_landed_at(tmp_path):
    # Given a file with orders on three days, landed at a time with microseconds
    now = dt.datetime(2026, 12, 6, 21, 18, 57, 558874, tzinfo=dt.UTC)
    text = "\n".join(
        [HEADER] + [row(order_id=str(i), order_date=f"2024-03-0{1 + i % 3}") for i in range(1, 10)]
    )

    # When it lands
    landed = land_text(tmp_path, text + "\n", now=now)

    # Then each of its three files is named by that time, and holds rows landed at it alone
    files = stamps_and_landed_at(landed.lake)
    assert len(files) == 3
    assert {stamp for stamp, _ in files} == {"20261206T211857558874Z"}
    assert all(landed_at == {now} for _, landed_at in files)


def test_a_stream_batch_names_its_files_by_the_rows_landed_at(tmp_path):
    # Given a consumer that applied events on two days
    stream = LocalStream(tmp_path / "stream", "orders", shards=1)
    store = SqliteStore(tmp_path / "realtime" / "store.sqlite")
    consumer = Consumer(
        stream,
        store,
        LocalLake(tmp_path),
        NullCatalog(),
        Settings(lake=str(tmp_path), land_seconds=60.0),
        IngestSettings(lake=str(tmp_path)),
    )
    stream.put([event(1, order_date="2024-03-01"), event(2, order_date="2024-03-02")])
    consumer.apply_once()

    # When it lands them as a batch
    consumer.land_due(force=True)

    # Then both files are named by the landed_at their rows hold, to the microsecond
    files = stamps_and_landed_at(tmp_path)
    assert len(files) == 2
    for stamp, landed_at in files:
        assert len(landed_at) == 1
        assert stamp == as_stamp(next(iter(landed_at)))
