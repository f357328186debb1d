"""The Athena adapter with botocore's Stubber: parameters, result reuse, backoff, timeout."""

import datetime as dt
import re
from decimal import Decimal

import boto3
import pytest
import sqlglot
from botocore.stub import Stubber

from api.app import App, Request
from api.backends.athena import AthenaBackend, AthenaClient, AthenaQueryError, to_parameter
from api.declarations import from_project
from api.errors import BackendTimeout
from api.service import select_sql
from api.settings import Settings

KEY = "athena-unit-key"
SCHEMA = "duff_analytics_test"
MARTS = {m.name: m for m in from_project(".")}


def route(operation):
    return next(r for m in MARTS.values() for r in m.routes if r.operation == operation)


def statement(snap, operation, params, after=None, limit=None):
    r = route(operation)
    mart = next(m for m in MARTS.values() if r in m.routes)
    st = select_sql(snap, mart, r, params, after, limit)
    return st.sql, list(st.params)


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

    snap = AthenaSnapshot(r, SCHEMA, "build-7", None, marts=MARTS.values())
    sql, params = statement(
        snap,
        "orders",
        {
            "client_id": 13,
            "status": "delivered",
            "channel": "B2B",
            "from": dt.date(2024, 3, 1),
            "to": dt.date(2024, 3, 2),
        },
        [500],
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
    backend = AthenaBackend(
        runner(client, fake),
        SCHEMA,
        build_check_seconds=10,
        clock=fake.clock,
        check_in_background=False,
    )
    stubber.add_response(
        "start_query_execution",
        {"QueryExecutionId": "b1"},
        {
            "QueryString": (
                f'select build_id, built_at, data_as_of from "{SCHEMA}"."mart_build_info"'
            ),
            "QueryExecutionContext": {"Database": SCHEMA},
            "WorkGroup": "duff-test-api",
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


def _all_statements(snap):
    full = {
        "client_id": 1,
        "product_id": 2,
        "status": "created",
        "channel": "Retail",
        "from": dt.date(2024, 1, 1),
        "to": dt.date(2024, 1, 2),
    }
    return [
        statement(snap, "clients", {}, None, 101),
        statement(snap, "clients", {}, [Decimal("10.50"), 7], 101),
        statement(snap, "client", {"client_id": 7}, None, 2),
        statement(snap, "orders", {}, None, 11),
        statement(snap, "orders", full, [9], 11),
        statement(snap, "client_orders", {"client_id": 7}, [9], 11),
        statement(snap, "sales_daily", {"from": dt.date(2024, 1, 1), "to": full["to"]}),
        statement(snap, "products", {}),
        statement(snap, "sales_by_channel", {}),
        statement(snap, "sales_by_product_channel", {}),
        statement(snap, "status_summary", {}),
    ]


def test_every_statement_parses_as_trino():
    from api.backends.athena import AthenaSnapshot

    # Given every declared route's statement, with every filter and a cursor
    snap = AthenaSnapshot(None, SCHEMA, "b", None, marts=MARTS.values())
    statements = [sql for sql, _ in _all_statements(snap)]
    # Then each parses as Trino and reads the schema's tables
    for sql in statements:
        tree = sqlglot.parse_one(sql.replace("?", "NULL"), read="trino")
        assert tree.find(sqlglot.exp.Select) is not None
        assert f'"{SCHEMA}".' in sql
    # pa_date is compared bare (no function around it), so Athena prunes partitions
    assert "pa_date >= cast(? as date)" in statements[4]
    assert "pa_date <= cast(? as date)" in statements[6]
    # the clients' keyset compares spend as an exact decimal
    assert "total_spend < cast(? as decimal(38,2))" in statements[1]


def test_placeholders_match_parameter_counts():
    from api.backends.athena import AthenaSnapshot

    snap = AthenaSnapshot(None, SCHEMA, "b", None, marts=MARTS.values())
    for sql, params in _all_statements(snap):
        assert sql.count("?") == len(params)
        assert all(isinstance(p, int | str) for p in params)


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
    backend = AthenaBackend(
        runner(client, fake),
        SCHEMA,
        build_check_seconds=10,
        clock=fake.clock,
        check_in_background=False,
    )
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


class ScriptedRunner:
    """An AthenaClient stand-in: records each query's deadline; build info from a script."""

    def __init__(self, fake, infos):
        self.fake = fake
        self.infos = list(infos)
        self.deadlines = []
        self.release = None

    def deadline(self):
        return self.fake.clock() + 20.0

    def run(self, sql, params, *, reuse=True, deadline=None):
        if "mart_build_info" in sql:
            if self.release is not None:
                self.release.wait(5)
            info = self.infos.pop(0)
            if isinstance(info, Exception):
                raise info
            return [info]
        self.deadlines.append(deadline)
        self.fake.now += 3  # each data query takes 3 s
        return [(7,)] if sql.endswith(" limit 1") else []


def test_one_time_budget_per_request_across_its_queries():

    # Given a build, and a client's orders (two queries: an empty page, then whether the
    # client exists)
    fake = FakeTime()
    info = ("b1", dt.datetime(2024, 4, 1, tzinfo=dt.UTC), None)
    r = ScriptedRunner(fake, [info])
    backend = AthenaBackend(r, SCHEMA, clock=fake.clock, marts=MARTS.values())
    app = App(Settings(api_key=KEY, backend="athena", lake="s3://x", cache_ttl_seconds=0), backend)
    # When it is asked
    resp = app.handle(Request("GET", "/clients/7/orders", (), {"x-api-key": KEY}))
    # Then both queries ran against the one deadline set when the request took its snapshot
    assert resp.status == 200
    assert len(r.deadlines) == 2 and r.deadlines[0] == r.deadlines[1] == 120.0


def test_the_build_check_runs_off_the_request_path_and_a_failure_keeps_the_build():
    import threading

    # Given a backend serving build b1 whose next check will block, then fail
    fake = FakeTime()
    info = ("b1", dt.datetime(2024, 4, 1, tzinfo=dt.UTC), None)
    r = ScriptedRunner(fake, [info, AthenaQueryError("TABLE_NOT_FOUND")])
    backend = AthenaBackend(r, SCHEMA, clock=fake.clock, marts=MARTS.values())
    assert backend.snapshot().build_id == "b1"
    r.release = threading.Event()
    fake.now += 11
    # When a request comes after the check interval / Then it does not wait for the check
    assert backend.snapshot().build_id == "b1"
    checking = backend._checking
    assert checking is not None and checking.is_alive()
    r.release.set()
    checking.join(5)
    # And the failed check (the table was being replaced) left the build in service
    assert backend.snapshot().build_id == "b1"


def test_a_stack_no_build_has_reached_answers_503_and_checks_once_per_interval():
    # Given a stack with no mart_build_info yet (no build has run), then a first build
    fake = FakeTime()
    info = ("b1", dt.datetime(2024, 4, 1, tzinfo=dt.UTC), None)
    missing = AthenaQueryError(
        "Athena query q1 ended FAILED",
        reason="TABLE_NOT_FOUND: line 1:45: Table 'awsdatacatalog.x.mart_build_info' "
        "does not exist",
    )
    r = ScriptedRunner(fake, [missing, info])
    backend = AthenaBackend(r, SCHEMA, clock=fake.clock, marts=MARTS.values())
    app = App(Settings(api_key=KEY, backend="athena", lake="s3://x", cache_ttl_seconds=0), backend)
    # When /health, a data route and /openapi.json are asked / Then "no data yet", not a 500
    assert app.handle(Request("GET", "/health")).status == 503
    data = app.handle(Request("GET", "/sales/daily", (), {"x-api-key": KEY}))
    assert data.status == 503 and data.json()["error"]["code"] == "unavailable"
    assert app.handle(Request("GET", "/openapi.json")).status == 200
    # And those requests within the interval started one query, not one each
    assert len(r.infos) == 1
    # When the first build has landed and the interval has passed / Then it is served
    fake.now += 11
    assert app.handle(Request("GET", "/health")).status == 200
    assert backend.snapshot().build_id == "b1"


def test_an_athena_fault_before_the_first_build_is_a_500_not_no_data_yet():
    # Given an API whose role may not start queries (no build known yet)
    fake = FakeTime()
    denied = AthenaQueryError("Athena StartQueryExecution failed: AccessDeniedException")
    r = ScriptedRunner(fake, [denied])
    backend = AthenaBackend(r, SCHEMA, clock=fake.clock, marts=MARTS.values())
    app = App(Settings(api_key=KEY, backend="athena", lake="s3://x", cache_ttl_seconds=0), backend)
    # When /health is asked / Then a server fault, not "no data yet": nothing to wait for
    assert app.handle(Request("GET", "/health")).status == 500


def test_a_build_left_unchecked_past_the_stale_limit_is_checked_before_it_answers():
    # Given an execution environment serving b1, then idle while two builds ran
    fake = FakeTime()
    b1 = ("b1", dt.datetime(2024, 4, 1, tzinfo=dt.UTC), None)
    b3 = ("b3", dt.datetime(2024, 4, 1, 2, tzinfo=dt.UTC), None)
    r = ScriptedRunner(fake, [b1, b3])
    backend = AthenaBackend(r, SCHEMA, clock=fake.clock, marts=MARTS.values())
    assert backend.snapshot().build_id == "b1"
    fake.now += 3600
    # When the next request comes / Then it answers from the build that exists now (b1's
    # tables were dropped by the build after next), read on the request path, no thread
    assert backend.snapshot().build_id == "b3"
    assert backend._checking is None


def test_order_by_leaves_out_columns_an_equality_fixes():
    from api.backends.athena import AthenaSnapshot

    snap = AthenaSnapshot(None, SCHEMA, "b", None, marts=MARTS.values())
    # Given a client's lookup: its only order column is the id it is filtered on
    sql, params = statement(snap, "client", {"client_id": 13}, limit=2)
    # Then no ORDER BY at all (at most one row), and the filter is still there
    assert "order by" not in sql and "client_id = ?" in sql and params == [13]
    # Given a client's orders, and /orders filtered by a client: order_id still orders them
    sql, _ = statement(snap, "client_orders", {"client_id": 13, "limit": 5}, [7], 6)
    assert sql.endswith(" order by order_id limit 6") and "(order_id > ?)" in sql
    sql, _ = statement(snap, "orders", {"client_id": 13, "limit": 5}, limit=6)
    assert sql.endswith(" order by order_id limit 6")
    # Given /clients (nothing fixed): its whole declared order
    sql, _ = statement(snap, "clients", {"limit": 5}, limit=6)
    assert sql.endswith(" order by total_spend desc, client_id limit 6")


INVOCATION = "5f0c2a9e-1b7d-4c3e-9a8f-0123456789ab"


def test_a_build_is_served_from_its_own_tables():
    from api.backends.athena import AthenaSnapshot, build_tag

    # Given a build named by its dbt invocation id
    snap = AthenaSnapshot(None, SCHEMA, INVOCATION, None, marts=MARTS.values())
    # Then every statement reads the tables of that build (macros/served_builds.sql names them)
    assert build_tag(INVOCATION) == "5f0c2a9e1b7d"
    for sql, _ in _all_statements(snap):
        names = set(re.findall(rf'"{SCHEMA}"\."(\w+)"', sql))
        assert names and all(n.endswith("__b5f0c2a9e1b7d") for n in names), sql
    # and a build id that is no invocation id names no tables: the views
    assert build_tag("b1") is None
    plain = AthenaSnapshot(None, SCHEMA, "b1", None, marts=MARTS.values())
    assert plain.table("mart_orders") == f'"{SCHEMA}"."mart_orders"'


class ProbedRunner(ScriptedRunner):
    """Build info from a script; the probe of a build's tables fails for builds in ``missing``."""

    def __init__(self, fake, infos, missing=()):
        super().__init__(fake, infos)
        self.missing = set(missing)
        self.probes = []

    def run(self, sql, params, *, reuse=True, deadline=None):
        if sql.endswith(" limit 0"):
            self.probes.append(sql)
            if any(f"__b{tag}" in sql for tag in self.missing):
                raise AthenaQueryError("TABLE_NOT_FOUND")
            return []
        return super().run(sql, params, reuse=reuse, deadline=deadline)


def test_a_build_without_tables_of_its_own_is_served_from_the_views():
    # Given the last build made before per-build tables (no <mart>__b<tag> exists), then one
    # made after
    fake = FakeTime()
    later = INVOCATION.replace("5f0c", "6a1d")
    infos = [
        (INVOCATION, dt.datetime(2024, 4, 1, tzinfo=dt.UTC), None),
        (later, dt.datetime(2024, 4, 2, tzinfo=dt.UTC), None),
    ]
    r = ProbedRunner(fake, infos, missing={"5f0c2a9e1b7d"})
    backend = AthenaBackend(
        r, SCHEMA, clock=fake.clock, marts=MARTS.values(), check_in_background=False
    )
    # When each is seen / Then one probe each; the first is read from the views, the second
    # from its own tables
    first = backend.snapshot()
    assert first.table("mart_orders") == f'"{SCHEMA}"."mart_orders"'
    fake.now += 11
    second = backend.snapshot()
    assert second.table("mart_orders") == f'"{SCHEMA}"."mart_orders__b6a1d2a9e1b7d"'
    assert len(r.probes) == 2
    # and a request keeps its build's tables
    assert second.for_request().table("mart_client_sales").endswith('__b6a1d2a9e1b7d"')
