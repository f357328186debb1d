"""buildspec.yml: what CodeBuild runs for dbt on Athena (issue 7)."""

from __future__ import annotations

from pathlib import Path

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


def test_runs_freshness_then_build_then_docs_on_athena_in_that_order():
    build = _phases()["build"]
    # Then the three dbt steps run, in order, against the athena target; unit tests (fixed
    # inputs, run by CI) stay out of the scheduled production build
    assert build[:2] + build[3:] == [
        ".venv/bin/dbt source freshness --target athena",
        ".venv/bin/dbt build --target athena --exclude-resource-type unit_test",
        ".venv/bin/dbt docs generate --target athena",
    ]
    # and after the build, once a day (the 00:00 UTC schedule), the Iceberg maintenance
    # (issue 12): compaction and snapshot expiry, never alongside a MERGE
    assert 'if [ "$(date -u +%H)" = "00" ]' in build[2]
    assert "dbt run-operation optimize_iceberg_tables --target athena" in build[2]


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
    (build,) = [c for c in _phases()["build"] if c.startswith(".venv/bin/dbt build")]
    # Then bench/bench_dbt.py's builds select what it selects beyond the target, so its
    # incremental/full figures describe the build that runs on the schedule
    selection = build.split()[2:]
    assert selection[:2] == ["--target", "athena"]
    assert tuple(selection[2:]) == bench.SCHEDULED_BUILD_ARGS
