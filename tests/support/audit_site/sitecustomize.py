"""Loaded at start-up by a Python process whose PYTHONPATH holds this directory (a dbt build
the Athena twin test starts): with ``DUFF_AWS_CALL_LOG`` set, every AWS call the process's
production code makes (dbt-athena, PyAthena) is recorded there as JSON lines by the IAM call
audit's recorder (tests/aws_audit.py), for the test to check against the build's role."""

import os

if os.environ.get("DUFF_AWS_CALL_LOG"):
    from tests.aws_audit import RECORDER

    RECORDER.install()
