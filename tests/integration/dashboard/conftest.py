"""Fixtures for the dashboard tests: orders the test makes, the marts they imply, a server that
serves the dashboard and the API over them, and a headless Chromium driven over CDP.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it). When it is absent
the browser tests are skipped locally with the reason, and fail under CI (env ``CI`` set).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.dashboard.cdp import Chromium, Page, find_chromium

API_KEY = "dash-test-key-0123456789"
XSS_NAME = '<img src=x onerror="document.body.dataset.pwned=1">Mr. Burns & Co'
CENT = Decimal("0.01")
MILLI = Decimal("0.001")

PRODUCTS = [
    # product_id, description, price per unit, litres per unit
    (1, "Duff Lager 33cl", Decimal("1.20"), Decimal("0.330")),
    (2, "Duff Lager 50cl", Decimal("1.75"), Decimal("0.500")),
    (3, "Duff Dry", Decimal("1.55"), Decimal("0.330")),
    (4, "Duff Lite", Decimal("1.10"), Decimal("0.330")),
    (5, "Duff Stout", Decimal("2.05"), Decimal("0.440")),
    (6, "Duff Red Cap", Decimal("2.30"), Decimal("0.500")),
    (7, "Duff Keg 30L", Decimal("89.90"), Decimal("30.000")),
    (8, "Duff Keg 50L", Decimal("139.00"), Decimal("50.000")),
    (9, "Duff Gold Anniversary Edition", Decimal("5.99"), Decimal("0.750")),
    (10, "Duff Zero", Decimal("0.95"), Decimal("0.330")),
    (11, "Duff Christmas Ale", Decimal("3.25"), Decimal("0.500")),
    (12, "Duff Raspberry", Decimal("1.65"), Decimal("0.330")),
    (13, "Duff Six Pack", Decimal("6.80"), Decimal("1.980")),
    (14, "Duff Party Crate 24", Decimal("24.50"), Decimal("7.920")),
    (15, "Duff Sample", Decimal("0.00"), Decimal("0.100")),
]
CHANNELS = (("Retail", 6), ("Online", 3), ("B2B", 1))
STATUSES = (("delivered", 7), ("created", 2), ("broken", 1))
FIRST = ("Homer", "Marge", "Lisa", "Moe", "Barney", "Lenny", "Carl", "Apu", "Ned", "Edna")
LAST = ("Simpson", "Szyslak", "Gumble", "Leonard", "Carlson", "Flanders", "Krabappel", "Wiggum")


@dataclass(frozen=True)
class Order:
    order_id: int
    client_id: int
    client_name: str
    product_id: int
    units: int
    channel: str
    status: str
    pa_date: dt.date

    @property
    def product(self) -> tuple[int, str, Decimal, Decimal]:
        return PRODUCTS[self.product_id - 1]

    @property
    def unit_price(self) -> Decimal:
        return self.product[2]

    @property
    def amount(self) -> Decimal:
        return self.product[2] * self.units

    @property
    def liters(self) -> Decimal:
        return self.product[3] * self.units


@dataclass
class DashboardData:
    """Orders the test made, and every aggregate the marts (and so the API) must hold."""

    orders: list[Order]
    data_as_of: dt.datetime
    clients: list[dict] = field(default_factory=list)  # /clients order
    products: list[dict] = field(default_factory=list)
    channels: list[dict] = field(default_factory=list)
    product_channels: list[dict] = field(default_factory=list)
    statuses: list[dict] = field(default_factory=list)
    daily: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        def bucket() -> dict:
            return {"orders": 0, "units": 0, "liters": Decimal(0), "revenue": Decimal(0)}

        by_client: dict[int, dict] = defaultdict(bucket)
        client_product: dict[tuple[int, int], dict] = defaultdict(bucket)
        by_product: dict[int, dict] = defaultdict(bucket)
        by_channel: dict[str, dict] = defaultdict(bucket)
        by_pc: dict[tuple[int, str], dict] = defaultdict(bucket)
        by_status: dict[str, dict] = defaultdict(bucket)
        by_day: dict[dt.date, dict] = defaultdict(bucket)
        names: dict[int, str] = {}
        for o in self.orders:
            names[o.client_id] = o.client_name  # later orders are "landed later"
            for b in (
                by_client[o.client_id],
                client_product[o.client_id, o.product_id],
                by_product[o.product_id],
                by_channel[o.channel],
                by_pc[o.product_id, o.channel],
                by_status[o.status],
                by_day[o.pa_date],
            ):
                b["orders"] += 1
                b["units"] += o.units
                b["liters"] += o.liters
                b["revenue"] += o.amount
        products_of: dict[int, list[tuple[int, dict]]] = defaultdict(list)
        for (cid, pid), v in client_product.items():
            products_of[cid].append((pid, v))
        for cid, b in by_client.items():
            candidates = products_of[cid]
            pid, top = min(candidates, key=lambda t: (-t[1]["units"], -t[1]["revenue"], t[0]))
            self.clients.append(
                {
                    "client_id": cid,
                    "client_name": names[cid],
                    "orders": b["orders"],
                    "units": b["units"],
                    "liters": b["liters"],
                    "total_spend": b["revenue"],
                    "top_product": {
                        "product_id": pid,
                        "product_description": PRODUCTS[pid - 1][1],
                        "units": top["units"],
                    },
                }
            )
        self.clients.sort(key=lambda c: (-c["total_spend"], c["client_id"]))
        self.products = [
            {"product_id": pid, "product_description": PRODUCTS[pid - 1][1], **b}
            for pid, b in sorted(by_product.items())
        ]
        self.channels = [{"channel": ch, **b} for ch, b in sorted(by_channel.items())]
        self.product_channels = [
            {"product_id": pid, "product_description": PRODUCTS[pid - 1][1], "channel": ch, **b}
            for (pid, ch), b in sorted(by_pc.items())
        ]
        self.statuses = [
            {"status": st, "orders": b["orders"], "units": b["units"], "revenue": b["revenue"]}
            for st, b in sorted(by_status.items())
        ]
        self.daily = [{"pa_date": day, **b} for day, b in sorted(by_day.items())]

    def client(self, client_id: int) -> dict:
        return next(c for c in self.clients if c["client_id"] == client_id)


def make_orders(seed: int = 6, n_clients: int = 2500) -> list[Order]:
    """Orders of ``n_clients`` clients over 45 days; a few big spenders, an XSS-shaped name,
    a name with accents and one name shared by two client ids."""
    rng = random.Random(seed)
    start = dt.date(2024, 3, 1)
    orders: list[Order] = []
    order_id = 100_000
    channel_names, channel_w = zip(*CHANNELS, strict=True)
    status_names, status_w = zip(*STATUSES, strict=True)
    for i in range(n_clients):
        client_id = 10 + i * 3
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]} {i}"
        if i == 7:
            name = XSS_NAME
        elif i == n_clients - 5:
            name = "Zoë Ångström"  # one free sample: among the smallest spenders, last page
        elif i in (20, 21):
            name = "Hans Moleman"
        n_orders = rng.randint(12, 20) if i < 25 else rng.randint(1, 3)
        if i == 7:
            n_orders = 40  # the hostile name is a top-10 client, so the charts show it
        elif i == n_clients - 5:
            n_orders = 1
        for _ in range(n_orders):
            order_id += rng.randint(1, 5)
            product_id = rng.choice((7, 8, 14)) if i < 25 else rng.randint(1, len(PRODUCTS))
            if i == n_clients - 5:
                product_id = 15
            orders.append(
                Order(
                    order_id=order_id,
                    client_id=client_id,
                    client_name=name,
                    product_id=product_id,
                    units=rng.randint(1, 48),
                    channel=rng.choices(channel_names, channel_w)[0],
                    status=rng.choices(status_names, status_w)[0],
                    pa_date=start + dt.timedelta(days=rng.randint(0, 44)),
                )
            )
    return orders


def write_marts(lake: Path, data: DashboardData) -> Path:
    """Write one complete build of the served marts, as docs/architecture.md section 2 says."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    money = pa.decimal128(38, 2)
    litres = pa.decimal128(38, 3)
    built_at = dt.datetime.now(dt.UTC)
    build = lake / "marts" / "builds" / f"{built_at:%Y%m%dT%H%M%S%f}Z_{uuid.uuid4()}"
    build.mkdir(parents=True)

    def write(name: str, rows: list[dict], schema: pa.Schema) -> None:
        cols = {f.name: [r[f.name] for r in rows] for f in schema}
        pq.write_table(pa.table(cols, schema=schema), build / f"{name}.parquet")

    i64, txt = pa.int64(), pa.string()
    write(
        "mart_client_sales",
        [
            {
                **c,
                "top_product_id": c["top_product"]["product_id"],
                "top_product_description": c["top_product"]["product_description"],
                "top_product_units": c["top_product"]["units"],
            }
            for c in data.clients
        ],
        pa.schema(
            [
                ("client_id", i64),
                ("client_name", txt),
                ("orders", i64),
                ("units", i64),
                ("liters", litres),
                ("total_spend", money),
                ("top_product_id", i64),
                ("top_product_description", txt),
                ("top_product_units", i64),
            ]
        ),
    )
    sales = [("orders", i64), ("units", i64), ("liters", litres), ("revenue", money)]
    write(
        "mart_product_sales",
        data.products,
        pa.schema([("product_id", i64), ("product_description", txt), *sales]),
    )
    write("mart_channel_sales", data.channels, pa.schema([("channel", txt), *sales]))
    write(
        "mart_product_channel_sales",
        data.product_channels,
        pa.schema([("product_id", i64), ("product_description", txt), ("channel", txt), *sales]),
    )
    write(
        "mart_status_summary",
        data.statuses,
        pa.schema([("status", txt), ("orders", i64), ("units", i64), ("revenue", money)]),
    )
    write("mart_daily_sales", data.daily, pa.schema([("pa_date", pa.date32()), *sales]))
    write(
        "mart_orders",
        [
            {
                "order_id": o.order_id,
                "client_id": o.client_id,
                "product_id": o.product_id,
                "product_description": o.product[1],
                "units": o.units,
                "unit_price": o.unit_price,
                "total_amount": o.amount,
                "liters": o.liters,
                "channel": o.channel,
                "status": o.status,
                "pa_date": o.pa_date,
            }
            for o in sorted(data.orders, key=lambda o: o.order_id)
        ],
        pa.schema(
            [
                ("order_id", i64),
                ("client_id", i64),
                ("product_id", i64),
                ("product_description", txt),
                ("units", i64),
                ("unit_price", pa.decimal128(12, 2)),
                ("total_amount", pa.decimal128(22, 2)),
                ("liters", pa.decimal128(20, 3)),
                ("channel", txt),
                ("status", txt),
                ("pa_date", pa.date32()),
            ]
        ),
    )
    info = [
        {
            "build_id": build.name.split("_", 1)[1],
            "built_at": built_at,
            "data_as_of": data.data_as_of,
        }
    ]
    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([("build_id", txt), ("built_at", ts), ("data_as_of", ts)])
    write("mart_build_info", info, schema)
    write_quality_marts(write, build)
    import duckdb

    from api.declarations import from_project, to_json
    from tests.support.fake_marts import empty_mart_sql

    marts = from_project(REPO)
    for mart in marts:  # a served mart the dashboard does not read: written empty
        path = build / f"{mart.name}.parquet"
        if not path.exists():
            quoted = str(path).replace("'", "''")
            duckdb.execute(f"copy ({empty_mart_sql(mart)}) to '{quoted}' (format parquet)")
    (build / "_served.json").write_text(to_json(marts), encoding="utf-8")
    write("_SUCCESS", info, schema)  # last: marks the build complete
    return build


