"""The Lambda handler fed with JSON S3 event fixtures and a fake landing function (no AWS)."""

from __future__ import annotations

import copy
import io
import json
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingestion import handler as handler_mod
from ingestion.handler import IngestFailed, handle_event, iter_s3_records, source_uri

EVENTS = Path(__file__).resolve().parents[2] / "events"
LAKE = "s3://duff-lake/lake"


def load_event(name):
    return json.loads((EVENTS / name).read_text())


class FakeLanding:
    """Records the sources it is asked to land; answers like ingestion.land.

    The first call for a source lands it, a repeated call is skipped (idempotency), a source
    named in ``quarantine`` is quarantined and one named in ``broken`` raises.
    """

    def __init__(self, quarantine=(), broken=(), gone=()):
        self.calls = []
        self.quarantine, self.broken, self.gone = set(quarantine), dict(broken), set(gone)
        self.seen = set()

    def __call__(self, source):
        self.calls.append(source)
        if source in self.broken:
            raise self.broken[source]
        if source in self.gone:
            raise FileNotFoundError(f"no such object: {source}")
        ingest_id = f"20240308T100000000000Z-{len(self.calls):012x}"
        base = {
            "ingest_id": ingest_id,
            "source_file": source,
            "ignored_columns": [],
            "landed_at": "2024-03-08T10:00:00Z",
        }
        if source in self.quarantine:
            return {
                **base,
                "status": "quarantined",
                "rows_in": 0,
                "valid": 0,
                "rejected": {"missing": 0, "invalid": 0, "duplicate": 0},
                "partitions": [],
                "error": "missing required column: status",
            }
        status = "skipped" if source in self.seen else "landed"
        self.seen.add(source)
        return {
            **base,
            "status": status,
            "rows_in": 10,
            "valid": 8 if status == "landed" else 0,
            "rejected": {"missing": 1, "invalid": 1, "duplicate": 0},
            "partitions": ["2024-03-01"] if status == "landed" else [],
            "error": None,
        }


class MetricsSink:
    def __init__(self):
        self.records = []

    def __call__(self, manifest, *, bytes_in, seconds):
        self.records.append((dict(manifest), bytes_in, seconds))


def run(event, land, sink=None, exists=lambda source: True):
    return handle_event(
        event,
        land=land,
        lake_root=LAKE,
        request_id="req-1",
        emit_metrics=sink or MetricsSink(),
        source_exists=exists,
    )


def test_keys_are_decoded_with_unquote_plus():
    # Given an event whose keys hold '+' for spaces and %xx escapes
    event = load_event("s3_put_multi.json")

    # When its records are read, Then the keys are decoded exactly as S3 encoded them
    assert [source_uri(r) for r in iter_s3_records(event)] == [
        "s3://duff-incoming/incoming/Homer's orders (1).csv",
        "s3://duff-incoming/incoming/café + bar.csv",
        "s3://duff-incoming/incoming/2024/plain.csv",
    ]


def test_every_record_of_an_event_is_landed_and_summarised():
    # Given an event with three records
    land, sink = FakeLanding(), MetricsSink()

    # When it is handled
    summary = run(load_event("s3_put_multi.json"), land, sink)

    # Then each decoded source is landed once, in event order
    assert land.calls == [
        "s3://duff-incoming/incoming/Homer's orders (1).csv",
        "s3://duff-incoming/incoming/café + bar.csv",
        "s3://duff-incoming/incoming/2024/plain.csv",
    ]
    assert (summary["records"], summary["landed"], summary["failed"]) == (3, 3, 0)
    assert [f["status"] for f in summary["files"]] == ["landed"] * 3
    assert summary["files"][0]["rows_in"] == 10
    assert summary["files"][0]["partitions"] == ["2024-03-01"]
    # And one metric record per file, with the object size from the event
    assert [(m["status"], size) for m, size, _ in sink.records] == [
        ("landed", 2048),
        ("landed", 512),
        ("landed", 64),
    ]
    assert all(seconds >= 0 for _, _, seconds in sink.records)


