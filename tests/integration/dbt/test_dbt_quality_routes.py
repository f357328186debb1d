"""GET /quality/files and GET /quality/rejects from file to API (CONTRACT.md section 4).

Given deliveries this test writes (valid rows, rejects of every reason, an ignored column, a
file without order_date, a quarantined file), landed by the ingestion CLI, when ``dbt build``
and ``python -m export`` run, then the routes answer exactly what the files say: the
expected items are built here from the rows as written (which line is rejected, for what,
on which column), with only the ingest ids and landing times taken from the CLI's manifests.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings

from .conftest import RawLake
from .test_dbt_quality import ingest

KEY = "quality-routes-key"
REQUIRED = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status"
)
# (fields, expected reject as (reason, column) or None for a valid row)
FIRST = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date,promo_code",
    [
        ("1,5,Lenny,200,Duff,1.25,2,0.330,Retail,created,2024-05-09,X1", None),
        ("2,6,,200,Duff,1.25,1,0.330,Retail,created,2024-05-09,", ("missing", "client_name")),
        ("3,6,Carl,200,Duff,1.25,1,0.330,Retail,lost,2024-05-10,", ("invalid", "status")),
        ("1,5,Lenny,200,Duff,1.25,2,0.330,Retail,created,2024-05-09,X1", ("duplicate", "order_id")),
        ("5,6,Carl,201,Duff,1e3,3,0.500,B2B,delivered,2024-05-10,", ("invalid", "product_price")),
        ("6,7,Moe,201,Duff Dry,2.00,3,0.500,b2b,delivered,,", ("missing", "order_date")),
        ("7,7,Moe,201,Duff Dry,2.00,3,0.500,online,broken,2024-02-30,", ("invalid", "order_date")),
        ("8,7,Moe,201,Duff Dry,2.00,3,0.500,B2B,delivered,2024-05-11,Z", None),
    ],
)  # fmt: skip
SECOND = (
    REQUIRED,  # no order_date: pa_date is the landing day
    [
        ("10,Barney,5,,Duff,1.25,4,0.330,Retail,created", ("missing", "product_id")),
        ("11,Homer,5,200,Duff,1.25,4,0.330,Kiosk,created", ("invalid", "point_of_sale_channel")),
        ("11,Homer,5,200,Duff,1.25,4,0.330,Retail,created", None),
    ],
)
ORDER_DATE_AND_REQUIRED = [*REQUIRED.split(","), "order_date"]


def write(path: Path, header: str, rows: list) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r, _ in rows), encoding="utf-8")
    return path


def iso(stamp: str) -> str:
    """A manifest's landed_at as the API writes timestamps: UTC, ``Z``, microseconds if any."""
    ts = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{ts.microsecond:06d}" if ts.microsecond else "") + "Z"


@pytest.fixture(scope="module")
def served(dbt_project_factory, tmp_path_factory):
    project = dbt_project_factory("dbt_quality_routes")
    lake = RawLake(project.lake)
    work = tmp_path_factory.mktemp("quality_route_files")
    deliveries = [
        (write(work / "first.csv", *FIRST), FIRST),
        (write(work / "refused.csv", "title,body", [("hello,world", None)]), None),
        (write(work / "second.csv", *SECOND), SECOND),
    ]
    manifests = [(ingest(path, lake.root), spec) for path, spec in deliveries]
    project.run("build")
    app = App(Settings(api_key=KEY, backend="local", lake=str(lake.root)), LocalBackend(lake.root))
    return app, manifests


def app_lake(app: App) -> Path:
    return Path(app.settings.lake)


def call(app: App, path: str, **query: str):
    resp = app.handle(Request("GET", path, tuple(query.items()), {"x-api-key": KEY}))
    return resp.status, json.loads(resp.body), resp.headers


def walk(app: App, path: str, limit: int, **query: str) -> list[dict]:
    items, cursor, pages = [], None, 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        status, body, _ = call(app, path, limit=str(limit), **query, **extra)
        assert status == 200, body
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            return items
        assert pages < 50


def expected_files(manifests) -> list[dict]:
    out = []
    for m, spec in manifests:
        header, rows = spec if spec else ("", [])
        reasons = [r[0] for _, r in rows if r is not None]
        known = set(ORDER_DATE_AND_REQUIRED)
        out.append(
            {
                "ingest_id": m["ingest_id"],
                "source_file": m["source_file"],
                "status": "landed" if spec else "quarantined",
                "rows_in": len(rows),
                "valid": sum(1 for _, r in rows if r is None),
                "rejected": {k: reasons.count(k) for k in ("missing", "invalid", "duplicate")},
                "ignored_columns": [c for c in header.split(",") if c and c not in known],
                "landed_at": iso(m["landed_at"]),
                "error": None if spec else m["error"],
            }
        )
    out.sort(key=lambda f: (f["landed_at"], f["ingest_id"]), reverse=True)
    return out


