"""Build discovery of the local backend: newest complete build, never older, pruning; and
what a query reads: only the parts of a large mart that can hold its rows."""

import datetime as dt
import re
import shutil

import pyarrow.parquet as pq
import pytest

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings
from tests.support.fake_marts import make_orders, write_build

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def small_orders():
    return make_orders(50, clients=5, products=3, days=3, seed=11)


def build(lake, orders, minutes, build_id, **kw):
    return write_build(
        lake, orders, built_at=T0 + dt.timedelta(minutes=minutes), build_id=build_id, **kw
    )


def test_serves_newest_complete_build_and_ignores_incomplete(tmp_path, small_orders):
    # Given two complete builds and a newer one without _SUCCESS (dbt still exporting)
    build(tmp_path, small_orders, 1, "b1")
    build(tmp_path, small_orders, 2, "b2")
    build(tmp_path, small_orders, 3, "b3", write_success=False)
    backend = LocalBackend(tmp_path)
    # When it looks for builds / Then it serves b2
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "b2"


def test_never_goes_back_to_an_older_build(tmp_path, small_orders):
    build(tmp_path, small_orders, 5, "b5")
    backend = LocalBackend(tmp_path)
    backend.refresh()
    # Given an older build appears later (a slow export finishing late)
    build(tmp_path, small_orders, 4, "b4")
    # When refreshing / Then it stays on b5
    assert backend.refresh() is False
    assert backend.snapshot().build_id == "b5"


def test_a_corrupt_newer_build_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "bad")
    (bad / "mart_orders.parquet").write_bytes(b"not parquet")
    backend = LocalBackend(tmp_path)
    backend.refresh()
    assert backend.snapshot().build_id == "good"
    # and a build newer still is picked up later
    build(tmp_path, small_orders, 3, "newer")
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "newer"


def test_prunes_builds_older_than_the_three_newest_complete(tmp_path, small_orders):
    dirs = [build(tmp_path, small_orders, i, f"b{i}") for i in range(1, 6)]
    crashed = build(tmp_path, small_orders, 0, "crashed", write_success=False)
    in_progress = build(tmp_path, small_orders, 9, "running", write_success=False)
    backend = LocalBackend(tmp_path, keep_builds=3)
    backend.refresh()
    assert backend.snapshot().build_id == "b5"
    remaining = sorted(p.name for p in (tmp_path / "marts" / "builds").iterdir())
    assert remaining == sorted([dirs[2].name, dirs[3].name, dirs[4].name, in_progress.name])
    assert not crashed.exists()


def test_checks_at_most_every_reload_interval(tmp_path, small_orders):
    now = [0.0]
    backend = LocalBackend(tmp_path, reload_interval=2.0, clock=lambda: now[0])
    assert backend.snapshot() is None
    build(tmp_path, small_orders, 1, "b1")
    now[0] = 1.0
    assert backend.snapshot() is None  # not looked yet
    now[0] = 2.5
    assert backend.snapshot().build_id == "b1"


def test_refuses_an_s3_lake():
    with pytest.raises(ValueError):
        LocalBackend("s3://bucket/lake")


def test_a_build_missing_a_declared_column_is_skipped_not_retried_forever(tmp_path, small_orders):
    import pyarrow.parquet as pq

    # Given a good build, then a newer one whose mart_client_sales lost a declared column
    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "lacks-spend")
    path = bad / "mart_client_sales.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["total_spend"]), path)
    # When the backend looks / Then it serves the good one and remembers the bad one
    backend = LocalBackend(tmp_path)
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "good"
    assert backend.refresh() is False


def test_a_build_without_its_declarations_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    bad = build(tmp_path, small_orders, 2, "no-served-json")
    (bad / "_served.json").unlink()
    backend = LocalBackend(tmp_path)
    assert backend.refresh() is True
    assert backend.snapshot().build_id == "good"