def test_a_redelivered_event_is_skipped_not_failed():
    # Given an event already handled once (at-least-once delivery)
    land = FakeLanding()
    event = load_event("s3_put_single.json")
    first = run(event, land)

    # When the same event arrives again
    second = run(event, land)

    # Then the file lands once and the second delivery reports skipped
    assert first["landed"] == 1
    assert (second["landed"], second["skipped"]) == (0, 1)
    assert land.calls == ["s3://duff-incoming/incoming/orders march 2024.csv"] * 2


def test_quarantined_file_is_a_result_not_an_error():
    # Given an event whose file is refused whole
    source = "s3://duff-incoming/incoming/orders march 2024.csv"
    land, sink = FakeLanding(quarantine=[source]), MetricsSink()

    # When it is handled, Then no exception is raised and the quarantine is counted
    summary = run(load_event("s3_put_single.json"), land, sink)
    assert summary["quarantined"] == 1
    assert summary["files"][0]["error"] == "missing required column: status"
    assert sink.records[0][0]["status"] == "quarantined"


def test_infrastructure_error_lands_the_others_then_raises_for_a_retry():
    # Given an event whose second file hits an S3 error
    broken = "s3://duff-incoming/incoming/café + bar.csv"
    land, sink = FakeLanding(broken={broken: ConnectionError("S3 timed out")}), MetricsSink()

    # When it is handled
    with pytest.raises(IngestFailed, match="1 of 3 record") as raised:
        run(load_event("s3_put_multi.json"), land, sink)

    # Then the other two were still landed, the error names the source, and is chained
    assert len(land.calls) == 3
    assert broken in str(raised.value)
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert [m["status"] for m, _, _ in sink.records] == ["landed", "failed", "landed"]
    # And a retry of the whole event lands only what is missing
    retry = run(load_event("s3_put_multi.json"), FakeLanding())
    assert retry["failed"] == 0


def test_removed_objects_placeholders_and_lake_internal_keys_are_ignored():
    # Given an event mixing a real file, a deletion, a folder placeholder and a key inside the
    # lake's own raw/ area
    land = FakeLanding()

    # When it is handled
    summary = run(load_event("s3_put_mixed.json"), land)

    # Then only the real file is landed and the rest is ignored with a reason
    assert land.calls == ["s3://duff-incoming/incoming/kept.csv"]
    assert (summary["landed"], summary["ignored"]) == (1, 3)
    reasons = [f["reason"] for f in summary["files"] if f["status"] == "ignored"]
    assert "ObjectRemoved:Delete" in reasons[0]
    assert "folder" in reasons[1]
    assert "raw/" in reasons[2]


def test_files_beside_the_lake_in_the_same_bucket_are_landed():
    # Given an incoming file under the lake's prefix but outside its own areas
    event = load_event("s3_put_single.json")
    event["Records"][0]["s3"]["bucket"]["name"] = "duff-lake"
    event["Records"][0]["s3"]["object"]["key"] = "lake/incoming/a+b.csv"
    land = FakeLanding()

    # When it is handled, Then it is landed
    assert run(event, land)["landed"] == 1
    assert land.calls == ["s3://duff-lake/lake/incoming/a b.csv"]


def test_object_deleted_before_landing_is_gone_not_failed():
    # Given a file deleted between the event and the landing
    land = FakeLanding(gone=["s3://duff-incoming/incoming/orders march 2024.csv"])

    # When it is handled, Then it is reported gone and no retry is asked for
    summary = run(load_event("s3_put_single.json"), land, exists=lambda source: False)
    assert (summary["gone"], summary["failed"]) == (1, 0)


def test_a_missing_file_error_while_the_source_exists_is_a_failure():
    # Given landing that raises FileNotFoundError (e.g. a staged object vanished) for a source
    # that is still there
    land = FakeLanding(gone=["s3://duff-incoming/incoming/orders march 2024.csv"])

    # When it is handled, Then it is a failure to retry, not a silent "gone"
    with pytest.raises(IngestFailed):
        run(load_event("s3_put_single.json"), land, exists=lambda source: True)


