"""buildspec.yml: what CodeBuild runs for dbt on Athena (issue 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _phases() -> dict[str, list[str]]:
    spec = yaml.safe_load((ROOT / "buildspec.yml").read_text(encoding="utf-8"))
    assert spec["version"] == 0.2
    return {name: phase.get("commands", []) for name, phase in spec["phases"].items()}


def test_installs_from_the_lock_with_uv_and_never_fetches_dbt_packages():
    # Given the buildspec's commands
    phases = _phases()
    every = [c for commands in phases.values() for c in commands]
    # Then dependencies come from uv.lock, frozen, and dbt deps (the hub) is never called
    assert any("uv sync --frozen" in c for c in phases["install"])
    assert not [c for c in every if "dbt deps" in c or "pip install dbt" in c]


NOTHING_LANDED = '[ -n "${DUFF_NOTHING_LANDED:-}" ] || '


def test_runs_freshness_then_build_then_docs_on_athena_in_that_order():
    build = _phases()["build"]
    # Then the three dbt steps run, in order, against the athena target, each unless nothing
    # has landed yet; unit tests (fixed inputs, run by CI) stay out of the scheduled build
    assert build[:2] + build[3:] == [
        NOTHING_LANDED + ".venv/bin/dbt source freshness --target athena",
        NOTHING_LANDED + ".venv/bin/dbt build --target athena --exclude-resource-type unit_test",
        NOTHING_LANDED + ".venv/bin/dbt docs generate --target athena",
    ]
    # and after the build, once a day (the 00:00 UTC schedule), the Iceberg maintenance
    # (issue 12): compaction and snapshot expiry, never alongside a MERGE
    assert '[ "$(date -u +%H)" = "00" ]' in build[2]
    assert '[ -z "${DUFF_NOTHING_LANDED:-}" ]' in build[2]
    assert "dbt run-operation optimize_iceberg_tables --target athena" in build[2]


def _run(script: str, landed_yet_exit: int, tmp_path) -> tuple[int, str]:
    """Run a buildspec command block in bash with ``.venv/bin/python -m infra.landed_yet``
    answering ``landed_yet_exit`` and every ``.venv/bin/dbt`` call logged, not run."""
    import subprocess

    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python").write_text(f"#!/bin/sh\nexit {landed_yet_exit}\n")
    (bin_dir / "dbt").write_text('#!/bin/sh\necho "dbt $*" >> dbt.log\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    log = tmp_path / "dbt.log"
    return done.returncode, log.read_text() if log.exists() else ""


@pytest.mark.parametrize(
    "answer, builds, ok", [(0, True, True), (3, False, True), (1, False, False)]
)
def test_a_stack_nothing_has_landed_in_builds_nothing_and_an_error_fails(
    answer, builds, ok, tmp_path
):
    # Given the pre_build check and the build phase run in one shell, as version 0.2 runs them
    phases = _phases()
    (check,) = [c for c in phases["pre_build"] if "infra.landed_yet" in c]
    script = "\n".join(
        [check, "status=$?", '[ "$status" = 0 ] || exit "$status"', *phases["build"]]
    )
    # When landed_yet answers 0 (landed), 3 (nothing yet) or 1 (could not tell)
    code, log = _run(script, answer, tmp_path)
    # Then dbt runs only after a landing; "nothing yet" passes; an error fails the build
    assert (code == 0) == ok
    assert ("dbt build --target athena" in log) == builds
    assert ("dbt source freshness" in log) == builds


def test_a_stack_nothing_has_landed_in_publishes_no_docs(tmp_path):
    # Given a build that succeeded with nothing landed (the docs site must not be replaced by
    # the empty target/ of a build that built nothing)
    phases = _phases()
    (check,) = [c for c in phases["pre_build"] if "infra.landed_yet" in c]
    aws = tmp_path / "bin" / "aws"
    aws.parent.mkdir()
    aws.write_text('#!/bin/sh\necho "aws $*" >> aws.log\n')
    aws.chmod(0o755)
    script = "\n".join(
        [
            f'export PATH="{aws.parent}:$PATH" CODEBUILD_BUILD_SUCCEEDING=1',
            "export DUFF_DOCS_S3_URI=s3://docs/site/",
            check,
            *phases["post_build"],
        ]
    )
    code, _ = _run(script, 3, tmp_path)
    # Then nothing is synced to the docs bucket
    assert code == 0 and not (tmp_path / "aws.log").exists()
    # (and after a real build it is)
    code, _ = _run(script, 0, tmp_path)
    assert code == 0 and "s3 sync target/" in (tmp_path / "aws.log").read_text()


def test_publishes_the_docs_site_to_s3_only_after_a_successful_build():
    (post,) = _phases()["post_build"]
    # Then the publication is guarded by CodeBuild's success flag and targets DUFF_DOCS_S3_URI
    assert 'CODEBUILD_BUILD_SUCCEEDING:-0}" != "1"' in post
    assert 'aws s3 sync target/ "${DUFF_DOCS_S3_URI%/}/"' in post
    for name in ("index.html", "manifest.json", "catalog.json"):
        assert f"--include {name}" in post


def test_the_dbt_benchmark_times_what_the_scheduled_build_selects():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_dbt", ROOT / "bench" / "bench_dbt.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # Given the scheduled build's command
    (build,) = [c for c in _phases()["build"] if ".venv/bin/dbt build" in c]
    build = build.removeprefix(NOTHING_LANDED)
    # Then bench/bench_dbt.py's builds select what it selects beyond the target, so its
    # incremental/full figures describe the build that runs on the schedule
    selection = build.split()[2:]
    assert selection[:2] == ["--target", "athena"]
    assert tuple(selection[2:]) == bench.SCHEDULED_BUILD_ARGS
