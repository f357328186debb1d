"""The Athena adapter with botocore's Stubber: parameters, result reuse, backoff, timeout."""

import datetime as dt
from decimal import Decimal

import boto3
import pytest
import sqlglot
from botocore.stub import Stubber

from api.app import App, Request
from api.backends.athena import AthenaBackend, AthenaClient, AthenaQueryError, to_parameter
from api.errors import BackendTimeout
from api.service import OrderFilter
from api.settings import Settings

KEY = "athena-unit-key"
SCHEMA = "duff_analytics_test"


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def athena_stub():
    client = boto3.client(
        "athena",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def runner(client, fake, timeout=20.0):
    return AthenaClient(
        client,
        work_group="duff-test-api",
        database=SCHEMA,
        output_location="s3://results/api/",
        reuse_minutes=30,
        timeout_seconds=timeout,
        sleep=fake.sleep,
        clock=fake.clock,
    )


def state(stubber, qid, value, reason=None):
    status = {"State": value}
    if reason:
        status["StateChangeReason"] = reason
    stubber.add_response(
        "get_query_execution",
        {"QueryExecution": {"QueryExecutionId": qid, "Status": status}},
        {"QueryExecutionId": qid},
    )


def results(stubber, qid, columns, rows, token=None, next_token=None, header=True):
    data = [{"Data": [{"VarCharValue": name} for name, _ in columns]}] if header else []
    data += [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in rows]
    response = {
        "ResultSet": {
            "Rows": data,
            "ResultSetMetadata": {
                "ColumnInfo": [{"Name": n, "Label": n, "Type": t} for n, t in columns]
            },
        }
    }
    if next_token:
        response["NextToken"] = next_token
    expected = {"QueryExecutionId": qid, "MaxResults": 1000}
    if token:
        expected["NextToken"] = token
    stubber.add_response("get_query_results", response, expected)


def test_parameters_reuse_work_group_and_backoff(athena_stub):
    # Given an orders query with filters and a cursor
    client, stubber = athena_stub
    fake = FakeTime()
    r = runner(client, fake)
    from api.backends.athena import AthenaSnapshot

    snap = AthenaSnapshot(r, SCHEMA, "build-7", None)
    sql, params = snap.orders_sql(
        OrderFilter(
            client_id=13,
            status="delivered",
            channel="B2B",
            date_from=dt.date(2024, 3, 1),
            date_to=dt.date(2024, 3, 2),
        ),
        500,
        101,
    )
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": "q1"},
        {
            "QueryString": "/* duff build build-7 */ " + sql,
            "QueryExecutionContext": {"Database": SCHEMA},
            "WorkGroup": "duff-test-api",
            "ExecutionParameters": [
                "13",
                "'delivered'",
                "'B2B'",
                "'2024-03-01'",
                "'2024-03-02'",
                "500",
            ],
            "ResultConfiguration": {"OutputLocation": "s3://results/api/"},
            "ResultReuseConfiguration": {
                "ResultReuseByAgeConfiguration": {"Enabled": True, "MaxAgeInMinutes": 30}
            },
        },
    )
    for s in ("QUEUED", "RUNNING", "RUNNING", "RUNNING"):
        state(stubber, "q1", s)
    state(stubber, "q1", "SUCCEEDED")
    cols = [
        ("order_id", "bigint"),
        ("client_id", "bigint"),
        ("product_id", "bigint"),
        ("product_description", "varchar"),
        ("units", "integer"),
        ("unit_price", "decimal(12,2)"),
        ("total_amount", "decimal(22,2)"),
        ("liters", "decimal(20,3)"),
        ("channel", "varchar"),
        ("status", "varchar"),
        ("pa_date", "date"),
    ]
    row = ["501", "13", "2", "Duff Lite", "3", "1.10", "3.30", "0.990", "B2B", "delivered"]
    results(stubber, "q1", cols, [[*row, "2024-03-01"]], next_token="t2")
    results(stubber, "q1", cols, [[*row[:1], *row[1:], "2024-03-02"]], token="t2", header=False)
    # When it runs
    rows = snap.query(sql, params)
    # Then parameters are bound (never pasted), polling backs off exponentially
    assert fake.sleeps == [0.05, 0.1, 0.2, 0.4]
    assert rows[0] == (
        501,
        13,
        2,
        "Duff Lite",
        3,
        Decimal("1.10"),
        Decimal("3.30"),
        Decimal("0.990"),
        "B2B",
        "delivered",
        dt.date(2024, 3, 1),
    )
    assert rows[1][-1] == dt.date(2024, 3, 2)
    assert "13" not in sql and "delivered" not in sql and "2024" not in sql


