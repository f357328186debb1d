"""The local server's log format (api.server.configure_logging)."""

import json
import logging
import sys

from api.metrics import Metrics
from api.server import JsonLogFormatter, configure_logging


def test_json_lines_hold_one_record_each_and_emf_stays_a_document(tmp_path):
    # Given JSON logging to a file (what "auto" picks when stderr is not a terminal)
    path = tmp_path / "api.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("info", "auto", path=path)
    try:
        # When a record with a newline and an escape is logged, and a metrics flush
        logging.getLogger("duff.api.access").info("GET %s 404", "/x\n2026 forged\x1b[2J")
        metrics = Metrics()
        metrics.count("Requests")
        metrics.flush()
    finally:
        for handler in root.handlers[:]:
            handler.close()
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    # Then two lines: the record as JSON (newline kept inside its message), the EMF as is
    access, emf = (json.loads(line) for line in path.read_text().splitlines())
    assert access["logger"] == "duff.api.access" and access["level"] == "INFO"
    assert access["message"] == "GET /x\n2026 forged\x1b[2J 404"
    assert access["time"].endswith("Z")
    assert emf["Requests"] == 1 and emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Duff/Api"


def test_a_stack_trace_stays_inside_its_record():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("duff.api", logging.ERROR, "x", 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    line = JsonLogFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]
