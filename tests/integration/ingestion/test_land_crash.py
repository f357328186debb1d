"""Atomic landing: crashes leave no half-state, the next run recovers; concurrent files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from ingestion.lake import LocalLake
from ingestion.land import land
from ingestion.settings import Settings
from tests.integration.ingestion.landing_helpers import HEADER, read_valid, row

REPO = Path(__file__).resolve().parents[3]


def orders_file(path: Path, n: int, first_id: int = 1, days: int = 5) -> Path:
    lines = [HEADER]
    for i in range(first_id, first_id + n):
        lines.append(row(order_id=str(i), order_date=f"2024-03-{1 + i % days:02d}"))
    path.write_text("\n".join(lines) + "\n")
    return path


def run_and_kill(lake: Path, source: Path, patch: str) -> int:
    """Land ``source`` in a child process that dies (os._exit, like a SIGKILL) where
    ``patch`` says; returns the child's exit code."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import ingestion.land as land_mod
        from ingestion.lake import LocalLake
        from ingestion.settings import Settings
        {patch}
        land_mod.land({str(source)!r}, settings=Settings(lake={str(lake)!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], env=env, check=False).returncode


def raw_files(lake: Path) -> list[str]:
    raw = lake / "raw"
    return sorted(p.name for p in raw.rglob("*") if p.is_file()) if raw.exists() else []


def test_kill_between_staging_and_publish_leaves_nothing_visible(tmp_path: Path) -> None:
    # Given a run killed after staging every file but before publishing
    lake, source = tmp_path / "lake", orders_file(tmp_path / "a.csv", 50)
    code = run_and_kill(lake, source, "land_mod.publish = lambda *a, **k: os._exit(137)")
    assert code == 137
    # Then readers see nothing: no raw files, no manifest; only staging outside raw/
    assert raw_files(lake) == []
    assert not (lake / "manifests").exists()
    assert any((lake / "_staging").iterdir())
    # When the same file is landed again
    m = land(str(source), settings=Settings(lake=str(lake)))
    # Then it lands whole, and the abandoned staging is gone
    assert m["status"] == "landed"
    assert m["valid"] == 50
    assert len(read_valid(lake)) == 50
    assert list((lake / "_staging").iterdir()) == []


def test_kill_in_the_middle_of_publish_is_rolled_forward(tmp_path: Path) -> None:
    # Given a run killed after moving 2 of its 5 partition files into raw/
    lake, source = tmp_path / "lake", orders_file(tmp_path / "a.csv", 50, days=5)
    patch = """
        moved = []
        real_move = LocalLake.move
        def move(self, src, dst):
            if len(moved) == 2:
                os._exit(137)
            real_move(self, src, dst)
            moved.append(dst)
        LocalLake.move = move
    """
    code = run_and_kill(lake, source, textwrap.dedent(patch).replace("\n", "\n        "))
    assert code == 137
    # Then only whole files are visible, none half-written, no staging file inside raw/
    assert len(raw_files(lake)) == 2
    assert all(name.endswith(".parquet") and not name.startswith(".") for name in raw_files(lake))
    assert not (lake / "manifests").exists()
    # When the next run starts (here: a different file)
    other = orders_file(tmp_path / "b.csv", 10, first_id=1000)
    m_other = land(str(other), settings=Settings(lake=str(lake)))
    # Then it finished the interrupted publication first: both files are complete
    assert m_other["status"] == "landed"
    manifests = sorted((lake / "manifests").glob("*.json"))
    assert len(manifests) == 2
    assert len(read_valid(lake)) == 60
    assert list((lake / "_staging").iterdir()) == []
    # And delivering the first file again is a skip, not a second copy
    again = land(str(source), settings=Settings(lake=str(lake)))
    assert again["status"] == "skipped"
    assert len(read_valid(lake)) == 60


def test_rerun_of_the_crashed_file_reports_landed(tmp_path: Path) -> None:
    # Given a run of a file killed after its first move
    lake, source = tmp_path / "lake", orders_file(tmp_path / "a.csv", 30, days=3)
    patch = """
        real_move = LocalLake.move
        def move(self, src, dst):
            real_move(self, src, dst)
            os._exit(137)
        LocalLake.move = move
    """
    assert run_and_kill(lake, source, textwrap.dedent(patch).replace("\n", "\n        ")) == 137
    # When the same file is delivered again
    m = land(str(source), settings=Settings(lake=str(lake)))
    # Then the interrupted landing is finished and reported as landed, once
    assert m["status"] == "landed"
    assert m["valid"] == 30
    assert len(read_valid(lake)) == 30
    assert len(list((lake / "manifests").glob("*.json"))) == 1


def test_failure_while_staging_cleans_up(tmp_path: Path, monkeypatch) -> None:
    # Given a lake whose writes fail half-way through staging
    lake_dir, source = tmp_path / "lake", orders_file(tmp_path / "a.csv", 20, days=4)
    lake = LocalLake(lake_dir)
    calls = []
    real = LocalLake.open_write

    def failing(self, key, **kw):
        calls.append(key)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, key, **kw)

    monkeypatch.setattr(LocalLake, "open_write", failing)
    # When landing fails
    try:
        land(str(source), settings=Settings(lake=str(lake_dir)), lake=lake)
    except OSError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("the failure was swallowed")
    monkeypatch.setattr(LocalLake, "open_write", real)
    # Then nothing is visible and no staging is left
    assert raw_files(lake_dir) == []
    assert not list((lake_dir / "_staging").glob("*"))
    # And the file lands on the next try
    assert land(str(source), settings=Settings(lake=str(lake_dir)))["valid"] == 20


def test_two_files_landing_at_once_do_not_collide(tmp_path: Path) -> None:
    # Given two different files with rows on the same dates
    lake = tmp_path / "lake"
    a = orders_file(tmp_path / "a.csv", 400, first_id=1, days=3)
    b = orders_file(tmp_path / "b.csv", 300, first_id=10_000, days=3)
    results: dict[str, dict] = {}

    def go(path: Path) -> None:
        results[path.name] = land(str(path), settings=Settings(lake=str(lake)))

    # When they land concurrently
    threads = [threading.Thread(target=go, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then both landed whole, each in its own files in the shared partitions
    assert {m["status"] for m in results.values()} == {"landed"}
    rows = read_valid(lake)
    assert len(rows) == 700
    names = raw_files(lake)
    assert len(names) == 6
    for m in results.values():
        assert sum(name.startswith(m["ingest_id"]) for name in names) == 3
