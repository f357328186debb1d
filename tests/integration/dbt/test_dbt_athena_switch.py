"""The switch between builds on Athena is atomic (issue 12, deliverable 4), on the Athena twin.

Each served mart is a table of its build, `<mart>__b<tag>`, with a view `<mart>` over the
current one; `mart_build_info` names the build (macros/served_builds.sql), and the API's Athena
backend (api/backends/athena.py, its boto3 client pointed at the twin) queries the tables of
the build it names. Four `dbt build --target athena` over one growing lake:

1. a full build; 2. new orders, while the API answers requests; 3. new orders again, with
Athena failing mart_status_summary's table half-way through the build (the pointer must not
move); 4. the same lake again, succeeding (the oldest build is dropped).

After each build the API's answers to a set of routes are recorded; every answer given during
a build, or after the failed one, must be exactly the recorded answer of the build it names.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from api.app import App, Request
from api.backends.athena import AthenaBackend, AthenaClient, build_tag
from api.declarations import from_project
from api.settings import Settings
from tests.athena_twin.account import TwinAccount, dbt_environment, open_account
from tests.athena_twin.engine import QueryFailed

from .conftest import DBT, REPO, Order, RawLake, twin_order

# four dbt builds on the twin (~1 min each on two idle cores) and the API's requests
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

UTC = dt.UTC
KEY = "switch-test-key"
MARTS = from_project(REPO)
# Routes without parameters: the twin does not execute Athena's ExecutionParameters (a path
# or query parameter answers 500 there).
ROUTES = ["/clients", "/orders", "/status-summary", "/sales/daily", "/products"]
FAILING = "mart_status_summary"


_order = twin_order


def _landing(step: int) -> list[Order]:
    if step == 1:
        return [_order(i, 1 + i % 6) for i in range(1, 25)]
    if step == 2:
        return [_order(i, 7 + i % 2) for i in range(25, 37)] + [_order(3, 3, status="broken")]
    if step == 3:
        return [_order(i, 9) for i in range(37, 45)] + [_order(1, 2, status="delivered")]
    return []


class Builds:
    def __init__(self) -> None:
        self.returncode: dict[int, int] = {}
        self.output: dict[int, str] = {}
        self.invocation: dict[int, str] = {}
        self.pointer: dict[int, str] = {}
        self.served: list[str] = []  # the served tables (not mart_build_info)
        self.tables: dict[int, set[str]] = {}  # the per-build tables after each build
        self.views: dict[int, dict[str, str]] = {}  # view -> the SQL it holds
        self.locations: dict[int, dict[str, str]] = {}
        self.tags: dict[int, dict[str, dict]] = {}
        self.answers: dict[str, dict[str, tuple[int, bytes]]] = {}  # build id -> route -> answer
        self.during: dict[int, list[tuple[str, str, int, bytes]]] = {}
        self.after_failure: list[tuple[str, str, int, bytes]] = []
        self.api_queries: list[str] = []
        self.dropped_objects: list[str] = []
        self.data_dir = ""
        self.tier_tag = ""


def _app(account: TwinAccount) -> tuple[App, AthenaBackend]:
    client = boto3.client(
        "athena",
        region_name="us-east-1",
        endpoint_url=account.server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    runner = AthenaClient(
        client,
        work_group=account.work_group.name,
        database=account.analytics_database,
        first_poll_seconds=0.01,
    )
    # the pointer is re-read on every request, so a request may meet any moment of a build
    backend = AthenaBackend(
        runner,
        account.analytics_database,
        build_check_seconds=0,
        marts=MARTS,
        check_in_background=False,
    )
    settings = Settings(api_key=KEY, backend="athena", lake="s3://x", cache_ttl_seconds=0)
    return App(settings, backend), backend


def _ask(app: App) -> list[tuple[str, str, int, bytes]]:
    answers = []
    for route in ROUTES:
        resp = app.handle(Request("GET", route, (), {"x-api-key": KEY}))
        answers.append((resp.headers.get("x-duff-build", ""), route, resp.status, resp.body))
    return answers


def _rows(account: TwinAccount, sql: str) -> list[tuple]:
    ex = account.twin.start(sql, account.analytics_database, account.work_group.name, None)
    assert ex.state == "SUCCEEDED", ex.reason
    return ex.rows


def _view_sql(table: dict) -> str:
    text = table["ViewOriginalText"]
    encoded = text.removeprefix("/* Presto View: ").removesuffix(" */")
    return json.loads(base64.b64decode(encoded))["originalSql"]


def _served(target: Path) -> list[str]:
    manifest = json.loads((target / "manifest.json").read_text())
    return sorted(
        n["alias"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["materialized"] == "served_table"
    )


@pytest.fixture(scope="module")
def switch(moto_server, tmp_path_factory) -> Builds:
    work = tmp_path_factory.mktemp("athena_switch")
    lake = RawLake(work / "lake")
    (lake.root / "raw" / "orders").mkdir(parents=True)
    account = open_account(moto_server)
    env = dbt_environment(account, lake.root)
    builds = Builds()
    builds.data_dir, builds.tier_tag = account.data_dir, account.tier_tag
    target = work / "target"
    original_run = account.twin._run

    def fail_one_served_table(ex, wg):
        # Athena fails one served mart's table mid-build (the third build only)
        if re.search(rf"create table\s+\S*{FAILING}__b", ex.query, re.I):
            raise QueryFailed(f"injected failure writing {FAILING}")
        return original_run(ex, wg)

    app, _ = _app(account)
    try:
        for step in (1, 2, 3, 4):
            landing = _landing(step)
            if landing:
                lake.land(landing, dt.datetime(2024, 3, 9 + step, 8, 0, 0, 1000, tzinfo=UTC))
            account.land(lake.root)
            if step == 3:
                account.twin._run = fail_one_served_table
            log = (work / f"build{step}.log").open("w+")  # a file: a pipe could fill up
            proc = subprocess.Popen(
                [DBT, "build", "--exclude-resource-type", "unit_test",
                 "--target-path", str(target), "--log-path", str(work / "logs")],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            during = []
            if step > 1:  # requests while the build runs
                while proc.poll() is None:
                    during += _ask(app)
                    time.sleep(0.2)
            proc.wait(timeout=900)
            log.seek(0)
            output = log.read()
            log.close()
            account.twin._run = original_run
            builds.during[step] = during
            builds.returncode[step] = proc.returncode
            builds.output[step] = output[-8000:]
            results = json.loads((target / "run_results.json").read_text())
            builds.invocation[step] = results["metadata"]["invocation_id"]
            (pointer,) = _rows(account, "select build_id from mart_build_info")
            builds.pointer[step] = pointer[0]
            builds.served = _served(target)
            names = [t["Name"] for t in account.client("glue").get_tables(
                DatabaseName=account.analytics_database)["TableList"]]  # fmt: skip
            per_build = {n for n in names if re.fullmatch(r"\w+__b[0-9a-f]{12}", n)}
            builds.tables[step] = per_build
            builds.views[step] = {}
            for name in builds.served:
                view = account.glue_table(name)
                builds.views[step][name] = (
                    _view_sql(view) if view and view["TableType"] == "VIRTUAL_VIEW" else ""
                )
            builds.locations[step] = {
                n: account.glue_table(n)["StorageDescriptor"]["Location"] for n in per_build
            }
            builds.tags[step] = {
                n: account.lf_tags(n) for n in [*per_build, *builds.served, "mart_build_info"]
            }
            if step == 3:
                builds.after_failure = _ask(_app(account)[0])  # a new API instance too
            if proc.returncode == 0:
                fresh, _ = _app(account)  # what a cold API answers once the build is done
                builds.answers[pointer[0]] = {
                    route: (status, body) for _, route, status, body in _ask(fresh)
                }
            if step == 4:
                s3 = account.client("s3")
                for name, location in builds.locations[3].items():
                    if name not in per_build:
                        bucket, prefix = location.removeprefix("s3://").split("/", 1)
                        found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
                        builds.dropped_objects += [o["Key"] for o in found.get("Contents", [])]
        builds.api_queries = [
            ex.query for ex in account.twin.executions.values() if "/* duff build " in ex.query
        ]
    finally:
        account.twin._run = original_run
        account.server.__exit__(None, None, None)
    return builds


def test_builds_succeed_and_the_failed_one_does_not_move_the_pointer(switch):
    for step in (1, 2, 4):
        assert switch.returncode[step] == 0, switch.output[step]
        assert switch.pointer[step] == switch.invocation[step]
    # the third build failed on the injected Athena failure, after other served marts
    assert switch.returncode[3] != 0, switch.output[3]
    assert f"injected failure writing {FAILING}" in switch.output[3]
    assert switch.pointer[3] == switch.pointer[2]
    assert len(set(switch.pointer.values())) == 3


def _expected_tables(switch: Builds, *steps: int) -> set[str]:
    return {
        f"{name}__b{build_tag(switch.invocation[step])}" for step in steps for name in switch.served
    }


def test_only_the_current_and_the_previous_build_keep_tables(switch):
    assert {"mart_orders", "mart_quality_rejects_daily"} <= set(switch.served)
    assert "mart_build_info" not in switch.served
    assert switch.tables[1] == _expected_tables(switch, 1)
    assert switch.tables[2] == _expected_tables(switch, 1, 2)
    # the failed build's tables are gone (the pointer never named them), both kept builds stay
    assert switch.tables[3] == _expected_tables(switch, 1, 2)
    # the fourth build keeps itself and the previous served build, the second
    assert switch.tables[4] == _expected_tables(switch, 2, 4)
    # and the first build's data is deleted from S3 with its tables
    assert not switch.dropped_objects, switch.dropped_objects[:5]


def test_the_views_point_at_the_build_the_pointer_names(switch):
    for step in (1, 2, 3, 4):
        tag = build_tag(switch.pointer[step])
        for name in switch.served:
            sql = switch.views[step][name]
            assert re.search(rf"\b{name}__b{tag}\b", sql), (step, name, sql)


def test_every_served_table_is_under_the_data_dir_and_tagged_served(switch):
    served = {switch.tier_tag: ["served"]}
    for step, locations in switch.locations.items():
        assert locations, step
        for name, location in locations.items():
            assert location.startswith(switch.data_dir), (name, location)
        tags = switch.tags[step]
        assert all(value == served for value in tags.values()), (step, tags)


def test_a_request_during_a_build_answers_entirely_from_one_build(switch):
    # Given the answers of each completed build
    asked = 0
    for step in (2, 3, 4):
        for build, route, status, body in switch.during[step]:
            # Then every answer given during a build is the one of the build it names
            assert build in switch.answers, (step, route, status, body[:300])
            assert (status, body) == switch.answers[build][route], (step, route, build)
            asked += 1
    assert asked >= len(ROUTES)
    # and every route answered each completed build
    for build, answers in switch.answers.items():
        assert all(status == 200 for status, _ in answers.values()), (build, answers)
    # and the answers differ between the builds (else the check above proves nothing)
    first, second = switch.answers[switch.pointer[1]], switch.answers[switch.pointer[2]]
    assert all(
        first[route] != second[route]
        for route in ROUTES
        if route not in ("/status-summary", "/products")
    )


def test_after_a_failed_build_the_api_answers_from_the_last_complete_build(switch):
    last = switch.answers[switch.pointer[2]]
    for build, route, status, body in switch.after_failure:
        assert (status, body) == last[route], (route, status, body[:300])
        assert build == switch.pointer[2], route
    # the fourth build served what the third one had landed
    assert switch.answers[switch.pointer[4]]["/orders"] != last["/orders"]


def test_each_api_query_reads_only_the_tables_of_its_build(switch):
    assert switch.api_queries
    for query in switch.api_queries:
        build = re.match(r"/\* duff build (\S+) \*/", query).group(1)
        tags = set(re.findall(r"__b([0-9a-f]{12})\b", query))
        assert tags == {build_tag(build)}, query
