"""The dashboard's data-quality panel in headless Chromium: the latest files with their status
and rejected rows, the stream batches landed since in one line, and the rejects by reason,
exactly as GET /quality/files answers and as the deliveries the test wrote
(conftest.QUALITY_FILES, QUALITY_STREAM_BATCHES) say; a failing route shows in the panel like
any other panel's failure."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from tests.integration.dashboard.conftest import QUALITY_FILES, QUALITY_LANDED, stream_batches

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

READ_QUALITY = """(() => {
  const p = document.getElementById("panel-quality");
  return {
    page: document.body.dataset.state,
    state: p.dataset.state,
    message: p.querySelector("[data-role=message]").textContent,
    subtitle: p.querySelector("[data-role=subtitle]").textContent,
    stream: (({ role, ...counts }) => counts)({...p.querySelector("[data-role=stream]").dataset}),
    streamText: p.querySelector("[data-role=stream]").textContent,
    marks: [...p.querySelectorAll("[data-role=chart] [data-value]")]
        .map((e) => [e.dataset.label, Number(e.dataset.value)]),
    rows: [...p.querySelectorAll("[data-role=table] tbody tr")].map((tr) => ({
        status: tr.dataset.status,
        cells: Object.fromEntries([...tr.children].map((c) => [c.dataset.key, c.dataset.value])),
        text: Object.fromEntries([...tr.children].map((c) => [c.dataset.key, c.textContent])),
    })),
  };
})()"""
SETTLED = "['ready', 'error'].includes(document.body && document.body.dataset.state)"
REASONS = ("missing", "invalid", "duplicate")


def open_panel(page, server) -> dict:
    page.goto(f"{server.url}/#key={server.api_key}")
    page.wait_for(SETTLED)
    return page.evaluate(READ_QUALITY)


def open_panel_answered(page, server, status: int, body: dict) -> dict:
    """Open the dashboard with its first /quality call answered by ``status`` and ``body``
    (the browser holds the call; the server never sees it)."""
    page.call("Fetch.enable", {"patterns": [{"urlPattern": f"{server.url}/quality/*"}]})
    page.goto(f"{server.url}/#key={server.api_key}")
    event = page.wait_event("Fetch.requestPaused")
    page.call(
        "Fetch.fulfillRequest",
        {
            "requestId": event["requestId"],
            "responseCode": status,
            "responseHeaders": [{"name": "content-type", "value": "application/json"}],
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
        },
    )
    page.wait_for(SETTLED)
    return page.evaluate(READ_QUALITY)


def all_deliveries(server) -> list[dict]:
    """Every item of GET /quality/files, page by page, in the API's order."""
    items, cursor = [], None
    while True:
        page = server.json("/quality/files?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_quality_panel_shows_the_latest_files_and_rejects_by_reason(dashboard_server, browser_tab):
    # Given the API's deliveries, newest first: four files behind 1,200 newer stream batches
    deliveries = all_deliveries(dashboard_server)
    files = [f for f in deliveries if not f["source_file"].startswith("stream://")]
    batches = [f for f in deliveries if f["source_file"].startswith("stream://")]
    assert [f["source_file"].rsplit("/", 1)[1] for f in files] == [
        f[0] for f in reversed(QUALITY_FILES)
    ]
    assert len(batches) == len(stream_batches()) > 1000
    assert deliveries.index(files[0]) > 1000  # past the first page of the largest size

    # When the dashboard opens
    page = browser_tab(1280, 1400)
    shown = open_panel(page, dashboard_server)

    # Then the panel lists each file with its status, counts and note, in the API's order
    assert page.exceptions() == []
    assert (shown["page"], shown["state"]) == ("ready", "ready"), shown
    assert [r["status"] for r in shown["rows"]] == [f["status"] for f in files]
    for row, f, spec in zip(shown["rows"], files, reversed(QUALITY_FILES), strict=True):
        cells = row["cells"]
        assert cells["source_file"] == spec[0]
        assert cells["landed_at"] == f["landed_at"]
        assert [int(cells[k]) for k in ("rows_in", "valid", *REASONS)] == list(spec[2:7])
        note = spec[8] or ("Ignored: " + ", ".join(json.loads(spec[7])) if spec[7] != "[]" else "")
        assert row["text"]["note"] == note
    assert shown["rows"][0]["text"]["rows_in"] == "950"
    assert shown["rows"][-1]["text"]["rows_in"] == "1,200"

    # And one line sums the stream batches landed since the oldest file shown
    written = [b for b in stream_batches() if b["landed_at"] > QUALITY_LANDED]
    assert len(written) < len(stream_batches())
    rejected_events = sum(b["rejected_invalid"] for b in written)
    assert rejected_events > 0
    assert shown["stream"] == {
        "batches": str(len(written)),
        "rowsIn": str(sum(b["rows_in"] for b in written)),
        "valid": str(sum(b["valid"] for b in written)),
        "rejected": str(rejected_events),
    }
    assert shown["streamText"].startswith("Stream: 1,203 stream batches since the oldest file")

    # And the chart sums the rejects by reason over those files and batches
    expected = [(r, sum(spec[4 + i] for spec in QUALITY_FILES)) for i, r in enumerate(REASONS)]
    expected[1] = ("invalid", expected[1][1] + rejected_events)
    assert shown["marks"] == [list(e) for e in expected]
    assert all(n for _, n in expected)  # the deliveries have rejects of every reason


def delivery(n: int, stream: bool, invalid: int = 0) -> dict:
    """A /quality/files item landed n minutes before noon (the API's shape)."""
    landed = dt.datetime(2024, 5, 1, 12, 0) - dt.timedelta(minutes=n)
    return {
        "ingest_id": f"{landed:%Y%m%dT%H%M%S}000000Z-{n:012x}",
        "source_file": "stream://duff-orders/shard-1" if stream else f"/data/in/f{n}.csv",
        "status": "landed",
        "rows_in": 10,
        "valid": 10 - invalid,
        "rejected": {"missing": 0, "invalid": invalid, "duplicate": 0},
        "ignored_columns": [],
        "landed_at": f"{landed:%Y-%m-%dT%H:%M:%S}Z",
        "error": None,
    }


def test_quality_panel_counts_the_stream_batches_since_the_oldest_file_shown(
    dashboard_server, browser_tab
):
    # Given twelve files, newest first, with two stream batches after each (one event of the
    # batches after the tenth file invalid: they are older than every file shown)
    items = []
    for i in range(12):
        items.append(delivery(3 * i, stream=False))
        items += [
            delivery(3 * i + 1, stream=True),
            delivery(3 * i + 2, stream=True, invalid=i // 9),
        ]

    # When the dashboard opens and gets them as the whole answer of /quality/files
    page = browser_tab()
    shown = open_panel_answered(page, dashboard_server, 200, {"items": items, "next_cursor": None})

    # Then it shows the ten newest files and counts the 18 batches landed after the tenth
    assert shown["state"] == "ready", shown
    assert [r["cells"]["source_file"] for r in shown["rows"]] == [
        f"f{3 * i}.csv" for i in range(10)
    ]
    assert shown["stream"] == {"batches": "18", "rowsIn": "180", "valid": "180", "rejected": "0"}
    assert shown["marks"] == []  # no rejects in what is shown
    assert shown["subtitle"].startswith("Rejected rows by reason in the latest 10 files and 18")


def test_quality_panel_reports_a_failing_route(dashboard_server, browser_tab):
    # Given /quality/files answers 500 for this page, When the page settles
    page = browser_tab()
    body = {"error": {"code": "internal", "message": "the manifests are missing"}}
    shown = open_panel_answered(page, dashboard_server, 500, body)

    # Then the panel says what failed, shows no figures, and the page offers a retry
    assert shown["page"] == "error" and shown["state"] == "error"
    assert "HTTP 500, internal: the manifests are missing" in shown["message"]
    assert shown["marks"] == [] and shown["rows"] == []
    assert "1 of 6 charts could not be loaded" in page.evaluate(
        "document.getElementById('alert-text').textContent"
    )
