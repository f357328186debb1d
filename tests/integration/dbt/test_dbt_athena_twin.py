"""`dbt build --target athena` end to end on the Athena twin (tests/athena_twin/), three times
over one growing lake, each build compared row for row with the local target's build of the
same lake.

dbt-athena runs unmodified: its materialisations and macros, its boto3 calls to Glue and S3
(moto) and its Athena cursor, whose queries the twin executes. The work group is the
template's DbtWorkGroup, so what the template says about it (enforced configuration, result
location) is what the adapter sees. The builds select what the CodeBuild build selects
(buildspec.yml: unit tests are left out on Athena).

1. a full build of two landings (one re-sends orders of the other);
2. an incremental build after new orders and re-sent ones (a new status, a new pa_date, a new
   client name), and a landing stamped before the first build but published after it (the
   cutoff moves back to it: found by its manifest's "$file_modified_time" on Athena);
3. an incremental build with nothing new (the scheduled run on a quiet day).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tests.athena_twin.account import TwinAccount, dbt_environment, open_account
from tests.aws_audit import Audit, Call

from .conftest import DBT, REPO, Order, RawLake, twin_order, warehouse_query

# ~3 min on two idle cores (six dbt builds and the comparisons); the fixture gets more than
# pytest's default 600 s so a busy machine slows it rather than failing it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

UTC = dt.UTC
# Batch stamps and build ids differ between any two builds by design.
VOLATILE = {"merged_at", "built_at", "build_id"}


_order = twin_order


def _landings(step: int) -> list[tuple[list[Order], dt.datetime]]:
    if step == 1:
        first = [_order(i, 1 + i % 6) for i in range(1, 31)]
        resent = [_order(7, 2, status="delivered"), _order(8, 6, units=9)]
        return [
            (first, dt.datetime(2024, 3, 7, 9, 0, 0, 123456, tzinfo=UTC)),
            (resent, dt.datetime(2024, 3, 7, 9, 30, 0, 654321, tzinfo=UTC)),
        ]
    if step == 2:
        new = [_order(i, 7 + i % 2) for i in range(31, 41)]
        resent = [
            _order(3, 3, status="broken"),  # new status, moved from 2024-03-04 to 03-03
            _order(5, 8),  # moved from 2024-03-06 to 2024-03-08
            _order(12, 1, client_name="Client 0 renamed"),
        ]
        # and a landing stamped before step 1's build read the lake but published only now
        # (older than the incremental cutoff: macros/latest_versions.sql, incremental_cutoff)
        late = [_order(41, 7), _order(42, 7, client_name="Client 2 late")]
        return [
            (new + resent, dt.datetime(2024, 3, 9, 8, 0, 0, 1, tzinfo=UTC)),
            (late, dt.datetime(2024, 3, 7, 8, 0, 0, 42, tzinfo=UTC)),
        ]
    return []


def _sql(ex) -> str:
    """A query without dbt's leading query comment, lower case."""
    return re.sub(r"^\s*--[^\n]*\n", "", ex.query).lower()


def _comparable(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        # compared at milliseconds: Athena reads the raw (Hive) table's landed_at so
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))


#: Models whose grain differs between the targets by design: the fact's change log is an
#: append-only log of every version locally (the rollups subtract and add from it) and a view
#: of the current fact on Athena, where the rollups are rebuilt whole (its model says so).
DIFFERENT_BY_DESIGN = {"fact_orders__change_log"}


