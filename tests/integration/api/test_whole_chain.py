"""The whole chain on data this test writes: CSV -> python -m ingestion -> dbt build ->
python -m export -> API.

The expected numbers are computed here from the CSV rows by the contract's rules (valid rows
only, first valid row of an order_id in a file wins, the latest landed version of an order
wins across files, client name from the latest order), independently of ingestion and dbt.
"""

import csv
import datetime as dt
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
KEY = "whole-chain-key"
CHANNELS = {"retail": "Retail", "online": "Online", "b2b": "B2B"}
PRODUCTS = {
    101: ("Duff Beer 33cl", "1.25", "0.330"),
    102: ("Duff Dry 50cl", "2.10", "0.500"),
    103: ("Duff Lite 33cl", "0.99", "0.330"),
    104: ("Duff keg", "45.00", "20.000"),
}
HEADER = [
    "status",
    "order_id",
    "client_id",
    "client_name",
    "product_id",
    "product_description",
    "product_price",
    "product_ccf",
    "product_volume",
    "point_of_sale_channel",
    "order_date",
    "promo_code",
]


def make_rows(rng, first_id, n, names):
    rows = []
    for i in range(n):
        pid = rng.choice(list(PRODUCTS))
        desc, price, vol = PRODUCTS[pid]
        cid = rng.randint(1, 12)
        rows.append(
            {
                "status": rng.choice(["created", "DELIVERED", "broken", " delivered "]),
                "order_id": str(first_id + i),
                "client_id": str(cid),
                "client_name": names[cid],
                "product_id": str(pid),
                "product_description": desc,
                "product_price": price,
                "product_ccf": str(rng.randint(1, 30)),
                "product_volume": vol,
                "point_of_sale_channel": rng.choice(["Retail", "online", " B2B", "retail"]),
                "order_date": f"2024-03-{rng.randint(1, 9):02d}",
                "promo_code": rng.choice(["", "SPRING"]),
            }
        )
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)


