"""The sample generator makes realistic, reproducible exports whose bad rows are known.

These tests read the generated CSV with the standard library's csv module and check it with a
small reference reading of CONTRACT.md section 1 written here, independent of ingestion/.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import re
from decimal import Decimal

import pytest

from ingestion import sample

DIGITS = re.compile(r"[0-9]+")
DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]*))?")


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def fault_of(row: dict[str, str]) -> tuple[str, str] | None:
    """The first fault of a row by the contract's column order, or None when it is valid."""
    order = [*sample.COLUMNS[:-1], "order_date"]
    values = {k: v.strip() for k, v in row.items()}
    for col in order:
        if col in values and values[col] == "":
            return "missing", col
    for col in order:
        if col not in values:
            continue
        v = values[col]
        if col in ("order_id", "client_id", "product_id"):
            ok = bool(DIGITS.fullmatch(v)) and 0 < int(v) < 2**63
        elif col == "product_ccf":
            ok = bool(DIGITS.fullmatch(v)) and 0 < int(v) < 2**31
        elif col in ("product_price", "product_volume"):
            m = DECIMAL.fullmatch(v)
            ints, decs = (7, 3) if col == "product_volume" else (10, 2)
            ok = bool(m) and len(m.group(1).lstrip("0")) <= ints and len(m.group(2) or "") <= decs
            ok = ok and (Decimal(v) > 0 if col == "product_volume" else True)
        elif col == "point_of_sale_channel":
            ok = v.lower() in ("retail", "online", "b2b")
        elif col == "status":
            ok = v.lower() in ("created", "delivered", "broken")
        elif col == "order_date":
            try:
                ok = dt.date.fromisoformat(v).isoformat() == v
            except ValueError:
                ok = False
        else:
            ok = True
        if not ok:
            return "invalid", col
    return None


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    # Given two runs with seed 3 and one with seed 4
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    sample.write_csv(a, 5_000, seed=3, bad_share=0.02, dup_share=0.01)
    sample.write_csv(b, 5_000, seed=3, bad_share=0.02, dup_share=0.01)
    sample.write_csv(c, 5_000, seed=4, bad_share=0.02, dup_share=0.01)
    # Then the seed alone decides the content
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_clean_file_is_all_valid_with_realistic_reference_data(tmp_path):
    # Given a clean export of 20,000 rows over one year
    out = tmp_path / "orders.csv"
    stats = sample.write_csv(
        out, 20_000, seed=11, start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31)
    )
    header, rows = read(out)
    # Then it has the contract's columns and every row is valid
    assert header == list(sample.COLUMNS)
    assert len(rows) == stats.rows == 20_000
    assert stats.truth == []
    records = [dict(zip(header, r, strict=True)) for r in rows]
    assert [r for r in records if fault_of(r)] == []
    # And order ids are unique and dates fall in the range
    assert len({int(r["order_id"]) for r in records}) == 20_000
    dates = {r["order_date"] for r in records}
    assert min(dates) >= "2024-01-01" and max(dates) <= "2024-12-31"
    # And ~40 products each keep one price, volume and description
    per_product = collections.defaultdict(set)
    for r in records:
        per_product[r["product_id"]].add(
            (r["product_description"], r["product_price"], r["product_volume"])
        )
    assert 35 <= len(per_product) <= 45
    assert all(len(v) == 1 for v in per_product.values())
    # And a few hundred clients, two client ids sharing one name, ids stable per name otherwise
    ids_by_name = collections.defaultdict(set)
    for r in records:
        ids_by_name[r["client_name"]].add(r["client_id"])
    assert 200 <= sum(len(v) for v in ids_by_name.values()) <= 300
    assert sorted(len(v) for v in ids_by_name.values())[-1] == 2
    assert sum(1 for v in ids_by_name.values() if len(v) == 2) == 1
    # And channels and statuses come in believable shares (spelling noise included)
    channels = collections.Counter(r["point_of_sale_channel"].strip().lower() for r in records)
    statuses = collections.Counter(r["status"].strip().lower() for r in records)
    assert 0.45 < channels["retail"] / 20_000 < 0.60
    assert 0.10 < channels["b2b"] / 20_000 < 0.25
    assert 0.70 < statuses["delivered"] / 20_000 < 0.85
    assert 0 < statuses["broken"] / 20_000 < 0.06
    # And the export's case/space noise is present, so ingestion's normalising is exercised
    assert {r["point_of_sale_channel"] for r in records} > {"Retail", "Online", "B2B"}


def test_truth_names_exactly_the_rows_the_contract_rejects(tmp_path):
    # Given an export with 3% bad rows and 2% re-sent order ids
    out = tmp_path / "orders.csv"
    stats = sample.write_csv(out, 30_000, seed=5, bad_share=0.03, dup_share=0.02)
    header, rows = read(out)
    assert len(rows) == 30_000
    # When the rows are judged by the reference reading, first valid order id winning
    expected = []
    seen_ids = set()
    for line, values in enumerate(rows, start=2):
        record = dict(zip(header, values, strict=True))
        fault = fault_of(record)
        if fault:
            expected.append((line, *fault))
        elif int(record["order_id"]) in seen_ids:
            expected.append((line, "duplicate", "order_id"))
        else:
            seen_ids.add(int(record["order_id"]))
    # Then the generator's truth is that list, row for row, and its counts add up
    assert stats.truth == expected
    assert stats.bad + stats.duplicates == len(expected)
    assert 0.025 < stats.bad / 30_000 < 0.035
    assert 0.015 < stats.duplicates / 30_000 < 0.025
    # And every kind of fault appears, with ids re-sent in more than one spelling
    assert {(r, c) for _, r, c in expected} >= {(f[2], f[0]) for f in sample.FAULTS}
    dup_lines = {line for line, r, _ in expected if r == "duplicate"}
    spellings = {rows[line - 2][0] != rows[line - 2][0].strip() for line in dup_lines}
    assert spellings == {True, False}


def test_without_order_date_column(tmp_path):
    # Given an export without order_date and with bad rows
    out = tmp_path / "orders.csv"
    stats = sample.write_csv(out, 3_000, seed=2, bad_share=0.05, with_order_date=False)
    header, rows = read(out)
    # Then the column is absent and no fault points at it
    assert "order_date" not in header and len(header) == 10
    assert all(len(r) == 10 for r in rows)
    assert all(c != "order_date" for _, _, c in stats.truth)


def test_truth_file_and_cli(tmp_path, capsys):
    # When the CLI writes a file and its truth
    out, truth = tmp_path / "o.csv", tmp_path / "t.csv"
    assert (
        sample.main(
            ["--rows", "2000", "--bad-share", "0.1", "--out", str(out), "--truth", str(truth)]
        )
        == 0
    )
    # Then the truth file lists one rejected line per injected fault
    _, t_rows = read(truth)
    _, rows = read(out)
    assert len(rows) == 2000
    assert 150 < len(t_rows) < 250
    assert all(r[1] in ("missing", "invalid") for r in t_rows)
    assert "wrote 2000 rows" in capsys.readouterr().err


def test_rejects_impossible_arguments():
    with pytest.raises(ValueError):
        list(sample.generate(10, bad_share=0.8, dup_share=0.3))
    with pytest.raises(ValueError):
        list(sample.generate(10, start=dt.date(2024, 2, 1), end=dt.date(2024, 1, 1)))