def test_a_build_without_any_mart_orders_is_skipped(tmp_path, small_orders):
    build(tmp_path, small_orders, 1, "good")
    no_orders = build(tmp_path, small_orders, 2, "no-orders")
    shutil.rmtree(no_orders / "mart_orders")
    (no_orders / "mart_orders.parquet").unlink()
    backend = LocalBackend(tmp_path)
    backend.refresh()
    assert backend.snapshot().build_id == "good"


KEY = "local-backend-key-0123456789"
PART = re.compile(r"part_[0-9]{6}\.parquet")


def serve(lake, **kw):
    """An App on the lake's build, and the SQL of every statement it runs."""
    backend = LocalBackend(lake, **kw)
    backend.refresh()
    snap = backend.snapshot()
    statements: list[str] = []
    run = snap.query

    def query(sql, params):
        statements.append(sql)
        return run(sql, params)

    snap.query = query  # type: ignore[method-assign]
    app = App(Settings(api_key=KEY, backend="local", lake=str(lake)), backend)

    def get(path, **query):
        q = tuple((k, str(v)) for k, v in query.items())
        resp = app.handle(Request("GET", path, q, {"x-api-key": KEY}))
        assert resp.status == 200, resp.body
        return resp.json()

    return get, statements, backend


def serve_status(backend, path):
    app = App(Settings(api_key=KEY, backend="local", lake="unused"), backend)
    return app.handle(Request("GET", path, (), {"x-api-key": KEY})).status