def expected_rejects(manifests) -> list[dict]:
    out = []
    for m, spec in manifests:
        for line, (raw, reject) in enumerate(spec[1] if spec else [], start=2):
            if reject is not None:
                out.append(
                    {
                        "ingest_id": m["ingest_id"],
                        "source_file": m["source_file"],
                        "source_line": line,
                        "reason": reject[0],
                        "column": reject[1],
                        "raw_values": raw.split(","),
                    }
                )
    return sorted(out, key=lambda r: (r["ingest_id"], r["source_line"]))


def test_files_are_served_newest_first_with_their_counts(served):
    app, manifests = served
    assert manifests[1][0]["status"] == "quarantined"
    expected = expected_files(manifests)
    assert walk(app, "/quality/files", 1) == expected
    status, body, _ = call(app, "/quality/files")
    assert status == 200 and body == {"items": expected, "next_cursor": None}
    assert all(expected[-1]["rejected"].values())  # the first delivery: every reason


def test_rejected_rows_are_served_with_column_detail_and_raw_values(served):
    app, manifests = served
    expected = expected_rejects(manifests)
    got = walk(app, "/quality/rejects", 2)
    assert {r["reason"] for r in got} == {"missing", "invalid", "duplicate"}
    for item in got:
        assert list(item) == [
            "ingest_id", "source_file", "source_line", "reason", "column", "detail",
            "raw_values",
        ]  # fmt: skip
        assert isinstance(item.pop("detail"), str) and item["raw_values"].startswith("[")
        item["raw_values"] = json.loads(item["raw_values"])
    assert got == expected


@pytest.mark.parametrize(
    "query",
    [
        {"reason": "INVALID"},
        {"column": "Order_Date"},
        {"reason": "missing", "column": "client_name"},
        {"ingest_id": "first"},  # the first delivery's id, filled in below
        {"ingest_id": "FIRST"},  # the same in upper case: filter values match in any case
        {"ingest_id": "second", "reason": "duplicate"},  # a filter that matches nothing
    ],
)
def test_filters_select_exactly_the_matching_rows(served, query):
    app, manifests = served
    first, second = manifests[0][0]["ingest_id"], manifests[2][0]["ingest_id"]
    ids = {"first": first, "FIRST": first.upper(), "second": second}
    assert first.upper() != first
    query = {k: ids.get(v, v) for k, v in query.items()}
    want = {k: v.lower() for k, v in query.items()}
    expected = [
        r
        for r in expected_rejects(manifests)
        if all((r[k].lower() if k == "ingest_id" else r[k]) == v for k, v in want.items())
    ]
    got = walk(app, "/quality/rejects", 1, **query)
    assert [(r["ingest_id"], r["source_line"]) for r in got] == [
        (r["ingest_id"], r["source_line"]) for r in expected
    ]
    if "ingest_id" in query and "reason" in query:
        assert got == []
    else:
        assert got


@pytest.mark.parametrize(
    "path,query,message",
    [
        ("/quality/rejects", {"reason": "lost"}, "reason"),
        ("/quality/rejects", {"column": "promo_code"}, "column"),
        ("/quality/rejects", {"column": "column_name"}, "column"),
        ("/quality/rejects", {"limit": "0"}, "limit"),
        ("/quality/files", {"limit": "1001"}, "limit"),
        ("/quality/files", {"status": "landed"}, "status"),
        ("/quality/files", {"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_parameters_are_400(served, path, query, message):
    app, _ = served
    status, body, _ = call(app, path, **query)
    assert status == 400, body
    assert message in body["error"]["message"]


def test_a_cursor_of_one_filter_is_refused_for_another(served):
    app, _ = served
    status, body, _ = call(app, "/quality/rejects", limit="1", reason="invalid")
    assert status == 200 and body["next_cursor"]
    status, _, _ = call(app, "/quality/rejects", limit="1", cursor=body["next_cursor"])
    assert status == 400


def test_quality_routes_come_from_the_same_build_and_are_documented(served):
    app, _ = served
    (build,) = (app_lake(app) / "marts" / "builds").iterdir()  # the one export
    for path in ("/quality/files", "/quality/rejects", "/clients", "/sales/daily"):
        status, _, headers = call(app, path)
        assert status == 200 and headers["x-duff-build"] in build.name
    _, doc, _ = call(app, "/openapi.json")
    files = doc["paths"]["/quality/files"]["get"]
    rejects = doc["paths"]["/quality/rejects"]["get"]
    assert [p["name"] for p in files["parameters"]] == ["limit", "cursor"]
    params = {p["name"]: p["schema"] for p in rejects["parameters"]}
    assert list(params) == ["ingest_id", "reason", "column", "limit", "cursor"]
    assert params["reason"]["enum"] == ["missing", "invalid", "duplicate"]
    assert params["column"]["enum"] == ORDER_DATE_AND_REQUIRED
    item = doc["components"]["schemas"]["QualityFile"]["properties"]
    assert list(item["rejected"]["properties"]) == ["missing", "invalid", "duplicate"]
    assert item["ignored_columns"]["type"] == "array"
    assert "column" in doc["components"]["schemas"]["QualityReject"]["properties"]