def test_timeout_stops_the_query_and_gives_504(athena_stub):
    # Given a query that never finishes within a 1 s deadline
    client, stubber = athena_stub
    fake = FakeTime()
    r = runner(client, fake, timeout=1.0)
    stubber.add_response("start_query_execution", {"QueryExecutionId": "slow"}, None)
    for _ in range(6):
        state(stubber, "slow", "RUNNING")
    stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": "slow"})
    # When it runs / Then BackendTimeout after sleeping exactly up to the deadline
    with pytest.raises(BackendTimeout):
        r.run("select 1", [])
    assert sum(fake.sleeps) == pytest.approx(1.0)
    assert max(fake.sleeps) <= 1.0


def test_timeout_becomes_504_error_body(athena_stub):
    client, stubber = athena_stub
    fake = FakeTime()
    r = runner(client, fake, timeout=0.1)
    backend = AthenaBackend(r, SCHEMA, build_check_seconds=60, clock=fake.clock)
    # the build lookup succeeds at once
    stubber.add_response("start_query_execution", {"QueryExecutionId": "b"}, None)
    state(stubber, "b", "SUCCEEDED")
    results(
        stubber,
        "b",
        [("build_id", "varchar"), ("built_at", "timestamp(3)"), ("data_as_of", "timestamp(3)")],
        [["inv-1", "2024-04-01 12:00:00.000", "2024-04-01 11:59:30.000"]],
    )
    # the data query does not
    stubber.add_response("start_query_execution", {"QueryExecutionId": "p"}, None)
    for _ in range(3):
        state(stubber, "p", "RUNNING")
    stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": "p"})
    app = App(Settings(api_key=KEY, backend="athena", lake="s3://x"), backend)
    resp = app.handle(Request("GET", "/products", (), {"x-api-key": KEY}))
    assert resp.status == 504
    assert resp.json()["error"]["code"] == "timeout"


def test_failed_query_is_a_server_error_without_details(athena_stub):
    client, stubber = athena_stub
    r = runner(client, FakeTime())
    stubber.add_response("start_query_execution", {"QueryExecutionId": "f"}, None)
    state(stubber, "f", "FAILED", "TABLE_NOT_FOUND: line 1:15: Table x does not exist")
    with pytest.raises(AthenaQueryError):
        r.run("select 1", [])


def test_health_reads_build_info_without_reuse_and_caches_it(athena_stub):
    # Given mart_build_info in Athena
    client, stubber = athena_stub
    fake = FakeTime()
    backend = AthenaBackend(runner(client, fake), SCHEMA, build_check_seconds=10, clock=fake.clock)
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": "b1"},
        {
            "QueryString": (
                f'select build_id, built_at, data_as_of from "{SCHEMA}"."mart_build_info"'
            ),
            "QueryExecutionContext": {"Database": SCHEMA},
            "WorkGroup": "duff-test-api",
            "ResultConfiguration": {"OutputLocation": "s3://results/api/"},
        },
    )
    state(stubber, "b1", "SUCCEEDED")
    results(
        stubber,
        "b1",
        [("build_id", "varchar"), ("built_at", "timestamp(6)"), ("data_as_of", "timestamp(6)")],
        [["inv-9", "2024-04-01 12:00:00.000000", "2024-04-01 11:59:30.123456"]],
    )
    app = App(Settings(api_key=KEY, backend="athena", lake="s3://x"), backend)
    # When /health is asked twice within the check interval
    first = app.handle(Request("GET", "/health")).json()
    second = app.handle(Request("GET", "/health")).json()
    # Then one Athena query, and data_as_of in UTC with Z
    assert first["data_as_of"] == "2024-04-01T11:59:30.123456Z"
    assert first == second == {"status": "ok", "data_as_of": "2024-04-01T11:59:30.123456Z"}
    assert backend.snapshot().build_id == "inv-9"


