"""infra/deploy.sh (``make deploy``) with a fake ``aws`` on PATH: clear refusals without the CLI
or credentials, and the exact uploads and ``cloudformation deploy`` call otherwise."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "infra" / "deploy.sh"

# A stand-in for the AWS CLI: logs every call, answers what deploy.sh asks.
FAKE_AWS = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_AWS_LOG"
case "$1 $2" in
  "configure get") exit 0 ;;
  "sts get-caller-identity")
    if [ -n "${FAKE_AWS_NO_CREDENTIALS:-}" ]; then
      echo "Unable to locate credentials" >&2; exit 255
    fi
    echo 123456789012 ;;
  "s3api head-bucket") exit "${FAKE_AWS_BUCKET_MISSING:-0}" ;;
  "s3api head-object") exit 1 ;;
  "cloudformation describe-stacks") echo "ApiUrl  https://example.invalid/live/" ;;
  *) exit 0 ;;
esac
"""


def _tool_path(tmp_path: Path, with_aws: bool) -> str:
    """A PATH with the tools deploy.sh needs and, optionally, the fake aws (never a real one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in (
        "bash",
        "git",
        "sha256sum",
        "cut",
        "tr",
        "rm",
        "mkdir",
        "mktemp",
        "dirname",
        "env",
        "cat",
    ):
        found = shutil.which(tool)
        assert found, tool
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(found)
    if with_aws:
        fake = bin_dir / "aws"
        fake.write_text(FAKE_AWS)
        fake.chmod(0o755)
    return str(bin_dir)


def _run(tmp_path: Path, *, with_aws: bool = True, **env: str) -> subprocess.CompletedProcess:
    dist = tmp_path / "dist"
    dist.mkdir(exist_ok=True)
    (dist / "duff-ingest.zip").write_bytes(b"ingest zip")
    (dist / "duff-api.zip").write_bytes(b"api zip")
    full_env = {
        "PATH": _tool_path(tmp_path, with_aws),
        "HOME": str(tmp_path),
        "FAKE_AWS_LOG": str(tmp_path / "aws.log"),
        "DUFF_SKIP_PACKAGE": "1",
        "DUFF_DIST_DIR": str(dist),
        "AWS_REGION": "eu-west-1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=full_env, capture_output=True, text=True, timeout=60, check=False
    )


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "aws.log"
    return log.read_text().splitlines() if log.exists() else []


def test_without_the_aws_cli_it_says_how_to_get_it(tmp_path):
    # Given no aws command on PATH
    done = _run(tmp_path, with_aws=False)
    # Then it stops with exit 2 and a clear message, having done nothing
    assert done.returncode == 2
    assert "AWS CLI is not installed" in done.stderr
    assert not (tmp_path / "dist" / "dbt-project.zip").exists()


def test_without_credentials_it_says_so_and_deploys_nothing(tmp_path):
    # Given an aws CLI that has no credentials
    done = _run(tmp_path, FAKE_AWS_NO_CREDENTIALS="1")
    # Then it stops with exit 2, names the cause, and never reaches CloudFormation
    assert done.returncode == 2
    assert "no usable AWS credentials" in done.stderr
    assert "Unable to locate credentials" in done.stderr
    assert not [c for c in _calls(tmp_path) if c.startswith(("cloudformation", "s3 "))]


def test_a_bad_environment_name_is_refused(tmp_path):
    done = _run(tmp_path, DUFF_ENV="Prod-1")
    assert done.returncode == 2
    assert "DUFF_ENV=Prod-1" in done.stderr
    assert _calls(tmp_path) == []


def test_it_uploads_content_addressed_artifacts_and_deploys_the_template(tmp_path):
    # Given credentials, a missing artifact bucket and built zips
    done = _run(
        tmp_path,
        DUFF_ENV="qa",
        FAKE_AWS_BUCKET_MISSING="1",
        DUFF_ALARM_EMAIL="ops@example.com",
        DUFF_DEPLOY_PARAMETERS="IngestMemorySize=3008 ApiQuotaPerDay=5000",
    )
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    bucket = "duff-artifacts-123456789012-eu-west-1"
    # Then the bucket is created in the region, private, encrypted, versioned, TLS-only
    create = [c for c in calls if c.startswith("s3api create-bucket")]
    assert create == [
        f"s3api create-bucket --bucket {bucket} "
        "--create-bucket-configuration LocationConstraint=eu-west-1"
    ]
    for step in (
        "put-public-access-block",
        "put-bucket-encryption",
        "put-bucket-versioning",
        "put-bucket-policy",
    ):
        assert any(c.startswith(f"s3api {step} --bucket {bucket}") for c in calls), step
    # And each zip goes to a key named after its content
    ingest = hashlib.sha256(b"ingest zip").hexdigest()[:16]
    api = hashlib.sha256(b"api zip").hexdigest()[:16]
    uploads = [c for c in calls if c.startswith("s3 cp")]
    assert (
        f"s3 cp --only-show-errors {tmp_path}/dist/duff-ingest.zip s3://{bucket}/duff/qa/duff-ingest-{ingest}.zip"
        in uploads
    )
    assert (
        f"s3 cp --only-show-errors {tmp_path}/dist/duff-api.zip s3://{bucket}/duff/qa/duff-api-{api}.zip"
        in uploads
    )
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert any(f"/duff/qa/dbt-project-{commit[:12]}-" in c for c in uploads)
    # And the dbt project zip is the committed repository (buildspec and profiles included)
    import zipfile

    with zipfile.ZipFile(tmp_path / "dist" / "dbt-project.zip") as zf:
        names = set(zf.namelist())
    assert {"buildspec.yml", "profiles.yml", "dbt_project.yml", "uv.lock"} <= names
    # And CloudFormation deploys the template with every parameter
    deploy = [c for c in calls if c.startswith("cloudformation deploy")]
    assert len(deploy) == 1
    args = deploy[0]
    assert "--template-file infra/template.yaml --stack-name duff-qa" in args
    assert "--capabilities CAPABILITY_NAMED_IAM" in args
    overrides = args.split("--parameter-overrides ", 1)[1].split()
    assert overrides[:5] == [
        "EnvironmentName=qa",
        f"ArtifactBucket={bucket}",
        f"IngestCodeKey=duff/qa/duff-ingest-{ingest}.zip",
        f"ApiCodeKey=duff/qa/duff-api-{api}.zip",
        overrides[4],
    ]
    assert overrides[4].startswith(f"DbtSourceKey=duff/qa/dbt-project-{commit[:12]}-")
    assert overrides[5:] == [
        "AlarmEmail=ops@example.com",
        "IngestMemorySize=3008",
        "ApiQuotaPerDay=5000",
    ]
    assert "ApiUrl" in done.stdout


@pytest.mark.parametrize("region", ["us-east-1"])
def test_us_east_1_buckets_are_created_without_a_location_constraint(tmp_path, region):
    done = _run(tmp_path, AWS_REGION=region, FAKE_AWS_BUCKET_MISSING="1")
    assert done.returncode == 0, done.stderr
    assert [c for c in _calls(tmp_path) if c.startswith("s3api create-bucket")] == [
        "s3api create-bucket --bucket duff-artifacts-123456789012-us-east-1"
    ]
