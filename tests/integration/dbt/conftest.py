"""Fixtures for the dbt tests: a raw lake written exactly per docs/architecture.md section 1,
and a way to run dbt against it with every piece of state in a tmp dir."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.declarations import from_project

REPO = Path(__file__).resolve().parents[3]
DBT = str(Path(sys.executable).with_name("dbt"))
# What one complete export holds (docs/architecture.md section 2), and nothing else: per
# served relation (each declared mart and its sorted copies) a directory of ordered parts and
# the whole file, the declarations and the success marker.
# (ServedMart.sorted_copies itself is pinned by tests/unit/export/test_export.py and the API's
# golden responses: the sorted copies a route's path id needs.)
SERVED_RELATIONS = tuple(name for mart in from_project(REPO) for name in mart.sorted_copies())
SERVED_FILES = frozenset(
    {
        *SERVED_RELATIONS,
        *(f"{name}.parquet" for name in SERVED_RELATIONS),
        "_served.json",
        "_SUCCESS.parquet",
    }
)

RAW_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("client_id", pa.int64()),
        ("client_name", pa.string()),
        ("product_id", pa.int64()),
        ("product_description", pa.string()),
        ("product_price", pa.decimal128(12, 2)),
        ("product_ccf", pa.int32()),
        ("product_volume", pa.decimal128(10, 3)),
        ("point_of_sale_channel", pa.string()),
        ("status", pa.string()),
        ("order_date", pa.date32()),
        ("total_amount", pa.decimal128(22, 2)),
        ("total_liters", pa.decimal128(20, 3)),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("ingest_id", pa.string()),
        ("landed_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Order:
    """One order line as the export writes it (already normalised, as ingestion lands it)."""

    order_id: int
    client_id: int
    client_name: str
    product_id: int
    product_description: str
    price: str
    units: int
    volume: str
    channel: str
    status: str
    order_date: dt.date


def twin_order(order_id: int, day: int, **changes) -> Order:
    """An order of the Athena twin scenarios (March 2024, day ``day``): client, product,
    price, channel and status cycle with the id; ``changes`` override any field."""
    base = {
        "order_id": order_id,
        "client_id": 100 + order_id % 4,
        "client_name": f"Client {order_id % 4}",
        "product_id": 10 + order_id % 3,
        "product_description": f"Duff {order_id % 3}",
        "price": f"{1 + order_id % 5}.25",
        "units": 1 + order_id % 7,
        "volume": "0.330",
        "channel": ("Retail", "Online", "B2B")[order_id % 3],
        "status": ("created", "delivered", "broken")[order_id % 3],
        "order_date": dt.date(2024, 3, day),
    }
    return Order(**{**base, **changes})


@dataclass
class RawLake:
    """A lake directory and every raw row landed into it (the test's own record)."""

    root: Path
    rows: list[dict] = field(default_factory=list)
    _ingests: int = 0

    def land(
        self,
        orders: Iterable[Order],
        landed_at: dt.datetime,
        published: dt.datetime | None = None,
    ) -> str:
        """Land ``orders`` as one ingest: one Parquet file per pa_date, lines from 2, then
        write its manifest, as the ingestion does last, with the file time ``published``
        (when the landing became visible; the builds look for landings published after they
        read the lake), by default ``landed_at``."""
        self._ingests += 1
        ingest_id = f"{landed_at.strftime('%Y%m%dT%H%M%S%fZ')}-{self._ingests:012x}"
        source_file = f"/landing/orders-{self._ingests}.csv"
        by_date: dict[dt.date, list[dict]] = {}
        for line, order in enumerate(orders, start=2):
            price, volume = Decimal(order.price), Decimal(order.volume)
            row = {
                "order_id": order.order_id,
                "client_id": order.client_id,
                "client_name": order.client_name,
                "product_id": order.product_id,
                "product_description": order.product_description,
                "product_price": price,
                "product_ccf": order.units,
                "product_volume": volume,
                "point_of_sale_channel": order.channel,
                "status": order.status,
                "order_date": order.order_date,
                "total_amount": price * order.units,
                "total_liters": volume * order.units,
                "source_file": source_file,
                "source_line": line,
                "ingest_id": ingest_id,
                "landed_at": landed_at,
            }
            by_date.setdefault(order.order_date, []).append(row)
            self.rows.append({**row, "pa_date": order.order_date})
        for pa_date, rows in by_date.items():
            folder = self.root / "raw" / "orders" / f"pa_date={pa_date.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist(rows, schema=RAW_SCHEMA)
            pq.write_table(table, folder / f"{ingest_id}-0.parquet")
        self.publish_manifest(ingest_id, source_file, landed_at, by_date, published or landed_at)
        return ingest_id

    def publish_manifest(
        self,
        ingest_id: str,
        source_file: str,
        landed_at: dt.datetime,
        by_date: dict[dt.date, list[dict]],
        published: dt.datetime,
    ) -> None:
        """``manifests/<ingest_id>.json`` as the ingestion writes it (CONTRACT.md section 2,
        one line), its modification time set to ``published``."""
        rows = sum(len(r) for r in by_date.values())
        manifest = {
            "ingest_id": ingest_id, "source_file": source_file, "status": "landed",
            "rows_in": rows, "valid": rows,
            "rejected": {"missing": 0, "invalid": 0, "duplicate": 0},
            "ignored_columns": [], "partitions": sorted(d.isoformat() for d in by_date),
            "landed_at": landed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "error": None,
        }  # fmt: skip
        path = self.root / "manifests" / f"{ingest_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest) + "\n")
        os.utime(path, (published.timestamp(), published.timestamp()))

    def latest_versions(self) -> dict[int, dict]:
        """The expected current version of every order, computed in Python."""
        latest: dict[int, dict] = {}
        for row in self.rows:
            rank = (row["landed_at"], row["ingest_id"], row["source_line"])
            current = latest.get(row["order_id"])
            if current is None or rank > (
                current["landed_at"],
                current["ingest_id"],
                current["source_line"],
            ):
                latest[row["order_id"]] = row
        return latest

    def latest_attribute(self, key: str, attribute: str) -> dict[int, str]:
        """For each ``key`` value, ``attribute`` of its latest row (all versions count)."""
        best: dict[int, tuple] = {}
        for row in self.rows:
            rank = (row["landed_at"], row["ingest_id"], row["source_line"])
            if row[key] not in best or rank > best[row[key]][0]:
                best[row[key]] = (rank, row[attribute])
        return {k: v[1] for k, v in best.items()}


@dataclass
class DbtRun:
    returncode: int
    output: str


class DbtProject:
    """Runs the repo's dbt project as a subprocess with all state under one tmp dir."""

    def __init__(self, lake: Path | str, work: Path) -> None:
        self.lake = lake
        self.work = work

    def run(self, *args: str, check: bool = True, target_path: str = "target") -> DbtRun:
        env = {
            **os.environ,
            "DUFF_LAKE": str(self.lake),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
        }
        env.pop("DUFF_DBT_TARGET", None)
        cmd = [
            DBT,
            *args,
            "--target-path",
            str(self.work / target_path),
            "--log-path",
            str(self.work / "logs"),
        ]
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        output = proc.stdout + proc.stderr
        if args and args[0] in ("build", "run") and "--target" not in args:
            # the documented local build: dbt, then the export step (python -m export)
            exported = subprocess.run(
                [sys.executable, "-m", "export", "--target-path", str(self.work / target_path)],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            output += exported.stdout + exported.stderr
            if exported.returncode != 0:
                raise AssertionError(f"python -m export failed:\n{output[-6000:]}")
        result = DbtRun(proc.returncode, output)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.output[-6000:]}")
        return result


def warehouse_query(lake: RawLake, sql: str) -> list[tuple]:
    """Rows of ``sql`` against the lake's DuckDB warehouse (read-only)."""
    con = duckdb.connect(str(lake.root / "warehouse" / "duff.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def warehouse_execute(lake: RawLake, sql: str) -> None:
    """Run ``sql`` against the lake's DuckDB warehouse: how a test damages it on purpose."""
    con = duckdb.connect(str(lake.root / "warehouse" / "duff.duckdb"))
    try:
        con.execute(sql)
    finally:
        con.close()


def failed_tests(output: str) -> set[str]:
    """The data tests a dbt run reports as failed."""
    return set(re.findall(r"Failure in test (\S+)", output))


@pytest.fixture(scope="module")
def dbt_project_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., DbtProject]:
    def make(name: str, lake: Path | str | None = None) -> DbtProject:
        work = tmp_path_factory.mktemp(name)
        return DbtProject(lake if lake is not None else work / "lake", work)

    return make
