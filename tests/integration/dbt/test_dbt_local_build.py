"""dbt on the local target, end to end over a lake this module writes itself.

Three landings and three builds are shared by the module (each build takes seconds):
build 1 on the first landing, build 2 incremental after re-sent orders (new status,
channel and date; a tie on landed_at; a late, older version), a rename and a namesake
client, build 3 a full refresh. Every expected value is computed here in Python from the rows
the test landed, never read back from the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import SERVED_FILES, DbtProject, Order, RawLake

pytestmark = pytest.mark.slow  # minutes of dbt builds: scheduled first under xdist

UTC = dt.UTC
T1 = dt.datetime(2024, 3, 8, 10, 0, 0, 1, tzinfo=UTC)
T2 = dt.datetime(2024, 3, 9, 11, 0, 0, 0, tzinfo=UTC)
T0 = dt.datetime(2024, 3, 7, 9, 0, 0, 0, tzinfo=UTC)  # an older version arriving late
D = dt.date

FIRST = [
    Order(1, 10, "Moe", 100, "Duff", "1.50", 2, "0.330", "Retail", "created", D(2024, 3, 1)),
    Order(2, 11, "Barney", 100, "Duff", "1.50", 5, "0.330", "Online", "delivered", D(2024, 3, 1)),
    Order(3, 10, "Moe", 101, "Duff Dry", "2.00", 3, "0.500", "B2B", "created", D(2024, 3, 2)),
    # client 12 is another "Moe": a namesake, not the same client
    Order(4, 12, "Moe", 101, "Duff Dry", "2.00", 1, "0.500", "Retail", "broken", D(2024, 3, 2)),
    Order(5, 12, "Moe", 102, "Duff Lite", "1.00", 1, "0.330", "Online", "delivered", D(2024, 3, 3)),
    # client 13: two products tie on units and spend; the lower product_id must win
    Order(6, 13, "Homer", 104, "Duff Stout", "3.00", 2, "0.500", "B2B", "created", D(2024, 3, 3)),
    Order(7, 13, "Homer", 103, "Fudd", "3.00", 2, "0.330", "B2B", "delivered", D(2024, 3, 3)),
    # the only order of 2024-03-04; re-sent to 2024-03-05 later, which leaves that day empty
    Order(
        9, 11, "Barney", 102, "Duff Lite", "1.00", 1, "0.330", "Retail", "created", D(2024, 3, 4)
    ),
]
# re-sent orders 1 and 9 (new status, channel and date), a renamed client 10, a renamed product
SECOND = [
    Order(1, 10, "Moe", 100, "Duff", "1.50", 2, "0.330", "Online", "delivered", D(2024, 3, 5)),
    Order(9, 11, "Barney", 102, "Duff Lite", "1.00", 1, "0.330", "B2B", "delivered", D(2024, 3, 5)),
    Order(
        8,
        10,
        "Moe's Tavern",
        100,
        "Duff Classic",
        "1.50",
        1,
        "0.330",
        "Retail",
        "created",
        D(2024, 3, 5),
    ),
]
# landed with the same landed_at as SECOND but a greater ingest_id: it wins the tie
TIED = [
    Order(
        3,
        10,
        "Moe's Tavern",
        101,
        "Duff Dry",
        "2.00",
        3,
        "0.500",
        "Retail",
        "broken",
        D(2024, 3, 6),
    ),
]
# an older version of order 2 that only arrives now: it must not win
LATE_OLD = [
    Order(2, 11, "Barney Gumble", 100, "Duff", "1.50", 9, "0.330", "B2B", "broken", D(2024, 2, 1)),
]

FACT_COLUMNS = (
    "order_id, client_key, product_key, status_key, channel_key, units, unit_price, "
    "total_amount, total_liters, source_file, source_line, ingest_id, landed_at, pa_date, "
    "merged_at"
)
# merged_at (the batch that wrote a row) differs between an incremental run and a full
# refresh by design; every other column must not
BATCH_COLUMNS = {"fact_orders": "merged_at", "agg_sales__daily": "merged_at"}
BATCH_COLUMNS["agg_sales__by_client"] = "merged_at"
SERVED = (
    "mart_client_sales",
    "mart_product_sales",
    "mart_channel_sales",
    "mart_product_channel_sales",
    "mart_status_summary",
    "mart_daily_sales",
    "mart_orders",
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def query(lake: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(lake / "warehouse" / "duff.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def select_all(name: str) -> str:
    if name in BATCH_COLUMNS:
        return f"select * exclude ({BATCH_COLUMNS[name]}) from {name}"
    return f"select * from {name}"


def read_export(build_dir: Path, name: str) -> pa.Table:
    """One exported mart: its parts, in order."""
    files = sorted((build_dir / name).glob("part_*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def builds(lake: Path) -> list[Path]:
    root = lake / "marts" / "builds"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


@pytest.fixture(scope="module")
def scenario(dbt_project_factory):
    """Given three landings and three builds (full, incremental, full refresh)."""
    project: DbtProject = dbt_project_factory("dbt_local")
    lake = RawLake(Path(project.lake))
    lake.land(FIRST, T1)
    first = project.run("build")
    tables_after = {}
    lake.land(SECOND, T2)
    lake.land(TIED, T2)
    lake.land(LATE_OLD, T0)
    second = project.run("build")
    for name in ("dim_clients", "dim_products", *SERVED, *BATCH_COLUMNS):
        tables_after[name] = sorted(query(lake.root, select_all(name)))
    exports_after_incremental = builds(lake.root)
    third = project.run("build", "--full-refresh")
    return {
        "project": project,
        "lake": lake,
        "runs": (first, second, third),
        "incremental_tables": tables_after,
        "exports_after_incremental": exports_after_incremental,
    }


def expected_orders(lake: RawLake) -> dict[int, dict]:
    descriptions = lake.latest_attribute("product_id", "product_description")
    out = {}
    for order_id, row in lake.latest_versions().items():
        out[order_id] = {
            "order_id": order_id,
            "client_id": row["client_id"],
            "product_id": row["product_id"],
            "product_description": descriptions[row["product_id"]],
            "units": row["product_ccf"],
            "unit_price": row["product_price"],
            "total_amount": row["total_amount"],
            "liters": row["total_liters"],
            "channel": row["point_of_sale_channel"],
            "status": row["status"],
            "pa_date": row["pa_date"],
        }
    return out


def test_fact_holds_the_latest_version_of_each_order_once(scenario):
    # Given the landings; When built incrementally; Then one fact row per order, each its
    # latest version (re-sent order 1 moved to 2024-03-05; order 3 won its landed_at tie by
    # ingest_id; the late older order 2 did not win)
    lake: RawLake = scenario["lake"]
    rows = query(
        lake.root,
        "select order_id, client_key, product_key, status_key, channel_key, units, "
        "unit_price, total_amount, ingest_id, source_line, pa_date from fact_orders",
    )
    got = {r[0]: r for r in rows}
    assert len(rows) == len(got) == 9
    for order_id, v in lake.latest_versions().items():
        assert got[order_id] == (
            order_id,
            md5(str(v["client_id"])),
            md5(str(v["product_id"])),
            md5(v["status"]),
            md5(v["point_of_sale_channel"]),
            v["product_ccf"],
            v["product_price"],
            v["total_amount"],
            v["ingest_id"],
            v["source_line"],
            v["pa_date"],
        )
    assert got[1][10] == D(2024, 3, 5) and got[1][3] == md5("delivered")
    assert got[3][3] == md5("broken") and got[3][10] == D(2024, 3, 6)
    assert got[2][3] == md5("delivered") and got[2][5] == 5
    assert query(lake.root, "select count(*) from fact_orders where pa_date = '2024-03-01'") == [
        (1,)
    ]


def test_fact_columns_follow_the_contract(scenario):
    # Given the built warehouse; Then fact_orders has exactly the contract's columns, in order
    cols = query(
        scenario["lake"].root,
        "select column_name from information_schema.columns "
        "where table_name = 'fact_orders' order by ordinal_position",
    )
    assert ", ".join(c[0] for c in cols) == FACT_COLUMNS


def test_dim_clients_takes_the_latest_name_and_keeps_namesakes_apart(scenario):
    # Given client 10 renamed in a later landing and clients 10 and 12 both once "Moe"
    # Then each id has one row with its latest name, keyed by md5(id), plus the unknown member
    # (natural id -1, keyed like every dimension's unknown member)
    lake: RawLake = scenario["lake"]
    rows = sorted(
        query(lake.root, "select client_key, client_id, client_name, is_unknown from dim_clients")
    )
    expected = sorted(
        [
            (md5(str(cid)), cid, name, False)
            for cid, name in lake.latest_attribute("client_id", "client_name").items()
        ]
        + [(md5("unknown"), -1, "unknown", True)]  # every unknown member: unknown_key()
    )
    assert rows == expected
    names = {r[1]: r[2] for r in rows}
    assert names[10] == "Moe's Tavern" and names[12] == "Moe"
    # the late, older version of order 2 does not rename Barney
    assert names[11] == "Barney"


def test_small_dimensions_come_from_the_seeds_with_an_unknown_member(scenario):
    root = scenario["lake"].root
    assert sorted(query(root, "select status_key, status, is_unknown from dim_status")) == sorted(
        [(md5(s), s, s == "unknown") for s in ("created", "delivered", "broken", "unknown")]
    )
    assert sorted(
        query(root, "select channel_key, channel, is_unknown from dim_channels")
    ) == sorted([(md5(c), c, c == "unknown") for c in ("Retail", "Online", "B2B", "unknown")])
    assert sorted(
        query(root, "select product_id, product_description from dim_products")
    ) == sorted(
        [
            *scenario["lake"].latest_attribute("product_id", "product_description").items(),
            (-1, "unknown"),
        ]
    )


def test_served_marts_match_independent_computation(scenario):
    # Given the expected current orders; When the marts are read; Then every figure matches
    lake: RawLake = scenario["lake"]
    orders = expected_orders(lake)
    root = lake.root
    got_orders = query(root, "select * from mart_orders order by order_id")
    assert got_orders == [tuple(orders[k].values()) for k in sorted(orders)]

    names = lake.latest_attribute("client_id", "client_name")
    per_client = defaultdict(list)
    for o in orders.values():
        per_client[o["client_id"]].append(o)
    expected_clients = []
    for cid, rows in per_client.items():
        per_product = defaultdict(lambda: [0, Decimal(0), ""])
        for o in rows:
            agg = per_product[o["product_id"]]
            agg[0] += o["units"]
            agg[1] += o["total_amount"]
            agg[2] = o["product_description"]
        top_id = min(per_product, key=lambda p: (-per_product[p][0], -per_product[p][1], p))
        expected_clients.append(
            (
                cid,
                names[cid],
                len(rows),
                sum(o["units"] for o in rows),
                sum(o["liters"] for o in rows),
                sum(o["total_amount"] for o in rows),
                top_id,
                per_product[top_id][2],
                per_product[top_id][0],
            )
        )
    assert sorted(query(root, "select * from mart_client_sales")) == sorted(expected_clients)
    top = {r[0]: r[6] for r in expected_clients}
    assert top[13] == 103  # units and spend tie: lower product_id
    assert top[12] == 101  # units tie: higher spend

    def grouped(keys: tuple[str, ...], measures: tuple[str, ...]) -> list[tuple]:
        acc: dict[tuple, list] = {}
        for o in orders.values():
            k = tuple(o[x] for x in keys)
            a = acc.setdefault(k, [0, 0, Decimal(0), Decimal(0)])
            a[0] += 1
            a[1] += o["units"]
            a[2] += o["liters"]
            a[3] += o["total_amount"]
        pick = {"orders": 0, "units": 1, "liters": 2, "revenue": 3}
        return sorted((*k, *(a[pick[m]] for m in measures)) for k, a in acc.items())

    all_m = ("orders", "units", "liters", "revenue")
    assert sorted(query(root, "select * from mart_product_sales")) == grouped(
        ("product_id", "product_description"), all_m
    )
    assert sorted(query(root, "select * from mart_product_channel_sales")) == grouped(
        ("product_id", "product_description", "channel"), all_m
    )
    assert sorted(query(root, "select * from mart_daily_sales")) == grouped(("pa_date",), all_m)
    channels = {r[0]: r for r in grouped(("channel",), all_m)}
    assert sorted(query(root, "select * from mart_channel_sales")) == sorted(
        channels.get(c, (c, 0, 0, Decimal("0.000"), Decimal("0.00")))
        for c in ("Retail", "Online", "B2B")
    )
    statuses = {r[0]: r for r in grouped(("status",), ("orders", "units", "revenue"))}
    assert sorted(query(root, "select * from mart_status_summary")) == sorted(
        statuses.get(s, (s, 0, 0, Decimal("0.00"))) for s in ("created", "delivered", "broken")
    )


def test_served_mart_types_follow_the_architecture(scenario):
    root = scenario["lake"].root
    rows = query(
        root,
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_name in ('mart_client_sales', 'mart_orders', 'mart_build_info') "
        "order by table_name, ordinal_position",
    )
    got = defaultdict(list)
    for table, column, data_type in rows:
        got[table].append(f"{column} {data_type}")
    assert got["mart_client_sales"] == [
        "client_id BIGINT", "client_name VARCHAR", "orders BIGINT", "units BIGINT",
        "liters DECIMAL(38,3)", "total_spend DECIMAL(38,2)", "top_product_id BIGINT",
        "top_product_description VARCHAR", "top_product_units BIGINT",
    ]  # fmt: skip
    assert got["mart_orders"] == [
        "order_id BIGINT", "client_id BIGINT", "product_id BIGINT",
        "product_description VARCHAR", "units BIGINT", "unit_price DECIMAL(12,2)",
        "total_amount DECIMAL(22,2)", "liters DECIMAL(20,3)", "channel VARCHAR",
        "status VARCHAR", "pa_date DATE",
    ]  # fmt: skip
    assert got["mart_build_info"] == [
        "build_id VARCHAR", "built_at TIMESTAMP", "data_as_of TIMESTAMP",
    ]  # fmt: skip


def test_incremental_run_equals_full_refresh(scenario):
    # Given the tables after the incremental build; When rebuilt with --full-refresh;
    # Then every star and served table is identical row for row
    root = scenario["lake"].root
    for name, rows in scenario["incremental_tables"].items():
        assert sorted(query(root, select_all(name))) == rows, name


def test_every_successful_build_is_exported_completely(scenario):
    # Given three successful builds; Then three build directories, named by time and
    # invocation id, each with every served mart and a _SUCCESS.parquet holding its own id
    root = scenario["lake"].root
    dirs = builds(root)
    assert len(dirs) == 3 and len(scenario["exports_after_incremental"]) == 2
    pattern = re.compile(r"^(\d{8}T\d{12}Z)_([0-9a-f-]{36})$")
    for d in dirs:
        m = pattern.match(d.name)
        assert m, d.name
        assert {p.name for p in d.iterdir()} == SERVED_FILES
        info = pq.read_table(d / "_SUCCESS.parquet").to_pylist()
        assert len(info) == 1 and info[0]["build_id"] == m.group(2)
    newest = dirs[-1]
    # the newest export holds exactly the warehouse's marts, mart_orders sorted by order_id
    for name in SERVED:
        exported = read_export(newest, name).to_pylist()
        warehouse = query(root, f"select * from {name}")
        assert sorted(tuple(r.values()) for r in exported) == sorted(warehouse), name
    ids = pq.read_table(newest / "mart_orders").column("order_id").to_pylist()
    assert ids == sorted(ids)
    assert read_export(newest, "mart_orders").num_rows == 9
    info = pq.read_table(newest / "_SUCCESS.parquet").to_pylist()[0]
    latest_landing = max(r["landed_at"] for r in scenario["lake"].rows)
    assert info["data_as_of"] == latest_landing.replace(tzinfo=None)
    # no export left a temporary directory behind (each was renamed into place whole)
    assert not [p for p in (root / "marts" / "builds").iterdir() if p.name.startswith(".")]


def test_the_dbt_build_ran_tests_and_unit_tests(scenario):
    # The three builds passed their data tests, unit tests and the conservation test
    for run in scenario["runs"]:
        assert "assert_raw_rows_conserved" in run.output
        assert "unit_test" in run.output
        assert re.search(r"ERROR=0 ", run.output)