def _models(target: Path) -> list[str]:
    manifest = json.loads((target / "manifest.json").read_text())
    return sorted(
        node["alias"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["package_name"] == "duff"
        and node["path"].startswith("marts/")
        and node["alias"] not in DIFFERENT_BY_DESIGN
    )


def _served(target: Path) -> set[str]:
    manifest = json.loads((target / "manifest.json").read_text())
    return {
        node["alias"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["path"].startswith("marts/served/")
    }


def _twin_rows(account: TwinAccount, name: str) -> tuple[list[str], list[tuple]]:
    ex = account.twin.start(
        f'select * from "awsdatacatalog"."{account.analytics_database}"."{name}"',
        account.analytics_database,
        account.work_group.name,
        None,
    )
    assert ex.state == "SUCCEEDED", f"{name}: {ex.reason}"
    return [n for n, _ in ex.columns], ex.rows


def _local_rows(lake: RawLake, name: str) -> tuple[list[str], list[tuple]]:
    columns = [r[0] for r in warehouse_query(lake, f"describe main.{name}")]
    return columns, warehouse_query(lake, f"select * from main.{name}")


def _project(columns: list[str], rows: list[tuple], keep: list[str]) -> list[tuple]:
    index = [columns.index(c) for c in keep]
    return _sorted([tuple(_comparable(row[i]) for i in index) for row in rows])


class Builds:
    """The scenario's outcome, per step: the twin's dbt output, and per model the rows each
    target holds after that step."""

    def __init__(self) -> None:
        self.output: dict[int, str] = {}
        self.returncode: dict[int, int] = {}
        self.differences: dict[int, dict[str, str]] = {}
        self.compared: dict[int, list[str]] = {}
        self.row_counts: dict[int, dict[str, int]] = {}
        self.locations: dict[int, dict[str, str]] = {}
        self.lf_tags: dict[int, dict[str, dict[str, list[str]]]] = {}
        self.served: set[str] = set()
        self.tier_tag = ""
        self.call_log = Path()
        self.data_dir = ""
        self.fact_merges: dict[int, list] = {}
        self.pointer_writes: dict[int, list[str]] = {}
        self.maintenance: tuple[int, str] = (-1, "not run")
        self.maintenance_sql: list[list[str]] = []
        self.fact_before_maintenance: list[tuple] = []
        self.fact_after_maintenance: list[tuple] = []


@pytest.fixture(scope="module")
def twin_builds(moto_server, tmp_path_factory) -> Builds:
    work = tmp_path_factory.mktemp("athena_twin")
    lake = RawLake(work / "lake")
    (lake.root / "raw" / "orders").mkdir(parents=True)
    local_env = {
        **os.environ,
        "DUFF_LAKE": str(lake.root),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    local_env.pop("DUFF_DBT_TARGET", None)
    account = open_account(moto_server)
    builds = Builds()
    builds.call_log = work / "aws_calls.jsonl"
    env = dbt_environment(account, lake.root, builds.call_log)
    seen: set[str] = set()
    builds.data_dir = account.data_dir
    builds.tier_tag = account.tier_tag
    try:
        for step in (1, 2, 3):
            for orders, landed_at in _landings(step):
                # each landing with its manifest, published now. (The stamps are of 2024 and
                # the file times of today, and account.land uploads every manifest at each
                # step: on both targets every manifest counts as published after the
                # lookback's start, so the builds read back to the earliest stamp. The twin
                # shows the query runs on Athena and moves the cutoff; that only landings
                # published since are counted is shown locally, in
                # test_dbt_incremental_edges.py.)
                lake.land(orders, landed_at, published=dt.datetime.now(UTC))
            account.land(lake.root)
            # the local build runs alongside the twin's (separate processes and state)
            local_build = subprocess.Popen(
                [DBT, "build", "--exclude-resource-type", "unit_test",
                 "--target-path", str(work / "local_target"), "--log-path", str(work / "logs")],
                cwd=REPO, env=local_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            # one target path for the three builds, so dbt parses the project incrementally
            target = work / "twin_target"
            proc = subprocess.run(
                [DBT, "build", "--exclude-resource-type", "unit_test",
                 "--target-path", str(target), "--log-path", str(work / "twin_logs")],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            local_output, _ = local_build.communicate(timeout=600)
            assert local_build.returncode == 0, local_output[-6000:]
            builds.pointer_writes[step] = [
                _sql(ex).split()[0]
                for ex in account.twin.executions.values()
                if ex.id not in seen
                and re.search(
                    r"^\s*(create|merge|insert|drop|alter)\b[^(]*\Wmart_build_info\W", _sql(ex)
                )
            ]
            builds.fact_merges[step] = [
                ex
                for ex in account.twin.executions.values()
                if ex.id not in seen and re.search(r"^\s*merge into \S+fact_orders\W", _sql(ex))
            ]
            seen |= set(account.twin.executions)
            builds.returncode[step] = proc.returncode
            builds.output[step] = proc.stdout[-8000:] + proc.stderr[-2000:]
            if proc.returncode != 0:
                break
            differences, counts, locations = {}, {}, {}
            for name in _models(target):
                table = account.glue_table(name)
                if table is None:
                    differences[name] = "missing on the twin"
                    continue
                twin_cols, twin = _twin_rows(account, name)
                local_cols, here = _local_rows(lake, name)
                keep = [c for c in local_cols if c not in VOLATILE]
                if sorted(twin_cols) != sorted(local_cols):
                    differences[name] = f"columns {twin_cols} != {local_cols}"
                    continue
                a, b = _project(twin_cols, twin, keep), _project(local_cols, here, keep)
                counts[name] = len(b)
                if a != b:
                    only_twin = [r for r in a if r not in b][:3]
                    only_local = [r for r in b if r not in a][:3]
                    differences[name] = f"twin only {only_twin}; local only {only_local}"
            # every table in the schema: seeds, temporary tables left behind and the served
            # marts' per-build tables too
            pages = account.client("glue").get_paginator("get_tables")
            for page in pages.paginate(DatabaseName=account.analytics_database):
                for table in page["TableList"]:
                    if table.get("TableType") != "VIRTUAL_VIEW":
                        locations[table["Name"]] = table["StorageDescriptor"]["Location"]
            builds.differences[step] = differences
            builds.compared[step] = sorted(counts)
            builds.row_counts[step] = counts
            builds.locations[step] = locations
            builds.lf_tags[step] = {name: account.lf_tags(name) for name in _models(target)}
            builds.served = _served(target)
            fact_rows = _twin_rows(account, "fact_orders")[1]
        if builds.returncode.get(3) == 0:
            # the daily maintenance of the scheduled build (buildspec.yml), then the fact again
            proc = subprocess.run(
                [DBT, "run-operation", "optimize_iceberg_tables",
                 "--target-path", str(work / "twin_target"),
                 "--log-path", str(work / "twin_logs")],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            builds.maintenance = (proc.returncode, proc.stdout[-4000:])
            builds.maintenance_sql = [
                [*_sql(ex).split()[:2], ex.state]
                for ex in account.twin.executions.values()
                if ex.id not in seen
            ]
            builds.fact_after_maintenance = _twin_rows(account, "fact_orders")[1]
            builds.fact_before_maintenance = fact_rows
    finally:
        account.server.__exit__(None, None, None)
    return builds


@pytest.mark.parametrize("step", [1, 2, 3], ids=["full", "incremental", "nothing_new"])
def test_twin_build_succeeds_and_matches_the_local_build_row_for_row(twin_builds, step):
    # Given the lake after step `step`; When dbt builds it on the twin and locally
    # Then the Athena build passes and every model holds the same rows on both targets
    assert twin_builds.returncode.get(step) == 0, twin_builds.output.get(step, "not reached")
    assert not twin_builds.differences[step], twin_builds.differences[step]
    compared = twin_builds.compared[step]
    assert {"fact_orders", "dim_clients", "mart_orders", "mart_daily_sales"} <= set(compared)
    counts = twin_builds.row_counts[step]
    assert counts["fact_orders"] == (30 if step == 1 else 42)
    assert counts["mart_orders"] == counts["fact_orders"]


def test_every_table_lands_under_the_data_dir_not_the_results_bucket(twin_builds):
    # Given the template's dbt work group; When dbt builds on it
    # Then every table in the schema (seeds and the served marts' per-build tables included)
    # lives under s3_data_dir (defect 2: in the enforced work group Athena writes a Hive CTAS
    # under <results>/tables/<query id>/, dbt-athena #539, which the API role cannot read and
    # the results bucket's 7-day lifecycle deletes; so every table is Iceberg)
    assert twin_builds.returncode.get(1) == 0, twin_builds.output.get(1)
    for step, locations in twin_builds.locations.items():
        names = set(locations)
        assert {"fact_orders", "mart_build_info", "status_descriptions"} <= names, step
        assert any(n.startswith("mart_orders__b") for n in names), step
        wrong = {n: w for n, w in locations.items() if not w.startswith(twin_builds.data_dir)}
        assert not wrong, (step, wrong)


def test_the_build_tags_the_served_marts_and_only_them_served(twin_builds):
    # Given the stack's LF-tag (the analytics database tagged core, which its tables inherit)
    # When dbt builds on the twin, three times (tables re-created, swapped, merged)
    # Then every served mart carries the tag's value `served` on the table itself, the one
    # value the API role may select under Lake Formation, and nothing else is tagged served
    assert twin_builds.returncode.get(3) == 0, twin_builds.output.get(3)
    served = twin_builds.served
    assert {"mart_orders", "mart_daily_sales", "mart_build_info"} <= served
    for step, tags in twin_builds.lf_tags.items():
        assert served <= set(tags), step
        wrong = {
            name: found
            for name, found in tags.items()
            if found != ({twin_builds.tier_tag: ["served"]} if name in served else {})
        }
        assert not wrong, (step, wrong)


def test_every_aws_call_of_the_three_builds_is_one_the_build_role_may_make(twin_builds):
    # Given every AWS call dbt-athena and PyAthena made in the three builds and the
    # maintenance (recorded in the dbt processes: tests/support/audit_site)
    assert twin_builds.returncode.get(3) == 0, twin_builds.output.get(3)
    calls = [
        Call(**json.loads(line))
        for line in twin_builds.call_log.read_text().splitlines()
        if line.strip()
    ]
    made = {(c.service, c.operation) for c in calls}
    assert {c.role for c in calls} == {"DbtBuildRole"}
    assert {
        ("athena", "StartQueryExecution"),
        ("glue", "GetTable"),
        ("glue", "UpdateTable"),
        ("s3", "DeleteObjects"),
        ("lakeformation", "AddLFTagsToResource"),
    } <= made, sorted(made)
    # When each is evaluated against the CodeBuild role's policies in infra/template.yaml
    evaluated, findings = Audit().check(calls)
    # Then the role may make every one of them (as the in-process audit of the API and the
    # ingestion checks theirs)
    assert evaluated
    assert not findings, "\n".join(f.text for f in findings)


def test_the_pointer_is_created_once_then_replaced_by_one_merge_per_build(twin_builds):
    # Given the three builds (the API reads mart_build_info on every request)
    assert twin_builds.returncode.get(3) == 0, twin_builds.output.get(3)
    # Then the first build created it and each later one changed it by a single MERGE (one
    # Iceberg commit): no drop, rename or re-create that a request could fall between
    assert twin_builds.pointer_writes == {1: ["create"], 2: ["merge"], 3: ["merge"]}
    calls = [json.loads(line) for line in twin_builds.call_log.read_text().splitlines() if line]
    deleted = [
        c["params"].get("Name")
        for c in calls
        if (c["service"], c["operation"]) == ("glue", "DeleteTable")
    ]
    assert "mart_build_info" not in deleted, deleted


def test_the_fact_merge_is_restricted_to_the_days_of_the_batch(twin_builds):
    # Given the incremental build (15 orders: 10 new on 03-07/03-08, one re-sent with a new
    # status and moved from 03-04 to 03-03, one moved from 03-06 to 03-08, one re-sent on
    # 03-01, and the late landing's two new ones on 03-07)
    assert twin_builds.returncode.get(2) == 0, twin_builds.output.get(2)
    (merge,) = twin_builds.fact_merges[2]
    # Then the one MERGE into the fact matches target rows only on days chosen from the batch
    # (incremental_predicates), parsed as Trino
    tree = sqlglot.parse_one(merge.query, read="trino")
    restricted = [
        node
        for node in tree.args["on"].find_all(exp.In)
        if node.this.sql() == "target.pa_date" and node.args.get("query")
    ]
    assert restricted, merge.query
    assert "fact_orders__dbt_tmp" in restricted[0].sql()
    # and wrote exactly the six days those orders were on or moved to (which the row-for-row
    # comparison proves right: a predicate missing 03-06 would leave order 5 twice)
    assert merge.partitions_written == 6
    # and the build with nothing new merged an empty batch, writing no partition
    assert [m.partitions_written for m in twin_builds.fact_merges[3]] == [0]


def test_a_first_load_of_more_than_100_days_is_written_in_batches(moto_server, tmp_path):
    # Given 103 days of orders (Athena writes at most 100 partitions per query, and the fact
    # no longer sets force_batch)
    lake = RawLake(tmp_path / "lake")
    lake.land(
        [
            _order(i, 1, order_date=dt.date(2024, 1, 1) + dt.timedelta(days=i))
            for i in range(1, 104)
        ],
        dt.datetime(2024, 5, 1, tzinfo=UTC),
    )
    account = open_account(moto_server)
    try:
        account.land(lake.root)
        # When dbt builds the fact and what it needs
        proc = subprocess.run(
            [DBT, "build", "--select", "+fact_orders", "--exclude-resource-type", "test",
             "--exclude-resource-type", "unit_test", "--target-path", str(tmp_path / "target"),
             "--log-path", str(tmp_path / "logs")],
            cwd=REPO, env=dbt_environment(account, lake.root), capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-6000:]
        writes = [
            ex
            for ex in account.twin.executions.values()
            if re.search(r"^\s*(create table|insert into) \S+fact_orders\W", _sql(ex))
        ]
        # Then Athena's refusal of the whole load made dbt-athena write it in batches
        refused = [ex for ex in writes if ex.state == "FAILED"]
        assert len(refused) == 1 and "ICEBERG_TOO_MANY_OPEN_PARTITIONS" in refused[0].reason
        done = [ex for ex in writes if ex.state == "SUCCEEDED"]
        assert [ex.partitions_written for ex in done] == [100, 3]
        _, rows = _twin_rows(account, "fact_orders")
        assert sorted(r[0] for r in rows) == list(range(1, 104))
    finally:
        account.server.__exit__(None, None, None)


def test_the_daily_iceberg_maintenance_compacts_and_vacuums_without_changing_rows(twin_builds):
    # Given the three builds; When the scheduled build's run-operation runs
    code, output = twin_builds.maintenance
    assert code == 0, output
    # Then each Iceberg model was optimized then vacuumed, in the form Athena's synopses give
    names = {"fact_orders", "dim_clients", "dim_products", "mart_build_info"}
    for name in names:
        assert f"_analytics.{name} and vacuumed it" in output, output
    statements = [s for s in twin_builds.maintenance_sql if s[0] in ("optimize", "vacuum")]
    assert len(statements) == 2 * len(names), twin_builds.maintenance_sql
    assert all(state == "SUCCEEDED" for *_, state in statements), statements
    # and the fact holds the same rows
    assert sorted(twin_builds.fact_after_maintenance) == sorted(twin_builds.fact_before_maintenance)
