"""EMF lines per file: every metric named in the issue, in a shape CloudWatch accepts."""

from __future__ import annotations

import io
import json

from ingestion.metrics import emf_record, emit


def _manifest(**overrides):
    manifest = {
        "ingest_id": "20240308T100000000000Z-0123456789ab",
        "source_file": "s3://in/orders 1.csv",
        "status": "landed",
        "rows_in": 1000,
        "valid": 990,
        "rejected": {"missing": 3, "invalid": 5, "duplicate": 2},
        "ignored_columns": [],
        "partitions": ["2024-03-01", "2024-03-02"],
        "landed_at": "2024-03-08T10:00:00Z",
        "error": None,
    }
    manifest.update(overrides)
    return manifest


def _directive(record):
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    return directive


def test_landed_file_reports_counts_bytes_seconds_under_status_dimension():
    # Given a landed file's manifest, its size and duration
    manifest = _manifest()

    # When its EMF record is built
    record = emf_record(manifest, bytes_in=12345, seconds=1.5, timestamp_ms=1709892000000)

    # Then every metric value is a top-level member named in the directive with its unit
    directive = _directive(record)
    assert directive["Namespace"] == "Duff/Ingestion"
    assert directive["Dimensions"] == [["Status"]]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {
        "Files": "Count",
        "RowsIn": "Count",
        "Valid": "Count",
        "Rejected": "Count",
        "RejectedMissing": "Count",
        "RejectedInvalid": "Count",
        "RejectedDuplicate": "Count",
        "Bytes": "Bytes",
        "Seconds": "Seconds",
    }
    assert record["Status"] == "landed"
    assert record["_aws"]["Timestamp"] == 1709892000000
    assert (record["RowsIn"], record["Valid"], record["Rejected"]) == (1000, 990, 10)
    assert (record["RejectedMissing"], record["RejectedInvalid"], record["RejectedDuplicate"]) == (
        3,
        5,
        2,
    )
    assert (record["Bytes"], record["Seconds"], record["Files"]) == (12345, 1.5, 1)
    # And the searchable properties
    assert record["ingest_id"] == manifest["ingest_id"]
    assert record["source_file"] == "s3://in/orders 1.csv"
    assert record["partitions"] == 2


def test_quarantined_file_reports_zero_counts_and_missing_reasons_as_zero():
    # Given a quarantined file (zero counts, empty rejected map)
    manifest = _manifest(status="quarantined", rows_in=0, valid=0, rejected={}, partitions=[])

    # When its record is built
    record = emf_record(manifest, bytes_in=7, seconds=0.01)

    # Then the dimension says quarantined and every reason is present with 0
    assert record["Status"] == "quarantined"
    assert record["Rejected"] == 0
    assert record["RejectedMissing"] == record["RejectedInvalid"] == 0
    assert record["RejectedDuplicate"] == 0


def test_unknown_reason_gets_its_own_metric_and_counts_in_total():
    # Given a manifest with a reason that is not one of the contract's three
    record = emf_record(_manifest(rejected={"invalid": 1, "too_long": 4}), bytes_in=None, seconds=0)

    # Then it is reported as its own metric and in the total, and Bytes is left out when unknown
    assert record["RejectedTooLong"] == 4
    assert record["Rejected"] == 5
    names = {m["Name"] for m in _directive(record)["Metrics"]}
    assert "RejectedTooLong" in names
    assert "Bytes" not in names and "Bytes" not in record


def test_namespace_from_environment(monkeypatch):
    # Given DUFF_METRICS_NAMESPACE set
    monkeypatch.setenv("DUFF_METRICS_NAMESPACE", "Duff/Staging")

    # When a record is built, Then it uses that namespace
    assert _directive(emf_record(_manifest(), bytes_in=1, seconds=1))["Namespace"] == "Duff/Staging"


def test_emit_writes_exactly_one_bare_json_line():
    # Given a stream
    out = io.StringIO()

    # When a record is emitted
    returned = emit(_manifest(status="skipped"), bytes_in=10, seconds=0.2, stream=out)

    # Then the stream holds one line of JSON equal to the returned object
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert out.getvalue().endswith("\n")
    assert json.loads(lines[0]) == returned
    assert returned["Status"] == "skipped"
