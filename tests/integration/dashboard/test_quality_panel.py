"""The dashboard's data-quality panel in headless Chromium: the latest deliveries with their
status and rejected rows, and the rejects by reason, exactly as GET /quality/files answers
and as the deliveries the test wrote (conftest.QUALITY_FILES) say; a failing route shows in
the panel like any other panel's failure."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.dashboard.conftest import QUALITY_FILES

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

READ_QUALITY = """(() => {
  const p = document.getElementById("panel-quality");
  return {
    page: document.body.dataset.state,
    state: p.dataset.state,
    message: p.querySelector("[data-role=message]").textContent,
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


def test_quality_panel_shows_the_latest_files_and_rejects_by_reason(dashboard_server, browser_tab):
    # Given the API's latest deliveries, newest first
    files = dashboard_server.json("/quality/files?limit=10")["items"]
    assert [f["source_file"].rsplit("/", 1)[1] for f in files] == [
        f[0] for f in reversed(QUALITY_FILES)
    ]

    # When the dashboard opens
    page = browser_tab(1280, 1400)
    shown = open_panel(page, dashboard_server)

    # Then the panel lists each delivery with its status, counts and note, in the API's order
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

    # And the chart sums the rejects by reason over those deliveries
    expected = [(r, sum(spec[4 + i] for spec in QUALITY_FILES)) for i, r in enumerate(REASONS)]
    assert shown["marks"] == [list(e) for e in expected]
    assert all(n for _, n in expected)  # the deliveries have rejects of every reason


def test_quality_panel_reports_a_failing_route(dashboard_server, browser_tab):
    # Given /quality/files answers 500 for this page
    page = browser_tab()
    page.call("Fetch.enable", {"patterns": [{"urlPattern": f"{dashboard_server.url}/quality/*"}]})
    page.goto(f"{dashboard_server.url}/#key={dashboard_server.api_key}")
    event = page.wait_event("Fetch.requestPaused")
    body = {"error": {"code": "internal", "message": "the manifests are missing"}}
    page.call(
        "Fetch.fulfillRequest",
        {
            "requestId": event["requestId"],
            "responseCode": 500,
            "responseHeaders": [{"name": "content-type", "value": "application/json"}],
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
        },
    )

    # When the page settles
    page.wait_for(SETTLED)
    shown = page.evaluate(READ_QUALITY)

    # Then the panel says what failed, shows no figures, and the page offers a retry
    assert shown["page"] == "error" and shown["state"] == "error"
    assert "HTTP 500, internal: the manifests are missing" in shown["message"]
    assert shown["marks"] == [] and shown["rows"] == []
    assert "1 of 6 charts could not be loaded" in page.evaluate(
        "document.getElementById('alert-text').textContent"
    )
