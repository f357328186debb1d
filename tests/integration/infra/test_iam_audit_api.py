"""The API Lambda's AWS calls, made by the real API code against the moto server and checked
by the call audit against the API role of infra/template.yaml: the key from Secrets Manager,
then a query through the Athena backend (start, poll, results) with what Athena does in the
results location on the caller's behalf (GetBucketLocation: defect 5 of issue 12)."""

from __future__ import annotations

import boto3

from api.backends.athena import AthenaBackend
from api.keystore import read_api_key
from api.settings import Settings


def test_the_api_reads_its_key_and_queries_athena_within_its_role(
    aws_env, unique_name, monkeypatch, iam_audit
):
    # Given the API's resources in moto, named freely, and the API's environment pointing at them
    suffix = unique_name("api").split("-")[1]
    results = f"results-{suffix}"
    boto3.client("s3").create_bucket(Bucket=results)
    athena = boto3.client("athena")
    work_group = f"api_{suffix}"
    athena.create_work_group(
        Name=work_group,
        Configuration={
            "ResultConfiguration": {"OutputLocation": f"s3://{results}/api/"},
            "EnforceWorkGroupConfiguration": True,
        },
    )
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"duff/{suffix}/api-key", SecretString='{"api_key": "k3y"}'
    )["ARN"]
    env = {
        "DUFF_API_BACKEND": "athena",
        "DUFF_API_KEY_SECRET_ARN": secret,
        "DUFF_ATHENA_REGION": "us-east-1",
        "DUFF_ATHENA_WORK_GROUP": work_group,
        "DUFF_ATHENA_SCHEMA": f"marts_{suffix}",
        "DUFF_ATHENA_S3_STAGING_DIR": f"s3://{results}/api/",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # When the API reads its key and asks Athena which build to serve
    assert read_api_key(secret) == "k3y"
    backend = AthenaBackend.from_settings(Settings.from_env())
    # Then (moto runs no SQL: no build yet) nothing is served, and the audit, at teardown,
    # checks every call above against the API role
    assert backend.snapshot() is None
