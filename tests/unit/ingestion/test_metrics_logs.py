"""JSON structured logs: one object per line, with the ingest id of the file being landed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ingestion.metrics import bind_log_fields, configure_json_logging, log_context


@pytest.fixture
def json_log():
    # Restore the root logger after the test (pytest's own capture handler included).
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_json_logging("INFO", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def _lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_carry_context_fields_extra_fields_and_level(json_log):
    # Given a file being landed
    log = logging.getLogger("ingestion.test")

    # When lines are logged inside its context, the ingest id becoming known half-way
    with log_context(source_file="s3://in/a b.csv", aws_request_id="req-1"):
        log.info("reading %s", "header")
        bind_log_fields(ingest_id="20240308T100000000000Z-0123456789ab")
        log.warning("landed", extra={"rows_in": 3})
    log.info("after")

    # Then every line is JSON with the fields known at that moment, and none leak out
    first, second, after = _lines(json_log)
    assert first["message"] == "reading header"
    assert first["level"] == "INFO"
    assert first["logger"] == "ingestion.test"
    assert first["source_file"] == "s3://in/a b.csv"
    assert first["aws_request_id"] == "req-1"
    assert "ingest_id" not in first
    assert second["ingest_id"] == "20240308T100000000000Z-0123456789ab"
    assert second["rows_in"] == 3
    assert second["level"] == "WARNING"
    assert second["timestamp"].endswith("Z")
    assert "source_file" not in after and "ingest_id" not in after


def test_exception_is_logged_with_its_traceback(json_log):
    # Given an error while landing
    try:
        raise OSError("bucket gone")
    except OSError:
        logging.getLogger("ingestion.test").exception("landing failed")

    # Then the line names the error and holds the traceback
    (line,) = _lines(json_log)
    assert line["message"] == "landing failed"
    assert "OSError: bucket gone" in line["exception"]


def test_sdk_chatter_is_quiet_at_info(json_log):
    # Given botocore logging at INFO, Then nothing is written
    logging.getLogger("botocore.credentials").info("Found credentials in environment")
    assert json_log.getvalue() == ""
