"""Adding a served mart takes its .sql and .yml, and one line in mart_build_info: nothing in
api/ or the export.

Given a temporary copy of the project with one throwaway mart added the way docs/serving.md
says (a model and a yml whose ``config.meta.serve`` declares ``/sales/by-status-channel``,
and its ``-- depends_on`` line in mart_build_info, which a build without it asks for),
when orders are landed, ``dbt build`` and ``python -m export`` run in that copy, then the
unchanged API serves the new route with the numbers computed here from the CSV, filters it
by the column's accepted values (400 for any other), and documents it in /openapi.json.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
KEY = "new-mart-key"
COPY = (
    "api",
    "export",
    "dbt_plugins",
    "ingestion",
    "models",
    "macros",
    "seeds",
    "tests/generic",  # dbt's test-paths: the generic and singular data tests
    "tests/singular",
)
COPY_FILES = ("dbt_project.yml", "profiles.yml")

MART_SQL = """\
with

mart_orders as (

    select * from {{ ref('mart_orders') }}

),

final as (

    select
        status,
        channel,
        cast(count(*) as bigint) as orders,
        cast(sum(total_amount) as decimal(38, 2)) as revenue
    from mart_orders
    group by status, channel

)

select * from final
"""

MART_YML = """\
version: 2

models:
  - name: mart_status_channel_sales
    description: One row per status and channel with at least one served order.
    config:
      contract: {enforced: true}
      meta:
        serve:
          schema: StatusChannel
          routes:
            - path: /sales/by-status-channel
              operation: sales_by_status_channel
              summary: Orders and revenue by status and channel
              order_by: [status, channel]
              filters: [channel]
    columns:
      - name: status
        data_type: varchar
        description: The status.
        data_tests: [not_null]
      - name: channel
        data_type: varchar
        description: The channel.
        data_tests:
          - not_null
          - accepted_values:
              arguments:
                values: ["Retail", "Online", "B2B"]
      - name: orders
        data_type: bigint
        description: Number of orders.
      - name: revenue
        data_type: decimal(38,2)
        description: Sum of total_amount.
"""

HEADER = [
    "order_id",
    "client_id",
    "client_name",
    "product_id",
    "product_description",
    "product_price",
    "product_ccf",
    "product_volume",
    "point_of_sale_channel",
    "status",
    "order_date",
]
ROWS = [
    # order_id, client, product, price, units, channel, status
    (1, 5, 101, "1.25", 4, "retail", "delivered"),
    (2, 6, 102, "2.10", 3, "B2B", "created"),
    (3, 5, 101, "1.25", 1, "Retail", "DELIVERED"),
    (4, 7, 103, "0.99", 10, "online", "broken"),
    (5, 6, 101, "1.25", 2, "b2b", "created"),
]


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def test_a_throwaway_mart_is_served_from_its_declaration(tmp_path):
    # Given a copy of the project with the new mart's two files added
    project = tmp_path / "project"
    for name in COPY:
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in COPY_FILES:
        shutil.copy2(ROOT / name, project / name)
    served = project / "models" / "marts" / "served"
    (served / "mart_status_channel_sales.sql").write_text(MART_SQL)
    (served / "mart_status_channel_sales.yml").write_text(MART_YML)
    # And orders landed from a CSV
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUFF_", "DBT_"))}
    env.update({"DUFF_LAKE": str(lake), "DO_NOT_TRACK": "1"})
    orders_csv = tmp_path / "orders.csv"
    with orders_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for oid, cid, pid, price, units, channel, status in ROWS:
            w.writerow([oid, cid, f"C{cid}", pid, f"P{pid}", price, units, "0.330", channel,
                        status, "2024-05-01"])  # fmt: skip
    run([sys.executable, "-m", "ingestion", str(orders_csv)], project, env)

    # When mart_build_info does not name the new mart yet, a run stops and says what to add
    dbt = str(Path(sys.executable).with_name("dbt"))
    refused = subprocess.run(
        [dbt, "run", "-s", "mart_build_info"], cwd=project, env=env, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert (
        "mart_build_info must follow every served mart: add a -- depends_on comment for "
        "mart_status_channel_sales"
    ) in refused.stdout, refused.stdout[-3000:]
    build_info = served / "mart_build_info.sql"
    text = build_info.read_text()
    anchor = "-- depends_on: {{ ref('mart_orders') }}\n"
    assert anchor in text
    build_info.write_text(
        text.replace(anchor, anchor + "-- depends_on: {{ ref('mart_status_channel_sales') }}\n")
    )

    # When the project is built and exported the documented way
    run([dbt, "build", "--exclude-resource-type", "unit_test"], project, env)
    out = run([sys.executable, "-m", "export"], project, env)
    assert "published" in out

    # Then the API (this repository's, unchanged) serves the new route from the build
    backend = LocalBackend(lake)
    assert backend.refresh() is True
    app = App(Settings(api_key=KEY, backend="local", lake=str(lake)), backend)

    def get(path, *query, key=KEY):
        return app.handle(Request("GET", path, tuple(query), {"x-api-key": key}))

    expected: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    for _oid, _cid, _pid, price, units, channel, status in ROWS:
        canon = {"retail": "Retail", "online": "Online", "b2b": "B2B"}[channel.lower()]
        entry = expected[(status.lower(), canon)]
        entry[0] += 1
        entry[1] += Decimal(price) * units
    items = [
        {"status": s, "channel": c, "orders": n, "revenue": float(r)}
        for (s, c), (n, r) in sorted(expected.items())
    ]
    resp = get("/sales/by-status-channel")
    assert resp.status == 200, resp.body
    assert json.loads(resp.body) == {"items": items}
    assert b'"revenue":8.80' in resp.body  # 2 decimals from decimal(38,2), exact
    only_b2b = json.loads(get("/sales/by-status-channel", ("channel", "b2B")).body)["items"]
    assert only_b2b == [i for i in items if i["channel"] == "B2B"]
    bad = get("/sales/by-status-channel", ("channel", "shop"))
    assert bad.status == 400
    assert json.loads(bad.body)["error"]["message"] == (
        "channel: must be one of Retail, Online, B2B (any case)"
    )
    assert get("/sales/by-status-channel", key="wrong").status == 403
    # And /openapi.json documents it, with the item schema taken from the yml
    doc = json.loads(get("/openapi.json", key=None).body)
    op = doc["paths"]["/sales/by-status-channel"]["get"]
    assert op["operationId"] == "sales_by_status_channel"
    assert [p["name"] for p in op["parameters"]] == ["channel"]
    item = doc["components"]["schemas"]["StatusChannel"]
    assert list(item["properties"]) == ["status", "channel", "orders", "revenue"]
    assert item["properties"]["channel"]["enum"] == ["Retail", "Online", "B2B"]
    # And the existing routes are unaffected
    assert json.loads(get("/orders", ("limit", "2")).body)["items"][0]["order_id"] == 1
    backend.close()
