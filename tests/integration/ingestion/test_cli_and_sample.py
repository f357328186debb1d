"""The CLI (python -m ingestion) and a generated sample checked row for row against its truth."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from ingestion import sample
from ingestion.land import land
from ingestion.settings import Settings
from tests.integration.ingestion.landing_helpers import HEADER, read_rejects, read_valid, row

REPO = Path(__file__).resolve().parents[3]


def cli(lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUFF_LAKE": str(lake), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ingestion", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def test_cli_json_prints_only_the_manifest_and_exit_codes(tmp_path: Path) -> None:
    # Given a good file and a file without required columns
    good = tmp_path / "good.csv"
    good.write_text("\n".join([HEADER, row(), row(order_id="2", status="??")]) + "\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    lake = tmp_path / "lake"
    # When the CLI lands them with --json
    ok = cli(lake, str(good), "--json")
    again = cli(lake, str(good), "--json")
    refused = cli(lake, str(bad), "--json")
    # Then stdout holds exactly the manifest; logs are JSON lines on stderr
    m = json.loads(ok.stdout)
    assert ok.returncode == 0
    assert (m["status"], m["rows_in"], m["valid"], m["rejected"]["invalid"]) == (
        "landed",
        2,
        1,
        1,
    )
    assert m == json.loads((lake / "manifests" / f"{m['ingest_id']}.json").read_text())
    log_lines = [json.loads(line) for line in ok.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("ingest_id") == m["ingest_id"] for line in log_lines)
    assert again.returncode == 0
    assert json.loads(again.stdout)["status"] == "skipped"
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["status"] == "quarantined"
    assert "quarantined" in refused.stderr and "lacks required" in refused.stderr


def test_cli_summary_line_and_missing_file(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("\n".join([HEADER, row(), row(order_id="1")]) + "\n")
    out = cli(tmp_path / "lake", str(good))
    assert out.returncode == 0
    first = out.stdout.splitlines()[0]
    assert first.startswith("landed ")
    assert "2 rows in, 1 valid" in first and "1 duplicate" in first and "2024-03-01" in first
    missing = cli(tmp_path / "lake", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1
    assert "no such file" in missing.stderr


def test_generated_sample_rejects_exactly_the_truth(tmp_path: Path) -> None:
    # Given a sample export with known bad rows and re-sent orders
    source = tmp_path / "orders.csv"
    stats = sample.write_csv(source, 20_000, seed=11, bad_share=0.03, dup_share=0.01)
    truth = tmp_path / "truth.csv"
    sample.write_truth(truth, stats)
    # When it lands
    m = land(str(source), settings=Settings(lake=str(tmp_path / "lake"), block_bytes=256 * 1024))
    # Then every row is accounted for, and the rejects are the truth, row for row
    assert m["rows_in"] == 20_000
    assert m["rows_in"] == m["valid"] + sum(m["rejected"].values())
    assert m["rejected"]["duplicate"] == stats.duplicates
    rejects = read_rejects(tmp_path / "lake")
    with truth.open() as f:
        expected = sorted(
            (int(r["source_line"]), r["reason"], r["column"]) for r in csv.DictReader(f)
        )
    got = sorted((r["source_line"], r["reason"], r["column"]) for r in rejects)
    assert got == expected
    valid = read_valid(tmp_path / "lake")
    assert len(valid) == m["valid"]
    assert len({r["order_id"] for r in valid}) == len(valid)