def walk(get, path, **query):
    pages, cursor = [], None
    while True:
        page = get(path, **query, **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return pages


@pytest.fixture(scope="module")
def parted_lake(tmp_path_factory):
    """2,000 orders of 50 clients, every relation in parts of 32 rows."""
    lake = tmp_path_factory.mktemp("parted")
    write_build(lake, make_orders(2_000, clients=50, seed=21), part_rows=32)
    return lake


def test_a_lookup_or_a_page_reads_only_the_parts_that_can_hold_its_rows(parted_lake):
    get, statements, backend = serve(parted_lake, in_memory_bytes=0)
    whole, _, whole_backend = serve(parted_lake)  # the same build from memory
    assert len(backend.snapshot()._parts["mart_orders"].parts) == 2_000 // 32 + 1
    # a client's orders: ~40 rows, in the one or two parts of the copy sorted by client
    client = get("/clients", limit=1)["items"][0]["client_id"]
    statements.clear()
    assert walk(get, f"/clients/{client}/orders", limit=15) == walk(
        whole, f"/clients/{client}/orders", limit=15
    )
    (build_dir,) = (parted_lake / "marts" / "builds").iterdir()
    holding = {
        p.name
        for p in (build_dir / "mart_orders__by_client_id").iterdir()
        if client in pq.read_table(p, columns=["client_id"]).column(0).to_pylist()
    }
    assert statements and all(set(PART.findall(s)) == holding for s in statements)
    # a walk over every order: each page reads the part its cursor is in and the next
    statements.clear()
    pages = walk(get, "/orders", limit=20)
    assert pages == walk(whole, "/orders", limit=20)
    assert sum(len(p) for p in pages) == 2_000 and len(statements) == len(pages)
    assert all(1 <= len(PART.findall(s)) <= 2 for s in statements), statements
    # a filter few rows pass: two windows of parts (the second eight times the first), then
    # the whole relation's one file from the start: at most three statements
    product = get("/products")["items"][0]["product_id"]
    rare = {"status": "broken", "channel": "b2b", "product_id": product, "limit": 200}
    statements.clear()
    sparse = get("/orders", **rare)
    assert sparse == whole("/orders", **rare) and 0 < len(sparse["items"]) < 200
    assert len(statements) == 3 and [len(PART.findall(s)) for s in statements][2] == 0
    assert len(PART.findall(statements[0])) < len(PART.findall(statements[1]))
    assert 'from "mart_orders" where' in statements[2]
    # a client's orders asked as a filter of /orders: the copy sorted by client, as the path
    statements.clear()
    by_filter = walk(get, "/orders", client_id=client, limit=15)
    assert by_filter == walk(whole, "/orders", client_id=client, limit=15)
    assert statements and all(set(PART.findall(s)) == holding for s in statements)
    # one client: the one part of the client copy that holds it
    statements.clear()
    assert get(f"/clients/{client}") == whole(f"/clients/{client}")
    assert len(statements) == 1 and len(PART.findall(statements[0])) == 1, statements
    assert "mart_client_sales__by_client_id/" in statements[0]
    # an id past every part's range: a 404 without reading anything
    statements.clear()
    for path in ("/clients/999999", "/clients/999999/orders"):
        assert serve_status(backend, path) == 404
    assert statements == []
    # an unknown client reads no part of the orders (its 404 comes from the client mart)
    snap = backend.snapshot()
    assert (
        list(snap.windows("mart_orders", [("order_id", False)], {"client_id": 10**9}, None, 5))
        == []
    )
    backend.close()
    whole_backend.close()


def test_parts_out_of_order_are_read_whole_not_trusted(parted_lake, tmp_path):
    # Given a build whose mart_orders parts were renamed out of their order
    shutil.copytree(parted_lake, tmp_path, dirs_exist_ok=True)
    (build_dir,) = (tmp_path / "marts" / "builds").iterdir()
    parts = build_dir / "mart_orders"
    (parts / "part_000003.parquet").rename(parts / "swap.tmp")
    (parts / "part_000030.parquet").rename(parts / "part_000003.parquet")
    (parts / "swap.tmp").rename(parts / "part_000030.parquet")
    # When it is served from its files / Then mart_orders has no part index (the copy by
    # client keeps its own), and a walk still answers every order in order_id order
    get, statements, backend = serve(tmp_path, in_memory_bytes=0)
    assert "mart_orders" not in backend.snapshot()._parts
    assert "mart_orders__by_client_id" in backend.snapshot()._parts
    pages = walk(get, "/orders", limit=500)
    ids = [o["order_id"] for page in pages for o in page]
    assert len(ids) == 2_000 and ids == sorted(ids)
    assert all('from "mart_orders"' in s for s in statements)
    backend.close()


def test_a_build_of_the_one_file_layout_is_still_served_from_its_files(parted_lake, tmp_path):
    # Given the parted build rewritten as builds before the parts were: one file per mart
    shutil.copytree(parted_lake, tmp_path, dirs_exist_ok=True)
    (build_dir,) = (tmp_path / "marts" / "builds").iterdir()
    for folder in [p for p in build_dir.iterdir() if p.is_dir()]:
        table = pq.read_table(sorted(folder.glob("part_*.parquet")))
        shutil.rmtree(folder)
        pq.write_table(table, build_dir / f"{folder.name}.parquet", row_group_size=128)
    # When it is served from its files, not copied into memory / Then it opens, has no part
    # index, and answers as the parted build does
    get, _, backend = serve(tmp_path, in_memory_bytes=0)
    parted, _, parted_backend = serve(parted_lake, in_memory_bytes=0)
    assert backend.snapshot().build_id == parted_backend.snapshot().build_id
    assert backend.snapshot()._parts == {}
    client = get("/clients", limit=1)["items"][0]["client_id"]
    for path, query in (("/orders", {"limit": 300}), (f"/clients/{client}/orders", {"limit": 9})):
        assert walk(get, path, **query) == walk(parted, path, **query)
    assert get(f"/clients/{client}") == parted(f"/clients/{client}")
    backend.close()
    parted_backend.close()


def test_a_server_whose_only_build_is_refused_says_so(tmp_path, small_orders, caplog):
    # Given one complete build that cannot be served (its declarations are gone)
    bad = build(tmp_path, small_orders, 1, "refused")
    (bad / "_served.json").unlink()
    # When the server starts on the lake
    from api.server import build_asgi

    with caplog.at_level("WARNING", logger="duff.api"):
        build_asgi(Settings(api_key="k", backend="local", lake=str(tmp_path)), watch=False)
    # Then its warning names the refused build, not a lake without builds
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "duff.api"]
    assert "1 complete build(s) refused" in warning and bad.name in warning, warning
    assert "no complete build" not in warning
