"""The partition writer: many dates over many spilled runs, several row groups and files per
partition; what lands must be exactly the valid rows, in file order, with plain types."""

from __future__ import annotations

import datetime as dt
import decimal
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingestion import rules
from ingestion import writers as writers_mod
from tests.integration.ingestion.landing_helpers import HEADER, land_text, row

NAMES = ["Homer", "Marge", " Bart ", "Lisa", "Maggie", "Ned Flanders", "Moe"]
CHANNELS = {"retail": "Retail", "ONLINE": "Online", " b2b ": "B2B"}


def make_rows(n: int, days: int, seed: int) -> tuple[list[str], list[dict]]:
    """CSV lines and, for each valid one, the row expected in the lake (in file order)."""
    rnd = random.Random(seed)
    start = dt.date(2024, 1, 1)
    lines: list[str] = []
    expected: list[dict] = []
    for i in range(1, n + 1):
        day = start + dt.timedelta(days=rnd.randrange(days))
        price = decimal.Decimal(rnd.randrange(0, 100_000)) / 100
        volume = decimal.Decimal(rnd.randrange(1, 5_000)) / 1000
        ccf = rnd.randrange(1, 50)
        channel = rnd.choice(list(CHANNELS))
        name = rnd.choice(NAMES)
        client = rnd.randrange(1, 30)
        bad = i % 37 == 0  # an invalid status: rejected, must not land
        lines.append(
            row(
                order_id=str(i),
                client_id=str(client),
                client_name=name,
                product_id=str(client % 7 + 1),
                product_description=f"Duff {client % 7}",
                product_price=f"{price:.2f}",
                product_ccf=str(ccf),
                product_volume=f"{volume:.3f}",
                point_of_sale_channel=channel,
                status="lost" if bad else rnd.choice(["created", "Delivered", "BROKEN"]),
                order_date=day.isoformat(),
            )
        )
        if not bad:
            expected.append(
                {
                    "order_id": i,
                    "client_id": client,
                    "client_name": name.strip(),
                    "product_id": client % 7 + 1,
                    "product_price": price,
                    "product_ccf": ccf,
                    "product_volume": volume,
                    "point_of_sale_channel": CHANNELS[channel],
                    "order_date": day,
                    "total_amount": price * ccf,
                    "total_liters": volume * ccf,
                    "source_line": i + 1,
                }
            )
    return lines, expected


@pytest.mark.parametrize(
    ("row_group_rows", "max_rows_per_file"),
    [(262_144, 16_000_000), (7, 16_000_000), (7, 20)],
)
def test_many_partitions_over_spilled_runs_land_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row_group_rows: int, max_rows_per_file: int
) -> None:
    # Given 4000 rows over 60 dates in random order, a sort buffer far smaller than the file
    # (many spilled runs, each holding a slice of most dates), small row groups and, in the
    # last case, a new file once one holds 20 rows (several files per partition)
    monkeypatch.setattr(writers_mod, "MAX_ROWS_PER_FILE", max_rows_per_file)
    lines, expected = make_rows(4000, 60, seed=3)
    landed = land_text(
        tmp_path,
        "\n".join([HEADER, *lines]) + "\n",
        block_bytes=64 * 1024,
        buffer_bytes=24 * 1024,
        row_group_rows=row_group_rows,
    )
    m = landed.manifest
    # Then the manifest counts every row, and each date is one partition
    assert (m["rows_in"], m["valid"]) == (4000, len(expected))
    assert m["partitions"] == sorted({r["order_date"].isoformat() for r in expected})
    # And every valid row landed once, with exactly its normalised values and lineage
    got = {r["order_id"]: r for r in landed.valid}
    assert len(got) == len(landed.valid) == len(expected)
    for want in expected:
        have = got[want["order_id"]]
        assert {k: have[k] for k in want} == want
        assert have["pa_date"] == want["order_date"].isoformat()
        assert have["ingest_id"] == m["ingest_id"]
        assert have["source_file"] == m["source_file"]
    # And each partition's files, read in name order, hold its rows in file order
    ingest_id = m["ingest_id"]
    for day in m["partitions"]:
        folder = landed.lake / "raw" / "orders" / f"pa_date={day}"
        files = sorted(folder.iterdir(), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        assert [p.name for p in files] == [f"{ingest_id}-{n}.parquet" for n in range(len(files))]
        lines_in_day = []
        for n, f in enumerate(files):
            meta = pq.ParquetFile(f).metadata
            # A file is closed at the first row group that takes it to the limit
            if n < len(files) - 1:
                assert max_rows_per_file <= meta.num_rows < max_rows_per_file + row_group_rows
            assert all(
                meta.row_group(g).num_rows <= row_group_rows for g in range(meta.num_row_groups)
            )
            table = pq.read_table(f)
            # Readers see the contract's plain types (no dictionaries), as in RAW_SCHEMA
            assert table.schema.equals(rules.RAW_SCHEMA)
            lines_in_day += table.column("source_line").to_pylist()
        want_lines = [r["source_line"] for r in expected if r["order_date"].isoformat() == day]
        assert lines_in_day == want_lines
        if max_rows_per_file == 20:
            assert len(files) == -(-len(want_lines) // 21)  # 3 row groups of 7 per file


def test_a_partition_file_holds_only_its_own_client_names(tmp_path: Path) -> None:
    # Given 3,000 orders, each from another client with a long, barely compressible name,
    # over 30 dates: one sort run holds all 3,000 names, each partition ~100 of them
    rng = random.Random(5)
    lines = [
        row(
            order_id=str(i),
            client_id=str(i),
            client_name=f"{rng.getrandbits(160):040x} client",
            order_date=f"2024-04-{1 + i % 30:02d}",
        )
        for i in range(1, 3001)
    ]
    landed = land_text(tmp_path, "\n".join([HEADER, *lines]) + "\n")
    # Then each partition file is small: its dictionary holds its own ~100 names, not the
    # run's 3,000 (about 60 kB each, compressed), so writing costs the same per row whatever
    # the size of the client list
    files = sorted((landed.lake / "raw" / "orders").rglob("*.parquet"))
    assert len(files) == 30 and landed.manifest["valid"] == 3000
    assert max(f.stat().st_size for f in files) < 16_000