def test_parameters_are_literals_made_by_the_server():
    assert to_parameter(13) == "13"
    assert to_parameter("O'Brien") == "'O''Brien'"
    with pytest.raises(TypeError):
        to_parameter(1.5)


def test_every_statement_parses_as_trino():
    from api.backends.athena import AthenaSnapshot

    snap = AthenaSnapshot(None, SCHEMA, "b", None)
    statements = [
        snap.clients_sql(None, 101)[0],
        snap.clients_sql((Decimal("10.50"), 7), 101)[0],
        snap.orders_sql(OrderFilter(), None, 11)[0],
        snap.orders_sql(
            OrderFilter(1, 2, "created", "Retail", dt.date(2024, 1, 1), dt.date(2024, 1, 2)), 9, 11
        )[0],
        snap.daily_sql(dt.date(2024, 1, 1), dt.date(2024, 1, 2))[0],
    ]
    for sql in statements:
        tree = sqlglot.parse_one(sql.replace("?", "NULL"), read="trino")
        assert tree.find(sqlglot.exp.Select) is not None
        assert f'"{SCHEMA}".' in sql
    # pa_date is compared bare (no function around it), so Athena prunes partitions
    assert "pa_date >= cast(? as date)" in statements[3]


def test_placeholders_match_parameter_counts():
    from api.backends.athena import AthenaSnapshot

    snap = AthenaSnapshot(None, SCHEMA, "b", None)
    f = OrderFilter(1, 2, "created", "Retail", dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    for sql, params in (
        snap.clients_sql((Decimal("1.00"), 3), 5),
        snap.orders_sql(f, 7, 5),
        snap.daily_sql(dt.date(2024, 1, 1), None),
    ):
        assert sql.count("?") == len(params)


def test_throttling_is_503(athena_stub):
    client, stubber = athena_stub
    r = runner(client, FakeTime())
    stubber.add_client_error("start_query_execution", "TooManyRequestsException", "slow down")
    from api.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable):
        r.run("select 1", [], reuse=False)


def build_info(stubber, qid, build_id, built_at):
    stubber.add_response("start_query_execution", {"QueryExecutionId": qid}, None)
    state(stubber, qid, "SUCCEEDED")
    results(
        stubber,
        qid,
        [("build_id", "varchar"), ("built_at", "timestamp(3)"), ("data_as_of", "timestamp(3)")],
        [[build_id, built_at, built_at]],
    )


def test_switches_to_newer_builds_only(athena_stub):
    # Given a backend that re-reads mart_build_info every 10 s
    client, stubber = athena_stub
    fake = FakeTime()
    backend = AthenaBackend(runner(client, fake), SCHEMA, build_check_seconds=10, clock=fake.clock)
    build_info(stubber, "b1", "new-1", "2024-04-01 12:00:00.000")
    build_info(stubber, "b2", "old-0", "2024-04-01 11:00:00.000")  # an older build reappears
    build_info(stubber, "b3", "new-2", "2024-04-01 13:00:00.000")
    # When it is asked over time / Then it moves forward only
    assert backend.snapshot().build_id == "new-1"
    fake.now += 5
    assert backend.snapshot().build_id == "new-1"  # not re-read yet
    fake.now += 6
    assert backend.snapshot().build_id == "new-1"  # re-read: older, ignored
    fake.now += 11
    assert backend.snapshot().build_id == "new-2"
