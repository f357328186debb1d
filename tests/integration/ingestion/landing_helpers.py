"""Helpers for the landing tests: land bytes into a tmp lake and read everything back."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ingestion.lake import LocalLake
from ingestion.land import land
from ingestion.settings import Settings

HEADER = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)


def row(
    order_id: str = "1",
    client_id: str = "10",
    client_name: str = "Homer",
    product_id: str = "3",
    product_description: str = "Duff",
    product_price: str = "1.50",
    product_ccf: str = "2",
    product_volume: str = "0.355",
    point_of_sale_channel: str = "retail",
    status: str = "delivered",
    order_date: str | None = "2024-03-01",
) -> str:
    values = [
        order_id,
        client_id,
        client_name,
        product_id,
        product_description,
        product_price,
        product_ccf,
        product_volume,
        point_of_sale_channel,
        status,
    ]
    if order_date is not None:
        values.append(order_date)
    return ",".join(values)


@dataclass
class Landed:
    manifest: dict[str, Any]
    valid: list[dict[str, Any]]
    rejects: list[dict[str, Any]]
    lake: Path
    source: Path

    def files(self, prefix: str = "") -> list[str]:
        root = self.lake / prefix
        if not root.exists():
            return []
        return sorted(p.relative_to(self.lake).as_posix() for p in root.rglob("*") if p.is_file())


def read_valid(lake: Path) -> list[dict[str, Any]]:
    raw = lake / "raw" / "orders"
    if not raw.exists() or not any(raw.rglob("*.parquet")):
        return []
    dataset = ds.dataset(raw, format="parquet", partitioning="hive")
    rows = dataset.to_table().to_pylist()
    for r in rows:
        r["pa_date"] = str(r["pa_date"])
    return sorted(rows, key=lambda r: (r["ingest_id"], r["source_line"]))


def read_rejects(lake: Path) -> list[dict[str, Any]]:
    files = sorted((lake / "rejects").rglob("*.parquet")) if (lake / "rejects").exists() else []
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return sorted(rows, key=lambda r: (r["ingest_id"], r["source_line"]))


def land_bytes(
    tmp_path: Path,
    data: bytes,
    name: str = "orders.csv",
    *,
    lake: Path | None = None,
    now: dt.datetime | None = None,
    **settings: Any,
) -> Landed:
    """Write ``data`` to ``tmp_path/in/name``, land it into ``lake`` (default tmp_path/lake)."""
    lake = lake or tmp_path / "lake"
    source = tmp_path / "in" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    manifest = land(
        str(source), settings=Settings(lake=str(lake), **settings), lake=LocalLake(lake), now=now
    )
    return Landed(manifest, read_valid(lake), read_rejects(lake), lake, source)


def land_text(tmp_path: Path, text: str, name: str = "orders.csv", **kw: Any) -> Landed:
    return land_bytes(tmp_path, text.encode("utf-8"), name, **kw)


def manifest_on_disk(landed: Landed) -> dict[str, Any]:
    path = landed.lake / "manifests" / f"{landed.manifest['ingest_id']}.json"
    return json.loads(path.read_text())