# Deliveries as mart_quality_files holds them, oldest first: (file, status, rows_in, valid,
# missing, invalid, duplicate, ignored columns, error). The quality panel's figures.
QUALITY_FILES = [
    ("orders_0401.csv", "landed", 1200, 1187, 4, 7, 2, '["promo_code"]', None),
    # a quarantine error as long as real ones get (it once widened the page past the window)
    (
        "notes.csv",
        "quarantined",
        0,
        0,
        0,
        0,
        0,
        "[]",
        "the header lacks required columns: client_id, client_name, order_id, product_id, "
        "product_description, product_price, product_ccf, product_volume, point_of_sale_channel, "
        "status (it names: note_id, author, created_at, body, tags, visibility, updated_at)",
    ),
    ("orders_0402.csv", "landed", 800, 797, 0, 3, 0, "[]", None),
    ("orders_0403.csv", "landed", 950, 950, 0, 0, 0, "[]", None),
]
QUALITY_LANDED = dt.datetime(2024, 4, 15, 6, 0, 0)
# The order stream's batches (CONTRACT.md section 6), deliveries too, a minute apart per
# shard: (first landing, count, rows_in each). Two land before the oldest file (the panel
# does not count them), three between the second and third files, 1,200 after the newest
# file, so the panel must page past 1,000 to find the files.
QUALITY_STREAM_BATCHES = [
    (QUALITY_LANDED - dt.timedelta(minutes=30), 2, 4),
    (QUALITY_LANDED + dt.timedelta(hours=1, minutes=10), 3, 4),
    (QUALITY_LANDED + dt.timedelta(hours=len(QUALITY_FILES), minutes=1), 1200, 5),
]


