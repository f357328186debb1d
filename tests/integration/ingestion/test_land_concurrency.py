"""Two deliveries of one object at once land it once; claims of dead or stale runs are taken
over; a live claim makes a second delivery wait, then fail as retryable ``LandingBusy``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ingestion.lake import LocalLake
from ingestion.land import LandingBusy, claim_prefix, land, state_key
from ingestion.settings import Settings
from tests.integration.ingestion.landing_helpers import HEADER, read_valid, row


def orders_file(path: Path, n: int) -> Path:
    lines = [HEADER] + [
        row(order_id=str(i), order_date=f"2024-05-{1 + i % 3:02d}") for i in range(1, n + 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def claim_dir(lake: Path, source: Path) -> Path:
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    return lake / claim_prefix(state_key(str(source.resolve()), sha))


def plant_claim(lake: Path, source: Path, holder: dict, age_seconds: float = 0.0) -> Path:
    """A claim on ``source`` left by some other run, ``age_seconds`` old."""
    directory = claim_dir(lake, source)
    directory.mkdir(parents=True)
    path = directory / "0000000000.json"
    path.write_text(json.dumps({**holder, "ingest_id": "20240101T000000000000Z-other"}))
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path


def raw_files(lake: Path) -> list[Path]:
    return sorted((lake / "raw").rglob("*.parquet")) if (lake / "raw").exists() else []


def test_two_threads_landing_one_object_at_once_land_it_once(tmp_path: Path) -> None:
    # Given one file, and a lake that holds both deliveries at the "landed before?" check until
    # both have reached it (the widest race, made deterministic)
    source = orders_file(tmp_path / "a.csv", 60)
    barrier = threading.Barrier(2, timeout=5)

    class RacingLake(LocalLake):
        def read_bytes(self, key):
            if key.startswith("_state/sources/"):
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return super().read_bytes(key)

    lake = tmp_path / "lake"
    results: list[dict] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            results.append(
                land(str(source), settings=Settings(lake=str(lake)), lake=RacingLake(lake))
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    # When two threads land it at the same moment
    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # Then one landed it and the other reported skipped, pointing at that landing
    assert errors == []
    assert sorted(r["status"] for r in results) == ["landed", "skipped"]
    assert results[0]["ingest_id"] == results[1]["ingest_id"]
    # And the rows are there once: one manifest, 3 partition files, 60 rows, no claim left
    assert len(list((lake / "manifests").glob("*.json"))) == 1
    assert len(raw_files(lake)) == 3
    assert sorted(r["order_id"] for r in read_valid(lake)) == list(range(1, 61))
    assert not claim_dir(lake, source).exists()


def test_two_processes_landing_one_object_land_it_once(tmp_path: Path) -> None:
    # Given one file and two processes started together to land it
    source = orders_file(tmp_path / "a.csv", 40)
    lake = tmp_path / "lake"
    script = (
        "import json, sys\n"
        "from ingestion.land import land\n"
        "from ingestion.settings import Settings\n"
        "m = land(sys.argv[1], settings=Settings(lake=sys.argv[2]))\n"
        "print(json.dumps(m))\n"
    )
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    # When both run
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(source), str(lake)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    # Then both succeed; the rows landed once (one landed, one skipped, whichever order)
    assert [p.returncode for p in procs] == [0, 0]
    statuses = sorted(json.loads(out)["status"] for out in outputs)
    assert statuses == ["landed", "skipped"]
    assert len(list((lake / "manifests").glob("*.json"))) == 1
    assert sorted(r["order_id"] for r in read_valid(lake)) == list(range(1, 41))


def test_a_live_claim_makes_the_second_delivery_fail_as_busy_without_writing(
    tmp_path: Path,
) -> None:
    # Given a claim on the file held by a live run (this very process)
    from ingestion.claims import _holder

    source = orders_file(tmp_path / "a.csv", 5)
    lake = tmp_path / "lake"
    plant_claim(lake, source, _holder())
    # When the file is delivered and the holder does not finish within the wait
    started = time.monotonic()
    with pytest.raises(LandingBusy, match="being landed by another run"):
        land(str(source), settings=Settings(lake=str(lake), claim_wait_seconds=1))
    # Then it waited about the bound, wrote nothing, and left the holder's claim alone
    assert 1 <= time.monotonic() - started < 10
    assert raw_files(lake) == []
    assert not (lake / "manifests").exists()
    assert [p.name for p in claim_dir(lake, source).iterdir()] == ["0000000000.json"]


def test_claim_of_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    # Given a claim left by a process of this machine that has exited (a crash)
    from ingestion.claims import _boot_id, _process_start

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    assert _process_start(dead_pid) is None
    source = orders_file(tmp_path / "a.csv", 7)
    lake = tmp_path / "lake"
    plant_claim(lake, source, {"boot_id": _boot_id(), "pid": dead_pid, "process_started": "1"})
    # When the file is delivered again, with no patience for a live holder
    m = land(str(source), settings=Settings(lake=str(lake), claim_wait_seconds=0))
    # Then it lands, and no claim remains
    assert m["status"] == "landed"
    assert m["valid"] == 7
    assert len(read_valid(lake)) == 7
    assert not claim_dir(lake, source).exists()


@pytest.mark.parametrize(("age", "lands"), [(120.0, True), (5.0, False)])
def test_claim_from_another_machine_is_taken_over_only_when_older_than_the_ttl(
    tmp_path: Path, age: float, lands: bool
) -> None:
    # Given a claim written by a run on another machine (liveness unknowable), `age` s old
    source = orders_file(tmp_path / "a.csv", 4)
    lake = tmp_path / "lake"
    plant_claim(lake, source, {"boot_id": "another-kernel", "pid": 1, "process_started": "1"}, age)
    settings = Settings(lake=str(lake), claim_ttl_seconds=60, claim_wait_seconds=0)
    # When the file is delivered
    if lands:
        # Then a claim older than the TTL is taken over and the file lands
        assert land(str(source), settings=settings)["status"] == "landed"
        assert len(read_valid(lake)) == 4
    else:
        # Then a younger one is respected: busy, nothing written
        with pytest.raises(LandingBusy):
            land(str(source), settings=settings)
        assert raw_files(lake) == []


def test_failed_landing_releases_its_claim_so_the_retry_lands_at_once(
    tmp_path: Path, monkeypatch
) -> None:
    # Given a landing that fails while staging
    source = orders_file(tmp_path / "a.csv", 6)
    lake = tmp_path / "lake"
    real = LocalLake.open_write

    def failing(self, key, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(LocalLake, "open_write", failing)
    with pytest.raises(OSError, match="disk full"):
        land(str(source), settings=Settings(lake=str(lake)))
    monkeypatch.setattr(LocalLake, "open_write", real)
    # Then its claim is gone
    assert not any(claim_dir(lake, source).glob("*.json"))
    # When the retry comes, even with no patience at all, it lands
    m = land(str(source), settings=Settings(lake=str(lake), claim_wait_seconds=0))
    assert m["status"] == "landed"
    assert len(read_valid(lake)) == 6