def test_when_existence_cannot_be_checked_the_record_fails():
    # Given landing that raises FileNotFoundError and an existence check that fails too
    land = FakeLanding(gone=["s3://duff-incoming/incoming/orders march 2024.csv"])

    def exists(source):
        raise PermissionError("AccessDenied")

    # When it is handled, Then the event fails (retried, then dead-lettered), never dropped
    with pytest.raises(IngestFailed):
        run(load_event("s3_put_single.json"), land, exists=exists)


def test_size_falls_back_to_the_manifest_when_the_event_has_none():
    # Given a record without a size (as in some replayed events)
    event = load_event("s3_put_single.json")
    del event["Records"][0]["s3"]["object"]["size"]

    class Landing(FakeLanding):
        def __call__(self, source):
            return {**super().__call__(source), "bytes": 4321}

    sink = MetricsSink()

    # When it is handled, Then the metric uses the manifest's byte count
    run(event, Landing(), sink)
    assert sink.records[0][1] == 4321


def test_s3_test_event_lands_nothing():
    # Given the event S3 sends when a notification is configured
    land = FakeLanding()

    # When it is handled, Then nothing happens and the summary says so
    summary = run(load_event("s3_test_event.json"), land)
    assert summary["records"] == 0
    assert land.calls == []


def test_sqs_and_sns_wrapped_s3_events_are_unwrapped():
    # Given the single-record S3 event wrapped by SQS, and the multi one by SNS inside SQS
    single, multi = load_event("s3_put_single.json"), load_event("s3_put_multi.json")
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(multi)}}]}
    event = {
        "Records": [
            {"eventSource": "aws:sqs", "body": json.dumps(single)},
            {"eventSource": "aws:sqs", "body": json.dumps(sns)},
        ]
    }
    land = FakeLanding()

    # When it is handled, Then all four files are landed
    assert run(event, land)["landed"] == 4
    assert land.calls[0] == "s3://duff-incoming/incoming/orders march 2024.csv"
    assert land.calls[2] == "s3://duff-incoming/incoming/café + bar.csv"


def test_an_event_that_is_not_from_s3_is_refused():
    # Given an event of another service, Then it is an error (it goes to the DLQ, not lost)
    with pytest.raises(ValueError, match="not an S3 event"):
        run({"detail-type": "Scheduled Event"}, FakeLanding())


def test_lambda_entry_point_uses_settings_and_request_id(monkeypatch):
    # Given the module's landing replaced by the fake, and a Lambda context
    land = FakeLanding()
    monkeypatch.setattr(handler_mod, "_land", land)
    monkeypatch.setattr(handler_mod, "SETTINGS", handler_mod.Settings(lake=LAKE))
    emitted = io.StringIO()
    monkeypatch.setattr(handler_mod.metrics.sys, "stdout", emitted)

    class Context:
        aws_request_id = "c0ffee"

    # When the entry point is invoked
    summary = handler_mod.handler(copy.deepcopy(load_event("s3_put_single.json")), Context())

    # Then the file is landed and one EMF line went to stdout
    assert summary["landed"] == 1
    (line,) = emitted.getvalue().splitlines()
    assert json.loads(line)["Status"] == "landed"


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
        min_size=1,
        max_size=60,
    ).filter(lambda k: not k.endswith("/"))
)
def test_any_key_survives_s3_encoding_and_decoding(key):
    # Given any object key, URL-encoded the way S3 writes it into events ('+' for a space)
    event = load_event("s3_put_single.json")
    event["Records"][0]["s3"]["object"]["key"] = urllib.parse.quote_plus(key, safe="/")
    land = FakeLanding()

    # When the event is handled, Then landing is asked for exactly that key
    run(event, land)
    assert land.calls == [f"s3://duff-incoming/{key}"]
