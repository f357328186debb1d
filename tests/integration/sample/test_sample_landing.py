"""The generator's output is accepted by ingestion row for row as the contract says.

Black-box: the CLI lands a generated file into a temporary lake; the rejects it stores must be
exactly the generator's truth (line, reason, column), and every other row must land with the
values the file holds.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow.dataset as ds

from ingestion import sample

ROOT = Path(__file__).resolve().parents[3]


def land(path: Path, lake: Path) -> dict:
    env = {**os.environ, "DUFF_LAKE": str(lake)}
    proc = subprocess.run(
        [sys.executable, "-m", "ingestion", str(path), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_injected_faults_are_exactly_the_rejects(tmp_path):
    # Given a generated export with 2% bad rows and 1% re-sent order ids, and its truth
    csv_path = tmp_path / "in" / "orders 2024.csv"
    stats = sample.write_csv(csv_path, 40_000, seed=21, bad_share=0.02, dup_share=0.01)
    expected = sorted(stats.truth)
    assert len(expected) > 1000

    # When ingestion lands it
    manifest = land(csv_path, tmp_path / "lake")

    # Then the counts conserve rows and match the truth by reason
    assert manifest["status"] == "landed"
    assert manifest["rows_in"] == 40_000
    by_reason = {"missing": 0, "invalid": 0, "duplicate": 0}
    for _, reason, _ in expected:
        by_reason[reason] += 1
    assert manifest["rejected"] == by_reason
    assert manifest["valid"] == 40_000 - len(expected)

    # And the stored rejects are the truth, row for row
    rejects = ds.dataset(tmp_path / "lake" / "rejects", format="parquet").to_table()
    got = sorted(
        zip(
            rejects["source_line"].to_pylist(),
            rejects["reason"].to_pylist(),
            rejects["column"].to_pylist(),
            strict=True,
        )
    )
    assert got == expected

    # And every valid row landed once, with the file's values normalised
    raw = ds.dataset(
        tmp_path / "lake" / "raw" / "orders", format="parquet", partitioning="hive"
    ).to_table()
    assert raw.num_rows == manifest["valid"]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    rejected_lines = {line for line, _, _ in expected}
    valid_rows = {
        int(r["order_id"]): r for i, r in enumerate(rows, start=2) if i not in rejected_lines
    }
    landed = {r["order_id"]: r for r in raw.to_pylist()}
    assert landed.keys() == valid_rows.keys()
    for order_id in list(valid_rows)[:: max(1, len(valid_rows) // 500)]:
        src, got_row = valid_rows[order_id], landed[order_id]
        assert got_row["client_name"] == src["client_name"].strip()
        assert got_row["product_price"] == Decimal(src["product_price"])
        assert got_row["product_ccf"] == int(src["product_ccf"])
        assert got_row["total_amount"] == Decimal(src["product_price"]) * int(src["product_ccf"])
        assert got_row["total_liters"] == Decimal(src["product_volume"]) * int(src["product_ccf"])
        assert got_row["status"] == src["status"].strip().lower()
        assert got_row["point_of_sale_channel"] in ("Retail", "Online", "B2B")
        assert (
            got_row["point_of_sale_channel"].lower() == src["point_of_sale_channel"].strip().lower()
        )
        assert str(got_row["pa_date"]) == src["order_date"]
    # And the manifest names the partitions the rows landed in
    assert manifest["partitions"] == sorted({str(d) for d in raw["pa_date"].to_pylist()})
