"""The CLI (python -m ingestion) and a generated sample checked row for row against its truth."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion import __main__ as cli_mod
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
    q = json.loads(refused.stdout)
    assert q["status"] == "quarantined"
    # And each landing ends in one outcome line: a quarantine is one warning with its error
    outcomes = {"landed", "quarantined", "skipped"}

    def outcome_lines(run) -> list[dict]:
        lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
        return [line for line in lines if line["message"].split(":")[0] in outcomes]

    (landed,) = outcome_lines(ok)
    assert (landed["level"], landed["message"], landed["valid"]) == ("INFO", "landed", 1)
    assert "error" not in landed
    (skipped,) = outcome_lines(again)
    assert (skipped["outcome"], skipped["as"]) == ("skipped", m["ingest_id"])
    (quarantined,) = outcome_lines(refused)
    assert (quarantined["level"], quarantined["message"]) == ("WARNING", "quarantined")
    assert (quarantined["ingest_id"], quarantined["error"]) == (q["ingest_id"], q["error"])
    assert "lacks required" in q["error"]


def test_cli_summary_for_people(tmp_path: Path) -> None:
    # Given a file with one duplicate row and an ignored column
    good = tmp_path / "good.csv"
    good.write_text(
        "\n".join(
            [HEADER + ",promo", row() + ",x", row(order_id="1", order_date="2024-03-09") + ",y"]
        )
        + "\n"
    )
    # When a person lands it (no --json)
    out = cli(tmp_path / "lake", str(good))
    # Then stdout is a short summary: counts by reason, the partitions, where it landed
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"landed {good} as ")
    assert "2 in: 1 valid, 1 rejected (duplicate 1)" in lines[1]
    assert "1 partition: pa_date=2024-03-01" in lines[2]
    assert str(tmp_path / "lake" / "raw" / "orders") in out.stdout
    assert "ignored   1 column: promo" in out.stdout
    assert "{" not in out.stdout  # no manifest dump
    # And a second delivery of it is skipped, exit 0
    again = cli(tmp_path / "lake", str(good))
    assert again.returncode == 0 and again.stdout.startswith(f"skipped {good}: landed before")


def test_a_resent_quarantined_file_is_skipped_with_its_error_and_exit_2(tmp_path: Path) -> None:
    # Given a file that was quarantined
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    lake = tmp_path / "lake"
    first = cli(lake, str(bad), "--json")
    # When the same file is delivered again
    again = cli(lake, str(bad), "--json")
    people = cli(lake, str(bad))
    # Then it is skipped, says it was quarantined, keeps the original error, and exits 2
    m1, m2 = json.loads(first.stdout), json.loads(again.stdout)
    assert (first.returncode, again.returncode, people.returncode) == (2, 2, 2)
    assert (m2["status"], m2["previous_status"]) == ("skipped", "quarantined")
    assert m2["error"] == m1["error"] and "lacks required" in m2["error"]
    assert m2["ingest_id"] == m1["ingest_id"]
    assert people.stdout.startswith(f"skipped {bad}: quarantined before as {m1['ingest_id']}")
    assert len(list((lake / "manifests").iterdir())) == 1


def test_unreadable_inputs_and_usage_errors_exit_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a directory, a FIFO (nothing will ever write to it), a missing file and a file
    # name that looks like an option
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    lake = tmp_path / "lake"
    cases = {
        "directory": ([str(tmp_path)], "is a directory, not a regular file"),
        "fifo": ([str(fifo)], "is a FIFO (named pipe), not a regular file"),
        "missing": ([str(tmp_path / "nope.csv")], "no such file"),
        "option-like": (["-rf.csv"], "goes after '--'"),
        "no source": ([], "required: source"),
    }
    monkeypatch.setenv("DUFF_LAKE", str(lake))
    monkeypatch.setattr(cli_mod, "_configure_logging", lambda *a: None)  # keep pytest's
    monkeypatch.setattr(sys, "argv", ["python -m ingestion"])
    for name, (args, needle) in cases.items():
        # When the CLI is given it
        try:
            code = cli_mod.main(args)
        except SystemExit as exc:  # argparse
            code = exc.code
        err = capsys.readouterr().err
        # Then it exits 1 (never 2, "quarantined") with one clear line and no traceback
        assert code == 1, name
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0], (name, err)
        assert "Traceback" not in err, name
    # And nothing was written: no staging, no claim, no quarantine
    assert not lake.exists() or not [p for p in lake.rglob("*") if p.is_file()]


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


def test_json_log_lines_only_off_a_terminal_or_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given stderr is a terminal, then not, then a terminal with --log-json
    import logging

    from ingestion.metrics import JsonFormatter

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    class Tty(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    formatters, written = [], []
    land_log = logging.getLogger("ingestion.land")
    try:
        for tty, log_json in [(True, False), (False, False), (True, True)]:
            stderr = Tty(tty)
            monkeypatch.setattr(sys, "stderr", stderr)
            cli_mod._configure_logging(Settings(), log_json)
            formatters.append(isinstance(root.handlers[-1].formatter, JsonFormatter))
            # When a landing warns, then ends in quarantine (its outcome line)
            land_log.warning("taking over a stale claim")
            land_log.warning("quarantined", extra={"outcome": "quarantined", "error": "e"})
            lines = stderr.getvalue().splitlines()
            written.append([json.loads(x)["message"] if log_json or not tty else x for x in lines])
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    # Then a person at a terminal gets plain warnings; a pipe or --log-json gets JSON lines
    assert formatters == [False, True, True]
    # And at a terminal the outcome line is left to the summary printed after it
    assert written == [
        ["WARNING: taking over a stale claim"],
        ["taking over a stale claim", "quarantined"],
        ["taking over a stale claim", "quarantined"],
    ]
