"""Integration fixtures for the API: realistic exported marts and a live uvicorn server.

The marts are written per docs/architecture.md section 2 from orders this file generates
(``tests.support.fake_marts``); the expected numbers are computed here independently, in
plain Python with Decimal, from the same orders.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import uvicorn

from api.server import build_asgi, server_config
from api.settings import Settings
from tests.support.fake_marts import make_orders, write_build

API_IT_KEY = "integration-key-7f3a"
C2 = Decimal("0.01")
L3 = Decimal("0.001")


def crafted_ties() -> pa.Table:
    """Clients whose total spend ties exactly (ordering falls back to client_id), and a client
    whose top product ties on units and is decided by spend, then by product_id."""
    rows = [
        # order_id, client_id, product_id, price_cents, units
        (9_000_001, 900_002, 1, 1000, 1),  # spend 10.00
        (9_000_002, 900_001, 2, 500, 2),  # spend 10.00 (tie with 900002)
        (9_000_003, 900_003, 1, 334, 3),  # spend 10.02
        (9_000_004, 900_004, 3, 100, 2),  # top-product tie on units 2 vs 2: spend decides
        (9_000_005, 900_004, 2, 300, 2),
        (9_000_006, 900_005, 3, 100, 1),  # tie on units and spend: lower product_id wins
        (9_000_007, 900_005, 2, 100, 1),
    ]
    n = len(rows)
    return pa.table(
        {
            "order_id": pa.array([r[0] for r in rows], pa.int64()),
            "client_id": pa.array([r[1] for r in rows], pa.int64()),
            "client_name": pa.array([f"Tie client {r[1]}" for r in rows]),
            "product_id": pa.array([r[2] for r in rows], pa.int64()),
            "product_description": pa.array(
                [f"{d} #{r[2]}" for r, d in zip(rows, ["Duff Beer 33cl"] * n, strict=True)]
            ),
            "unit_price_cents": pa.array([r[3] for r in rows], pa.int64()),
            "units": pa.array([r[4] for r in rows], pa.int32()),
            "volume_ml": pa.array([330] * n, pa.int64()),
            "channel": pa.array(["Retail", "Online", "B2B", "Retail", "Retail", "B2B", "B2B"]),
            "status": pa.array(["delivered"] * n),
            "pa_date": pa.array([dt.date(2024, 3, 2)] * n, pa.date32()),
        }
    )


def make_dataset(seed: int, first_order_id: int = 1) -> list[dict]:
    random_orders = make_orders(
        3000, clients=60, products=6, days=20, seed=seed, first_order_id=first_order_id
    )
    # product descriptions must be one per product id across both parts
    desc = dict(
        zip(
            random_orders.column("product_id").to_pylist(),
            random_orders.column("product_description").to_pylist(),
            strict=True,
        )
    )
    ties = crafted_ties()
    ties = ties.set_column(
        ties.schema.get_field_index("product_description"),
        "product_description",
        pa.array([desc[p] for p in ties.column("product_id").to_pylist()]),
    )
    return pa.concat_tables([random_orders, ties.cast(random_orders.schema)])


def expected_from(orders: pa.Table) -> dict:
    """Every route's expected items, computed in plain Python from the orders."""
    rows = orders.to_pylist()
    out_orders = []
    clients: dict[int, dict] = {}
    per_cp: dict[tuple[int, int], list] = defaultdict(lambda: [0, Decimal(0)])
    products: dict[int, dict] = {}
    channels: dict[str, dict] = {}
    pc_: dict[tuple[int, str], dict] = {}
    statuses: dict[str, dict] = {}
    daily: dict[str, dict] = {}

    def bump(d, key, base, units, liters, amount, with_liters=True):
        e = d.setdefault(key, {**base, "orders": 0, "units": 0, "revenue": Decimal(0)})
        if with_liters:
            e.setdefault("liters", Decimal(0))
            e["liters"] += liters
        e["orders"] += 1
        e["units"] += units
        e["revenue"] += amount

    for r in rows:
        price = Decimal(r["unit_price_cents"]) / 100
        amount = price * r["units"]
        liters = Decimal(r["volume_ml"]) * r["units"] / 1000
        out_orders.append(
            {
                "order_id": r["order_id"],
                "client_id": r["client_id"],
                "product_id": r["product_id"],
                "product_description": r["product_description"],
                "units": r["units"],
                "unit_price": price.quantize(C2),
                "total_amount": amount.quantize(C2),
                "liters": liters.quantize(L3),
                "channel": r["channel"],
                "status": r["status"],
                "pa_date": r["pa_date"].isoformat(),
            }
        )
        c = clients.setdefault(
            r["client_id"],
            {
                "client_id": r["client_id"],
                "client_name": r["client_name"],
                "orders": 0,
                "units": 0,
                "liters": Decimal(0),
                "total_spend": Decimal(0),
            },
        )
        c["orders"] += 1
        c["units"] += r["units"]
        c["liters"] += liters
        c["total_spend"] += amount
        acc = per_cp[(r["client_id"], r["product_id"])]
        acc[0] += r["units"]
        acc[1] += amount
        pid, desc, ch = r["product_id"], r["product_description"], r["channel"]
        bump(
            products,
            pid,
            {"product_id": pid, "product_description": desc},
            r["units"],
            liters,
            amount,
        )
        bump(channels, ch, {"channel": ch}, r["units"], liters, amount)
        bump(
            pc_,
            (pid, ch),
            {"product_id": pid, "product_description": desc, "channel": ch},
            r["units"],
            liters,
            amount,
        )
        bump(statuses, r["status"], {"status": r["status"]}, r["units"], liters, amount, False)
        day = r["pa_date"].isoformat()
        bump(daily, day, {"pa_date": day}, r["units"], liters, amount)

    descs = {p: v["product_description"] for p, v in products.items()}
    for cid, c in clients.items():
        candidates = [(u, s, -p, p) for (ci, p), (u, s) in per_cp.items() if ci == cid]
        units, _spend, _neg, pid = max(candidates)
        c["top_product"] = {"product_id": pid, "product_description": descs[pid], "units": units}
    client_list = sorted(clients.values(), key=lambda c: (-c["total_spend"], c["client_id"]))
    return {
        "orders": sorted(out_orders, key=lambda o: o["order_id"]),
        "clients": client_list,
        "products": [products[k] for k in sorted(products)],
        "channels": [channels[k] for k in sorted(channels)],
        "product_channels": [pc_[k] for k in sorted(pc_)],
        "statuses": [statuses[k] for k in sorted(statuses)],
        "daily": [daily[k] for k in sorted(daily)],
    }


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """``python -m api``'s ASGI app on uvicorn in a thread, bound to 127.0.0.1."""

    def __init__(
        self, lake: Path, key: str = API_IT_KEY, reload_seconds: float = 2.0, **settings_kw
    ) -> None:
        settings = Settings(
            api_key=key,
            backend="local",
            lake=str(lake),
            reload_interval_seconds=reload_seconds,
            **settings_kw,
        )
        self.asgi = build_asgi(settings, watch=True)
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(self.asgi, settings))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class Client:
    """A keep-alive HTTP client that parses JSON numbers as Decimal."""

    def __init__(self, port: int, key: str | None = API_IT_KEY) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.key = key

    def get(self, path: str, key: str | bool | None = True):
        headers = {}
        use = self.key if key is True else key
        if use:
            headers["x-api-key"] = use
        self.conn.request("GET", path, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        body = json.loads(raw, parse_float=Decimal) if raw else None
        return resp.status, body

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def api_it_world(tmp_path_factory):
    """A lake with one build of the marts and the expected answers; a live server over it."""
    lake = tmp_path_factory.mktemp("api-it-lake")
    orders = make_dataset(seed=21)
    write_build(
        lake,
        orders,
        built_at=dt.datetime(2024, 4, 2, 6, 0, tzinfo=dt.UTC),
        data_as_of=dt.datetime(2024, 4, 2, 5, 58, 1, tzinfo=dt.UTC),
        build_id="it-build-1",
    )
    with LiveServer(lake) as server:
        yield {"lake": lake, "server": server, "expected": expected_from(orders)}


@pytest.fixture
def api_it_client(api_it_world):
    client = Client(api_it_world["server"].port)
    yield client
    client.close()


@pytest.fixture(scope="session")
def api_it_tools():
    """The helpers above for tests that build their own lakes and servers."""
    import types

    return types.SimpleNamespace(
        LiveServer=LiveServer,
        Client=Client,
        make_dataset=make_dataset,
        expected_from=expected_from,
        key=API_IT_KEY,
    )