def run(cmd, env):
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_csv_to_api_numbers(tmp_path):
    # Given two CSV files: the second lands later, changes order 5 and renames client 3
    rng = random.Random(20240301)
    names = {c: f'Client {c} O\'Hara, "Bar"' for c in range(1, 13)}
    file1 = make_rows(rng, 1, 180, names)
    bad = dict(file1[10], order_id="900", order_date="2024-02-30")  # impossible date
    dup = dict(file1[20], product_ccf="999")  # same order_id later in the file: duplicate
    file1 += [bad, dup, dict(file1[30], order_id="901", status="shipped")]
    names2 = {**names, 3: "Moe's Tavern"}
    file2 = make_rows(rng, 181, 40, names2)
    changed = dict(
        file1[4],
        client_id="3",
        client_name="Moe's Tavern",
        product_ccf="7",
        order_date="2024-03-09",
    )
    file2.append(changed)
    p1, p2 = tmp_path / "orders_1.csv", tmp_path / "orders_2.csv"
    write_csv(p1, file1)
    write_csv(p2, file2)
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUFF_")}
    env.update({"DUFF_LAKE": str(lake), "PYTHONPATH": str(ROOT)})

    # When both are ingested and dbt builds the warehouse
    m1 = json.loads(run([sys.executable, "-m", "ingestion", str(p1), "--json"], env))
    m2 = json.loads(run([sys.executable, "-m", "ingestion", str(p2), "--json"], env))
    assert (m1["valid"], m2["valid"]) == (180, 41)
    dbt = str(Path(sys.executable).with_name("dbt"))
    run(
        [
            dbt,
            "build",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env,
    )
    run([sys.executable, "-m", "export", "--target-path", str(tmp_path / "target")], env)

    # Then the API answers exactly the numbers computed from the CSV rows
    latest = {}
    for row in file1[:180] + file2:  # valid rows in landing order: later versions win
        latest[int(row["order_id"])] = row
    client_name = {}
    for row in file1[:180] + file2:
        client_name[int(row["client_id"])] = row["client_name"]
    orders = []
    for oid in sorted(latest):
        r = latest[oid]
        units = int(r["product_ccf"])
        price, vol = Decimal(r["product_price"]), Decimal(r["product_volume"])
        orders.append(
            {
                "order_id": oid,
                "client_id": int(r["client_id"]),
                "product_id": int(r["product_id"]),
                "product_description": r["product_description"],
                "units": units,
                "unit_price": price,
                "total_amount": price * units,
                "liters": vol * units,
                "channel": CHANNELS[r["point_of_sale_channel"].strip().lower()],
                "status": r["status"].strip().lower(),
                "pa_date": r["order_date"],
            }
        )
    app = App(Settings(api_key=KEY, backend="local", lake=str(lake)), LocalBackend(lake))

    def get(path, query=()):
        resp = app.handle(Request("GET", path, tuple(query), {"x-api-key": KEY}))
        assert resp.status == 200, resp.body
        return json.loads(resp.body, parse_float=Decimal)

    def walk(path, limit):
        items, cursor = [], None
        while True:
            q = [("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
            body = get(path, q)
            items += body["items"]
            cursor = body["next_cursor"]
            if not cursor:
                return items

    assert walk("/orders", 17) == orders

    clients = defaultdict(lambda: {"orders": 0, "units": 0, "liters": 0, "total_spend": 0})
    per_product = defaultdict(lambda: [0, Decimal(0)])
    for o in orders:
        c = clients[o["client_id"]]
        c["orders"] += 1
        c["units"] += o["units"]
        c["liters"] += o["liters"]
        c["total_spend"] += o["total_amount"]
        acc = per_product[(o["client_id"], o["product_id"])]
        acc[0] += o["units"]
        acc[1] += o["total_amount"]
    expected_clients = []
    for cid, c in clients.items():
        units, _s, _n, pid = max(
            (u, s, -p, p) for (ci, p), (u, s) in per_product.items() if ci == cid
        )
        expected_clients.append(
            {
                "client_id": cid,
                "client_name": client_name[cid],
                **c,
                "top_product": {
                    "product_id": pid,
                    "product_description": PRODUCTS[pid][0],
                    "units": units,
                },
            }
        )
    expected_clients.sort(key=lambda c: (-c["total_spend"], c["client_id"]))
    assert walk("/clients", 5) == expected_clients
    assert get("/clients/3")["client_name"] == "Moe's Tavern"

    def totals(key, with_liters=True):
        out = {}
        for o in orders:
            t = out.setdefault(o[key], {"orders": 0, "units": 0, "liters": 0, "revenue": 0})
            t["orders"] += 1
            t["units"] += o["units"]
            t["liters"] += o["liters"]
            t["revenue"] += o["total_amount"]
        if not with_liters:
            for t in out.values():
                del t["liters"]
        return out

    by_channel = totals("channel")
    assert get("/sales/by-channel")["items"] == [
        {"channel": ch, **by_channel.get(ch, {"orders": 0, "units": 0, "liters": 0, "revenue": 0})}
        for ch in sorted(CHANNELS.values())
    ]
    by_status = totals("status", with_liters=False)
    assert get("/status-summary")["items"] == [
        {"status": s, **by_status.get(s, {"orders": 0, "units": 0, "revenue": 0})}
        for s in ("broken", "created", "delivered")
    ]
    by_product = totals("product_id")
    assert get("/products")["items"] == [
        {"product_id": p, "product_description": PRODUCTS[p][0], **by_product[p]}
        for p in sorted(by_product)
    ]
    by_day = totals("pa_date")
    assert get("/sales/daily", [("from", "2024-03-02"), ("to", "2024-03-08")])["items"] == [
        {"pa_date": d, **by_day[d]} for d in sorted(by_day) if "2024-03-02" <= d <= "2024-03-08"
    ]
    health = get("/health")
    landed = dt.datetime.fromisoformat(m2["landed_at"].replace("Z", "+00:00"))
    as_of = dt.datetime.fromisoformat(health["data_as_of"].replace("Z", "+00:00"))
    assert health["data_as_of"].endswith("Z")
    assert abs((as_of - landed).total_seconds()) < 1
