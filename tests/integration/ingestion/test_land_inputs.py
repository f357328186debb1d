"""Only regular files are landed, read through one handle (CONTRACT.md section 2)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ingestion.errors import Unreadable
from ingestion.lake import LocalLake
from ingestion.land import land
from ingestion.settings import Settings
from tests.integration.ingestion.landing_helpers import HEADER, land_text, row


def test_a_symlink_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # Given a private file and a symlink to it
    target = tmp_path / "secret.csv"
    target.write_text(HEADER + "\n" + row() + "\n")
    target.chmod(0o600)
    link = tmp_path / "orders.csv"
    link.symlink_to(target)
    lake = tmp_path / "lake"
    # When the symlink is landed
    with pytest.raises(Unreadable, match="is a symbolic link"):
        land(str(link), settings=Settings(lake=str(lake)), lake=LocalLake(lake))
    # Then nothing of the target was copied anywhere in the lake
    assert not [p for p in lake.rglob("*") if p.is_file()]


def test_lake_files_are_never_wider_than_the_source(tmp_path: Path) -> None:
    # Given a readable file, a 0600 file that lands and a 0600 file that is quarantined
    good = land_text(tmp_path, "\n".join([HEADER, row(), row(order_id="x")]) + "\n")
    src = tmp_path / "private.csv"
    src.write_text("\n".join([HEADER, row(order_id="7"), row(order_id="y")]) + "\n")
    src.chmod(0o600)
    bad = tmp_path / "private-bad.csv"
    bad.write_text("not,a,duff,file\n")
    bad.chmod(0o600)
    lake = tmp_path / "lake"
    m = land(str(src), settings=Settings(lake=str(lake)), lake=LocalLake(lake))
    q = land(str(bad), settings=Settings(lake=str(lake)), lake=LocalLake(lake))
    # Then its Parquet, its rejects and the quarantined copy are at most 0600
    mine = [p for p in lake.rglob("*") if p.is_file() and m["ingest_id"] in p.name]
    kept = lake / "quarantine" / q["ingest_id"] / "private-bad.csv"
    assert len(mine) == 3  # raw partition, rejects, manifest
    for path in [p for p in mine if p.suffix == ".parquet"] + [kept]:
        assert stat.S_IMODE(path.stat().st_mode) & ~0o600 == 0, path
    # And a readable source's files keep the lake's own mode
    assert stat.S_IMODE(
        next((lake / "raw").rglob(f"{good.manifest['ingest_id']}*")).stat().st_mode
    ) == (LocalLake(lake).file_mode)


def test_what_the_manifest_quotes_from_the_file_is_capped(tmp_path: Path) -> None:
    # Given a header whose 200,000-character column name appears twice
    huge = "x" * 200_000
    landed = land_text(tmp_path, f"{HEADER},{huge},{huge}\n{row()},1,2\n")
    # Then the file is quarantined with an error of readable length, naming the column
    m = landed.manifest
    assert m["status"] == "quarantined"
    assert "names a column twice" in m["error"] and "200,000 characters" in m["error"]
    assert len(m["error"]) <= 500
    # And ignored columns' names are capped too, keeping their start, length and end, so two
    # long names that differ only in their last character stay apart
    ok = land_text(tmp_path, f"{HEADER},{huge}a,{huge}b\n{row()},1,2\n", "ok.csv")
    assert ok.manifest["status"] == "landed"
    first, second = ok.manifest["ignored_columns"]
    assert len(first) <= 100 and len(second) <= 100 and first != second
    assert first.startswith("xxxx") and "200,001 characters" in first and first.endswith("xa")
    assert second.endswith("xb")


def test_a_path_names_the_file_the_file_system_finds_there(tmp_path: Path, monkeypatch) -> None:
    # Given a folder `x` with a symlink `link` to `deep/sub`, an orders file `deep/real.csv`,
    # and another file `x/real.csv` where `link/../real.csv` would be read as text
    x = tmp_path / "x"
    (x / "deep" / "sub").mkdir(parents=True)
    (x / "deep" / "real.csv").write_text("\n".join([HEADER, row(), row(order_id="2")]) + "\n")
    (x / "real.csv").write_text("not,a,duff,file\n")
    (x / "link").symlink_to("deep/sub")
    monkeypatch.chdir(x)
    lake = tmp_path / "lake"

    def landed(path: str) -> dict:
        return land(path, settings=Settings(lake=str(lake)), lake=LocalLake(lake))

    # When `link/../real.csv` is landed (what `cat link/../real.csv` shows: deep/real.csv)
    first = landed("link/../real.csv")
    # Then that file lands, named by its physical path
    assert (first["status"], first["valid"]) == ("landed", 2)
    assert first["source_file"] == str((x / "deep" / "real.csv").resolve())
    # And the same file by another folder path is the same source: skipped
    assert landed(str(x / "deep" / "real.csv"))["status"] == "skipped"
    # And a trailing slash on a file, or `~` the shell never expanded, is no file to read
    for path, why in [("deep/real.csv/", "Not a directory"), ("~/real.csv", "no such file")]:
        with pytest.raises(Unreadable, match=why):
            landed(path)


def test_a_backslash_is_part_of_the_kept_file_name(tmp_path: Path) -> None:
    # Given a refused file whose name holds a backslash (a character on POSIX and in S3 keys)
    src = tmp_path / "back\\slash.csv"
    src.write_text("not,a,duff,file\n")
    lake = tmp_path / "lake"
    # When it is landed, Then its copy keeps the whole name
    q = land(str(src), settings=Settings(lake=str(lake)), lake=LocalLake(lake))
    assert q["status"] == "quarantined"
    kept = lake / "quarantine" / q["ingest_id"] / "back\\slash.csv"
    assert kept.read_bytes() == src.read_bytes()


def test_a_path_is_named_without_the_working_folder_when_it_needs_none(tmp_path: Path, monkeypatch):
    # Given a working folder that was deleted (getcwd() fails there)
    from ingestion.lake import canonical_source

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    # Then an absolute path is still named, and the root and its own dot are no odd names
    assert canonical_source(str(tmp_path / "in" / "a.csv")) == str(
        tmp_path.resolve() / "in" / "a.csv"
    )
    assert canonical_source("/") == "/"
    assert canonical_source(str(tmp_path) + "/.") == str(tmp_path.resolve())
