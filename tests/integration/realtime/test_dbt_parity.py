"""After a dbt build, /sales/daily for the stream's days equals /realtime/summary (section 6),
re-sends that move orders between days included: the lake batches carry the same versions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings as ApiSettings
from ingestion.lake import LocalLake, NullCatalog
from ingestion.settings import Settings as IngestSettings
from realtime.consumer import Consumer
from realtime.localstream import LocalStream
from realtime.settings import Settings
from realtime.sqlite_store import SqliteStore, store_path
from tests.integration.realtime.conftest import ROOT, encode, make_events

KEY = "parity-key"


def test_sales_daily_after_dbt_build_equals_the_realtime_summary(tmp_path):
    lake = tmp_path / "lake"
    stream = LocalStream(lake / "stream", "orders", shards=2)
    store = SqliteStore(store_path(str(lake)))
    c = Consumer(
        stream,
        store,
        LocalLake(lake),
        NullCatalog(),
        Settings(lake=str(lake)),
        IngestSettings(lake=str(lake)),
    )
    events = make_events(1500, orders=400, seed=21)
    # Given two rounds of events, each landed as its own batches (re-sends across batches)
    for part in (events[:900], events[900:]):
        stream.put(encode(part))
        while c.apply_once():
            pass
        c.land_due(force=True)
    store.close()
    # When dbt builds the lake
    env = {**os.environ, "DUFF_LAKE": str(lake), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.pop("DUFF_DBT_TARGET", None)
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [
            str(dbt),
            "build",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # and the documented export step publishes the build for the API
    proc = subprocess.run(
        [sys.executable, "-m", "export", "--target-path", str(tmp_path / "target")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # Then every day's figures agree between the built marts and the real-time store
    backend = LocalBackend(lake)
    backend.refresh()
    app = App(ApiSettings(api_key=KEY, backend="local", lake=str(lake)), backend)

    def get(path, query=()):
        r = app.handle(Request("GET", path, tuple(query), {"x-api-key": KEY}))
        assert r.status == 200, r.body
        return r.json()

    daily = get("/sales/daily")["items"]
    assert len(daily) >= 3  # the three order dates (and today's, for events without one)
    for day in daily:
        live = get("/realtime/summary", [("date", day["pa_date"])])
        assert {k: live[k] for k in ("orders", "units", "liters", "revenue")} == {
            k: day[k] for k in ("orders", "units", "liters", "revenue")
        }, day["pa_date"]
    app.close()
