"""The API's dbt follower: each clean build dbt writes is exported once, a locked warehouse is
tried again with the results it was given, anything else is left alone."""

from __future__ import annotations

import json
import os
import subprocess

from export.__main__ import EXIT_BUSY
from export.follow import DbtFollower
from tests.unit.export.test_export import results


class FakeExport:
    """Stands for ``python -m export``: records what it was given, answers ``codes`` in
    turn, and on 0 creates the build directory the real export would."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.calls: list[dict] = []

    def __call__(self, lake, text):
        given = json.loads(text)
        self.calls.append(given)
        code = self.codes.pop(0)
        if code == 0:
            invocation = given["metadata"]["invocation_id"]
            (lake / "marts" / "builds" / f"20240101T000000000000Z_{invocation}").mkdir(parents=True)
        return subprocess.CompletedProcess([], code, b"export: said", b"export: error: boom")


def write(target, run, mtime_ns):
    path = target / "run_results.json"
    path.write_text(json.dumps(run))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def follower(tmp_path, fake, now=None, **kw):
    (tmp_path / "target").mkdir(exist_ok=True)
    clock = (lambda: now[0]) if now else (lambda: 0.0)
    return DbtFollower(tmp_path / "lake", tmp_path / "target", export=fake, clock=clock, **kw)


def test_a_clean_build_is_exported_once(tmp_path):
    fake = FakeExport(0)
    f = follower(tmp_path, fake)
    assert f.poll() is False  # no run_results.json yet: nothing to do
    write(tmp_path / "target", results(invocation="b-1"), 10**18)
    assert f.poll() is True
    assert f.poll() is False  # the same file again: already done
    assert [c["metadata"]["invocation_id"] for c in fake.calls] == ["b-1"]


def test_other_commands_and_partial_builds_are_not_exported(tmp_path):
    fake = FakeExport()
    f = follower(tmp_path, fake)
    for i, run in enumerate(
        [results("test"), results(status="error"), results(skip=("mart_orders",))]
    ):
        write(tmp_path / "target", run, 10**18 + i)
        assert f.poll() is False
    assert fake.calls == []


def test_a_build_already_exported_is_not_exported_again(tmp_path):
    # e.g. by make build's own python -m export, before the server looked
    (tmp_path / "lake" / "marts" / "builds" / "20240101T000000000000Z_b-1").mkdir(parents=True)
    fake = FakeExport()
    f = follower(tmp_path, fake)
    write(tmp_path / "target", results(invocation="b-1"), 10**18)
    assert f.poll() is False
    assert fake.calls == []


def test_a_locked_warehouse_is_tried_again_with_the_builds_own_results(tmp_path):
    # Given a build whose export first finds dbt still holding the warehouse
    fake = FakeExport(EXIT_BUSY, EXIT_BUSY, 0)
    f = follower(tmp_path, fake)
    write(tmp_path / "target", results(invocation="b-1"), 10**18)
    assert f.poll() is False
    # When `dbt test` overwrites run_results.json meanwhile
    write(tmp_path / "target", results("test", invocation="t-2"), 10**18 + 1)
    assert f.poll() is False
    # Then the next try still exports the build, from the results the build wrote
    assert f.poll() is True
    assert [c["metadata"]["invocation_id"] for c in fake.calls] == ["b-1"] * 3


def test_a_newer_build_replaces_one_still_waiting(tmp_path):
    fake = FakeExport(EXIT_BUSY, 0)
    f = follower(tmp_path, fake)
    write(tmp_path / "target", results(invocation="b-1"), 10**18)
    assert f.poll() is False
    write(tmp_path / "target", results(invocation="b-2"), 10**18 + 1)
    assert f.poll() is True
    assert [c["metadata"]["invocation_id"] for c in fake.calls] == ["b-1", "b-2"]


def test_a_lock_that_never_ends_is_given_up_and_a_failure_is_not_retried(tmp_path):
    now = [0.0]
    fake = FakeExport(EXIT_BUSY, EXIT_BUSY, 1)
    f = follower(tmp_path, fake, now, retry_seconds=60)
    write(tmp_path / "target", results(invocation="b-1"), 10**18)
    assert f.poll() is False
    now[0] = 61.0
    assert f.poll() is False  # waited past retry_seconds: given up
    assert f.poll() is False
    assert len(fake.calls) == 2
    write(tmp_path / "target", results(invocation="b-2"), 10**18 + 1)
    assert f.poll() is False  # exit 1: logged, not tried again
    assert f.poll() is False
    assert len(fake.calls) == 3


def test_a_half_written_results_file_is_read_again(tmp_path):
    fake = FakeExport(0)
    f = follower(tmp_path, fake)
    path = tmp_path / "target" / "run_results.json"
    text = json.dumps(results(invocation="b-1"))
    path.write_text(text[: len(text) // 2])
    os.utime(path, ns=(10**18, 10**18))
    assert f.poll() is False
    path.write_text(text)
    os.utime(path, ns=(10**18, 10**18))  # even with the same mtime: its size changed
    assert f.poll() is True