def stream_batches() -> list[dict]:
    """QUALITY_STREAM_BATCHES as mart_quality_files rows; every 100th batch has one event
    rejected as invalid."""
    rows = []
    for first, count, rows_in in QUALITY_STREAM_BATCHES:
        for i in range(count):
            landed = first + dt.timedelta(minutes=i)
            invalid = 1 if (len(rows) % 100) == 99 else 0
            rows.append(
                {
                    "ingest_id": f"{landed:%Y%m%dT%H%M%S%f}Z-{len(rows):012x}",
                    "source_file": "stream://duff-orders/shard-0",
                    "status": "landed",
                    "rows_in": rows_in,
                    "valid": rows_in - invalid,
                    "rejected_missing": 0,
                    "rejected_invalid": invalid,
                    "rejected_duplicate": 0,
                    "ignored_columns": "[]",
                    "landed_at": landed,
                    "error": None,
                }
            )
    return rows


def write_quality_marts(write, build: Path) -> None:
    """mart_quality_files from QUALITY_FILES (an hour apart) and QUALITY_STREAM_BATCHES, and
    one rejected row of each kind in mart_quality_rejects (that route is not on the
    dashboard)."""
    import pyarrow as pa

    i64, txt = pa.int64(), pa.string()
    names = ["source_file", "status", "rows_in", "valid", "rejected_missing"]
    names += ["rejected_invalid", "rejected_duplicate", "ignored_columns", "error"]
    rows = []
    for n, values in enumerate(QUALITY_FILES):
        landed = QUALITY_LANDED + dt.timedelta(hours=n)
        row = dict(zip(names, values, strict=True))
        row.update(ingest_id=f"{landed:%Y%m%dT%H%M%S%f}Z-{n:012x}", landed_at=landed)
        row["source_file"] = f"/data/incoming/{row['source_file']}"
        rows.append(row)
    rows += stream_batches()
    rows.sort(key=lambda r: r["landed_at"], reverse=True)
    types = [txt, txt, i64, i64, i64, i64, i64, txt, txt]
    fields = [("ingest_id", txt), *zip(names[:-1], types[:-1], strict=True)]
    schema = pa.schema([*fields, ("landed_at", pa.timestamp("us")), ("error", txt)])
    write("mart_quality_files", rows, schema)
    rejects = [
        {
            "ingest_id": rows[-1]["ingest_id"],
            "source_file": rows[-1]["source_file"],
            "source_line": line,
            "reason": reason,
            "column_name": column,
            "detail": f"{reason} {column}",
            "raw_values": "[]",
        }
        for line, reason, column in [(2, "missing", "client_name"), (3, "invalid", "status")]
    ]
    cols = ["ingest_id", "source_file", "source_line", "reason", "column_name", "detail"]
    types = [txt, txt, i64, txt, txt, txt]
    schema = pa.schema([*zip(cols, types, strict=True), ("raw_values", txt)])
    write("mart_quality_rejects", rejects, schema)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def dashboard_data() -> DashboardData:
    """About 5,700 orders of 2,500 clients (so /clients has three pages of 1,000)."""
    return DashboardData(
        orders=make_orders(),
        data_as_of=dt.datetime(2024, 4, 15, 9, 30, 12, 345678, tzinfo=dt.UTC),
    )


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        reason = (
            "headless Chromium is not installed (Debian package `chromium`; "
            "`apt-get install chromium` or run .ci/run, which installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the dashboard browser tests: {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture(autouse=True)
def _dashboard_needs_chromium(chromium_binary: str) -> None:
    """Decide skip/fail before the (slower) API server starts: every test here drives Chromium."""


@pytest.fixture(scope="session")
def chromium_browser(
    chromium_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chromium]:
    """One headless Chromium for the whole session (each test opens its own tabs)."""
    with Chromium.launch(tmp_path_factory.mktemp("chromium-profile"), chromium_binary) as b:
        yield b


@pytest.fixture
def browser_tab(chromium_browser: Chromium) -> Iterator:
    """``browser_tab(width=1280, height=900)`` opens a fresh tab; all are closed after the test."""
    pages: list[Page] = []

    def open_page(width: int = 1280, height: int = 900) -> Page:
        page = chromium_browser.new_page(width, height)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$DUFF_SCREENSHOT_DIR`` when set (to look at them), else tmp."""
    wanted = os.environ.get("DUFF_SCREENSHOT_DIR")
    if wanted:
        path = Path(wanted)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@dataclass(frozen=True)
class DashboardServer:
    url: str  # "http://127.0.0.1:<port>" with no trailing slash
    api_key: str
    data: DashboardData

    def get(self, path: str, key: str | None = API_KEY):
        import httpx

        headers = {"x-api-key": key} if key is not None else {}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10)

    def json(self, path: str):
        resp = self.get(path)
        assert resp.status_code == 200, (path, resp.status_code, resp.text)
        return resp.json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


REPO = Path(__file__).resolve().parents[3]
CSV_HEADER = (
    "client_id",
    "client_name",
    "order_id",
    "product_id",
    "product_description",
    "product_price",
    "product_ccf",
    "product_volume",
    "point_of_sale_channel",
    "status",
    "order_date",
)


@contextlib.contextmanager
def running_api(lake: Path, data: DashboardData) -> Iterator[DashboardServer]:
    """``python -m api`` on 127.0.0.1 and a free port over ``lake``; stopped on exit."""
    import httpx

    log_path = lake.parent / f"{lake.name}-api.log"
    env = {
        **os.environ,
        "DUFF_LAKE": str(lake),
        "DUFF_API_KEY": API_KEY,
        "DUFF_API_BACKEND": "local",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    for _attempt in range(3):  # the free port may be taken between probe and bind: retry
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api", "--port", str(port), "--no-access-log"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.1)
        if ready:
            break
        proc.terminate()
        proc.wait(timeout=10)
    else:
        pytest.fail(f"python -m api did not come up; its log:\n{log_path.read_text()}")
    try:
        yield DashboardServer(url, API_KEY, data)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def dashboard_server(
    dashboard_data: DashboardData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardServer]:
    """The real app (``python -m api``) over one build of the marts written directly from the
    test's orders into a tmp ``DUFF_LAKE`` (docs/architecture.md section 2)."""
    lake = tmp_path_factory.mktemp("dashboard-lake")
    write_marts(lake, dashboard_data)
    with running_api(lake, dashboard_data) as server:
        yield server


def write_orders_csv(path: Path, orders: list[Order]) -> Path:
    """The orders as the Duff export writes them (CONTRACT.md section 1, with order_date)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for o in orders:
            _, description, price, volume = o.product
            writer.writerow(
                [
                    o.client_id,
                    o.client_name,
                    o.order_id,
                    o.product_id,
                    description,
                    price,
                    o.units,
                    volume,
                    o.channel,
                    o.status,
                    o.pa_date.isoformat(),
                ]
            )
    return path


@pytest.fixture(scope="session")
def pipeline_server(
    dashboard_data: DashboardData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardServer]:
    """The whole product on the test's orders: an orders CSV, ``python -m ingestion``,
    ``dbt build``, ``python -m export``, then ``python -m api`` over that lake."""
    work = tmp_path_factory.mktemp("dashboard-pipeline")
    lake = work / "lake"
    env = {
        **os.environ,
        "DUFF_LAKE": str(lake),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    env.pop("DUFF_DBT_TARGET", None)
    csv_path = write_orders_csv(work / "orders.csv", dashboard_data.orders)
    steps = [
        [sys.executable, "-m", "ingestion", str(csv_path), "--json"],
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
        ],
        [sys.executable, "-m", "export", "--target-path", str(work / "target")],
    ]
    for cmd in steps:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd[:3])} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    with running_api(lake, dashboard_data) as server:
        yield server
