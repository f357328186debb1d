"""moto's own IAM enforcement as a second opinion on the call audit, where it covers the case.

moto (5.x) checks an identity policy's Action and Resource for S3 object calls made with the
credentials of an IAM user; it ignores Condition (its access_control module says so), so it
cannot see defect 5 (GetBucketLocation under an s3:prefix condition) and it allows a listing
outside the ingestion role's prefixes, which the audit refuses. For what it does check, the
claim writes of defect 1, its verdict must be the audit's, on the template and on the template
with the defect put back.
"""

from __future__ import annotations

import copy
import json
import uuid

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from infra.cfn import load_template, offline_resolver
from infra.iam import Request, policies_from_template

ACCOUNT = "123456789012"


def ingest_policy(template, env: str) -> dict:
    res = offline_resolver(
        template,
        {
            "EnvironmentName": env,
            "ArtifactBucket": "artifacts",
            "IngestCodeKey": "i",
            "ApiCodeKey": "a",
            "DbtSourceKey": "d",
        },
    )
    return res, res.properties("IngestRole")["Policies"][0]["PolicyDocument"]


@pytest.fixture
def enforced(aws_env):
    """Runs ``fn(client)`` with moto's IAM enforcement on, as a user holding ``policy``."""

    def run(policy: dict, fn):
        iam = boto3.client("iam")
        user = "u" + uuid.uuid4().hex[:10]
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        client = boto3.client(
            "s3",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            aws_session_token=None,
        )
        requests.post(f"{aws_env}/moto-api/reset-auth", data=b"0", timeout=10)
        try:
            return fn(client)
        finally:
            requests.post(f"{aws_env}/moto-api/reset-auth", data=b"inf", timeout=10)

    return run


def moto_allows(client, bucket: str, key: str) -> bool:
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"{}")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc.response
        return False
    return True


@pytest.mark.parametrize("defect_1", [False, True], ids=["template", "defect-1-put-back"])
def test_moto_and_the_audit_agree_on_the_claim_writes_of_a_landing(enforced, defect_1):
    env = "m" + uuid.uuid4().hex[:8]
    template = copy.deepcopy(load_template())
    if defect_1:
        statements = template["Resources"]["IngestRole"]["Properties"]["Policies"][0][
            "PolicyDocument"
        ]["Statement"]
        write = next(st for st in statements if st["Sid"] == "WriteOwnLakePrefixes")
        write["Resource"] = [r for r in write["Resource"] if "_state/claims" not in str(r)]
    res, policy = ingest_policy(template, env)
    lake = res.properties("LakeBucket")["BucketName"]
    boto3.client("s3").create_bucket(Bucket=lake)
    keys = [
        "_state/claims/ab/cd/0000000000.json",
        "_state/sources/ab/cd.json",
        "raw/orders/pa_date=2024-03-01/x.parquet",
        "warehouse/fact_orders/x.parquet",
    ]
    # When the same writes go to moto as the role's policy, and to the audit's evaluator
    by_moto = enforced(policy, lambda c: [moto_allows(c, lake, k) for k in keys])
    policies = policies_from_template(res)
    role = res.attrs["IngestRole"]["Arn"]
    by_audit = [
        policies.evaluate(
            Request(role, "s3:PutObject", f"arn:aws:s3:::{lake}/{k}", {"aws:SecureTransport": True})
        ).allowed
        for k in keys
    ]
    # Then both give the same verdicts, and they are the expected ones
    assert by_moto == by_audit == [not defect_1, True, True, False]


def test_moto_ignores_conditions_so_the_s3_prefix_limit_is_the_audit_s_alone(enforced):
    # Given the ingestion role's policy, whose lake listing is limited by s3:prefix
    env = "m" + uuid.uuid4().hex[:8]
    res, policy = ingest_policy(load_template(), env)
    lake = res.properties("LakeBucket")["BucketName"]
    boto3.client("s3").create_bucket(Bucket=lake)
    # When the role lists the dbt's warehouse/ area
    listed = enforced(
        policy, lambda c: c.list_objects_v2(Bucket=lake, Prefix="warehouse/")["KeyCount"]
    )
    # Then moto lets it through, and the audit's evaluator does not
    assert listed == 0
    decision = policies_from_template(res).evaluate(
        Request(
            res.attrs["IngestRole"]["Arn"],
            "s3:ListBucket",
            f"arn:aws:s3:::{lake}",
            {"aws:SecureTransport": True, "s3:prefix": "warehouse/"},
        )
    )
    assert not decision.allowed
