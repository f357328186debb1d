"""Shared pytest fixtures for every part of the project.

Only generic fixtures live here; each part keeps its own fixtures in its own conftest with
distinct names.

AWS without AWS
---------------
``moto_server`` (session scope) starts one moto server in a thread on ``127.0.0.1`` on a free
port and yields its endpoint URL (``http://127.0.0.1:<port>``). It sets no environment itself,
so merely requesting it changes nothing global. Its state (buckets, Glue databases, ...) is
shared by the whole session: give your buckets and databases unique names (the
``unique_name`` fixture below), or reset the server with
``requests.post(f"{endpoint}/moto-api/reset")`` if you truly need a clean slate (other tests in
the same session lose their state too, so prefer unique names).

``aws_env`` (function scope) points every AWS client at that server for one test through
``monkeypatch``: ``AWS_ENDPOINT_URL`` (honoured by boto3 >= 1.28, and by our adapters for
pyarrow's ``S3FileSystem``, which needs ``endpoint_override`` explicitly), dummy credentials
and ``AWS_DEFAULT_REGION=us-east-1``. It yields the endpoint URL. Everything is undone after
the test.

Example::

    def test_put(aws_env, unique_name):
        s3 = boto3.client("s3")            # talks to moto, not AWS
        s3.create_bucket(Bucket=unique_name("bkt"))
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest

AWS_TEST_REGION = "us-east-1"


def _unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("bkt")`` -> ``"bkt-<12 hex>"``: a name no other test in the session uses.

    Lower case, digits and dashes: valid for S3 buckets; for Glue databases (no dashes in
    Athena-friendly names) use ``unique_name("db").replace("-", "_")``.
    """
    return _unique_name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port, for the whole session; yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> str:
    """Point boto3 and our AWS adapters at the moto server for one test; returns the URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_TEST_REGION)
    monkeypatch.setenv("AWS_REGION", AWS_TEST_REGION)
    # Keep a developer's real profile and config out of the tests.
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return moto_server


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Put the logging configuration back after each test. The entry points a test calls in
    process (the ingestion CLI, the API server, the metrics' JSON logging) replace the root
    logger's handlers with one on the sys.stderr of that moment, pytest's capture of that
    test; a later test in the same worker would log to that closed stream ("--- Logging
    error ---" on its stderr)."""
    root = logging.getLogger()

    def configured() -> list[logging.Handler]:  # (pytest's own capture handlers come and go)
        return [h for h in root.handlers if not type(h).__module__.startswith("_pytest")]

    handlers, level = configured(), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    try:
        yield
    finally:
        for handler in configured():
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)


NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "uvicorn", "uvicorn.access")


# -- the IAM call audit (tests/aws_audit.py) -------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _record_aws_calls() -> Iterator[None]:
    """Record every botocore call of the session (cheap: a hook per client); see aws_audit."""
    from tests.aws_audit import RECORDER

    RECORDER.install()
    try:
        yield
    finally:
        RECORDER.uninstall()


@pytest.fixture(scope="session")
def _iam_audit_policies():
    from tests.aws_audit import Audit

    return Audit()


@pytest.fixture
def iam_audit(_iam_audit_policies):
    """Check every AWS call production code makes in this test against the role it runs
    under in infra/template.yaml; a call the role could not make fails the test."""
    import json
    import os

    from tests.aws_audit import RECORDER

    mark = RECORDER.mark()
    yield _iam_audit_policies
    calls = RECORDER.since(mark)
    evaluated, findings = _iam_audit_policies.check(calls)
    log = os.environ.get("DUFF_IAM_AUDIT_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            for row in evaluated:
                f.write(json.dumps(row) + "\n")
    if not evaluated and not findings:
        pytest.fail("IAM audit: no AWS call of production code was recorded in this test")
    if findings:
        text = "\n".join(f.text for f in findings)
        pytest.fail(
            f"IAM audit: {len(findings)} call(s) the role could not make in production "
            f"(infra/template.yaml):\n{text}",
            pytrace=False,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (minutes of dbt builds each) first, the rest in their order:
    ``make test`` runs ``pytest -n 2 --dist loadfile``, and a long file started last would
    leave one worker running it alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
