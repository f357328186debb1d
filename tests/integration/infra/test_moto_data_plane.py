"""The data plane of infra/template.yaml on a moto server, with the ingestion handler run
through it.

What is deployed is read from the template (resolved offline by ``infra.cfn``): the KMS key,
the four buckets with their encryption, public-access block, versioning, ownership, logging,
lifecycle and bucket policies (less the TLS-only statements, see ``bucket_policy``), both
Glue databases, the encrypted DLQ, the ingestion role
and its policy, the ingestion function (its code zip in the artifact bucket), its invoke
permission, the incoming bucket's notification, the lake's EventBridge switch and the
"build after landing" rule. moto validates each call as AWS would (mostly).

moto cannot run a Lambda without Docker, so two test-only taps stand in for the targets:
an SQS queue subscribed to the incoming bucket with *the same events and filters* as the
Lambda notification (so the event the handler gets is the one moto's S3 produced, matched by
moto against the template's suffix filter), and an SQS target on the EventBridge rule instead
of CodeBuild (so the template's event pattern is matched by moto's EventBridge).
"""

from __future__ import annotations

import fnmatch
import gzip
import importlib.util
import io
import json
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pyarrow.parquet as pq
import pytest

from infra.cfn import load_template, offline_resolver, resource_name

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"

# Every AWS call the handler makes is checked against the ingestion role (tests/aws_audit.py).
pytestmark = pytest.mark.usefixtures("iam_audit")

HEADER = (
    "order_id,client_id,client_name,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)
ROWS = [
    "1,10,Moe Szyslak,100,Duff,2.50,4,0.330,retail,delivered,2024-03-01",
    "2,11,Barney Gumble,101,Duff Lite,1.99,10,0.330,Online,created,2024-03-02",
    "3,10,Moe Szyslak,100,Duff,2.50,1,0.330,B2B,broken,2024-03-02",
    "4,12,Homer Simpson,100,Duff,abc,1,0.330,retail,created,2024-03-01",  # invalid price
]


# -- deploying the template's data plane to moto ------------------------------------------------


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"]}
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = rule["ExpirationInDays"]
    if rule.get("ExpiredObjectDeleteMarker"):
        expiration["ExpiredObjectDeleteMarker"] = True
    if expiration:
        out["Expiration"] = expiration
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = rule["NoncurrentVersionExpiration"]
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return out


def _deploy_bucket(s3, res, logical_id: str) -> str:
    p = res.properties(logical_id)
    name = p["BucketName"]
    s3.create_bucket(Bucket=name)
    sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    rule: dict[str, Any] = {
        "ApplyServerSideEncryptionByDefault": sse["ServerSideEncryptionByDefault"]
    }
    if "BucketKeyEnabled" in sse:
        rule["BucketKeyEnabled"] = sse["BucketKeyEnabled"]
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [rule]})
    s3.put_public_access_block(
        Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"]
    )
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=p["VersioningConfiguration"])
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [_lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]
        },
    )
    if "LoggingConfiguration" in p:
        logging = p["LoggingConfiguration"]
        s3.put_bucket_logging(
            Bucket=name,
            BucketLoggingStatus={
                "LoggingEnabled": {
                    "TargetBucket": logging["DestinationBucketName"],
                    "TargetPrefix": logging["LogFilePrefix"],
                }
            },
        )
    return name


def _deploy(env_name: str, tap_s3_arn: str, tap_events_arn: str) -> SimpleNamespace:
    """Create the data-plane resources of the template in moto; return names and clients."""
    tpl = load_template()
    artifact_bucket = f"duff-{env_name}-artifacts"
    params = {
        "EnvironmentName": env_name,
        "ArtifactBucket": artifact_bucket,
        "IngestCodeKey": "duff/ingest.zip",
        "ApiCodeKey": "duff/api.zip",
        "DbtSourceKey": "duff/dbt.zip",
    }
    s3, kms, glue = boto3.client("s3"), boto3.client("kms"), boto3.client("glue")
    sqs, iam, lam = boto3.client("sqs"), boto3.client("iam"), boto3.client("lambda")
    events = boto3.client("events")

    # The key first: everything else is encrypted with it.
    res = offline_resolver(tpl, params, account_id=ACCOUNT, region=REGION)
    key = kms.create_key(Description=res.properties("DataKey")["Description"])["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    res.refs["DataKey"] = key["KeyId"]
    res.attrs["DataKey"]["Arn"] = key["Arn"]

    # Bucket policies right after their bucket: the others' logging needs the log bucket's.
    # The TLS-only Deny statements are left out: moto's policy engine ignores the
    # aws:SecureTransport condition and would refuse every call to its plain-HTTP endpoint
    # (tests/unit/infra/test_template.py checks those statements).
    def bucket_policy(lid):
        p = res.properties(lid)
        statements = [
            st
            for st in p["PolicyDocument"]["Statement"]
            if st.get("Condition") != {"Bool": {"aws:SecureTransport": "false"}}
        ]
        if statements:
            document = {**p["PolicyDocument"], "Statement": statements}
            s3.put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))

    for lid in ("AccessLogBucket", "LakeBucket", "AthenaResultsBucket"):
        _deploy_bucket(s3, res, lid)
        bucket_policy(f"{lid}Policy")
    for lid in ("RawDatabase", "AnalyticsDatabase"):
        p = res.properties(lid)
        glue.create_database(CatalogId=p["CatalogId"], DatabaseInput=p["DatabaseInput"])

    dlq_props = res.properties("IngestDeadLetterQueue")
    dlq_url = sqs.create_queue(
        QueueName=dlq_props["QueueName"],
        Attributes={
            "KmsMasterKeyId": dlq_props["KmsMasterKeyId"],
            "KmsDataKeyReusePeriodSeconds": str(dlq_props["KmsDataKeyReusePeriodSeconds"]),
            "MessageRetentionPeriod": str(dlq_props["MessageRetentionPeriod"]),
        },
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    res.refs["IngestDeadLetterQueue"] = dlq_url
    res.attrs["IngestDeadLetterQueue"]["Arn"] = dlq_arn

    role = res.properties("IngestRole")
    role_arn = iam.create_role(
        RoleName=role["RoleName"],
        AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]),
        Description=role["Description"],
    )["Role"]["Arn"]
    for policy in role["Policies"]:
        iam.put_role_policy(
            RoleName=role["RoleName"],
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    res.attrs["IngestRole"]["Arn"] = role_arn

    # The function, its code a zip of ingestion/ in the artifact bucket.
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        for path in sorted((ROOT / "ingestion").glob("*.py")):
            zf.write(path, f"ingestion/{path.name}")
    s3.create_bucket(Bucket=artifact_bucket)
    s3.put_object(Bucket=artifact_bucket, Key=params["IngestCodeKey"], Body=code.getvalue())
    fn = res.properties("IngestFunction")
    created = lam.create_function(
        FunctionName=fn["FunctionName"],
        Description=fn["Description"],
        Runtime=fn["Runtime"],
        Architectures=fn["Architectures"],
        Handler=fn["Handler"],
        Code={"S3Bucket": fn["Code"]["S3Bucket"], "S3Key": fn["Code"]["S3Key"]},
        Role=fn["Role"],
        MemorySize=int(fn["MemorySize"]),
        Timeout=int(fn["Timeout"]),
        EphemeralStorage=fn["EphemeralStorage"],
        KMSKeyArn=fn["KmsKeyArn"],
        DeadLetterConfig=fn["DeadLetterConfig"],
        TracingConfig=fn["TracingConfig"],
        Environment=fn["Environment"],
    )
    lam.put_function_concurrency(
        FunctionName=fn["FunctionName"],
        ReservedConcurrentExecutions=int(fn["ReservedConcurrentExecutions"]),
    )
    res.refs["IngestFunction"] = created["FunctionName"]
    res.attrs["IngestFunction"]["Arn"] = created["FunctionArn"]
    perm = res.properties("IngestInvokePermission")
    lam.add_permission(
        FunctionName=perm["FunctionName"],
        StatementId="IngestInvokePermission",
        Action=perm["Action"],
        Principal=perm["Principal"],
        SourceArn=perm["SourceArn"],
        SourceAccount=perm["SourceAccount"],
    )

    # The incoming bucket after the permission (DependsOn), with its notification; the tap
    # queue gets the same events and filters as the function.
    incoming = _deploy_bucket(s3, res, "IncomingBucket")
    lambda_configs = res.properties("IncomingBucket")["NotificationConfiguration"][
        "LambdaConfigurations"
    ]

    def api_filter(cfg):
        return {"Key": {"FilterRules": cfg["Filter"]["S3Key"]["Rules"]}}

    s3.put_bucket_notification_configuration(
        Bucket=incoming,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": c["Function"],
                    "Events": [c["Event"]],
                    "Filter": api_filter(c),
                }
                for c in lambda_configs
            ],
            "QueueConfigurations": [
                {"QueueArn": tap_s3_arn, "Events": [c["Event"]], "Filter": api_filter(c)}
                for c in lambda_configs
            ],
        },
    )
    lake = resource_name(res, "LakeBucket")
    lake_notify = res.properties("LakeBucket")["NotificationConfiguration"]
    assert lake_notify["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    s3.put_bucket_notification_configuration(
        Bucket=lake, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    bucket_policy("IncomingBucketPolicy")

    rule = res.properties("DbtOnLandingRule")
    events.put_rule(
        Name=rule["Name"],
        EventPattern=json.dumps(rule["EventPattern"]),
        State=rule["State"],
        Description=rule["Description"],
    )
    events.put_targets(Rule=rule["Name"], Targets=[{"Id": "tap", "Arn": tap_events_arn}])
    return SimpleNamespace(
        res=res,
        incoming=incoming,
        lake=lake,
        function=fn,
        rule=rule["Name"],
        raw_db=resource_name(res, "RawDatabase"),
    )


# -- fixtures -----------------------------------------------------------------------------------


def _queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _drain(sqs, url: str) -> list[dict[str, Any]]:
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _keys(s3, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture
def stack(aws_env, monkeypatch):
    env_name = "t" + uuid.uuid4().hex[:10]
    sqs = boto3.client("sqs")
    tap_s3_url, tap_s3_arn = _queue(sqs, f"{env_name}-tap-s3")
    tap_ev_url, tap_ev_arn = _queue(sqs, f"{env_name}-tap-events")
    deployed = _deploy(env_name, tap_s3_arn, tap_ev_arn)
    _drain(sqs, tap_s3_url)  # the s3:TestEvent S3 sends when a notification is configured
    deployed.tap_s3_url, deployed.tap_events_url = tap_s3_url, tap_ev_url
    # The function's environment, exactly as the template sets it.
    for name, value in deployed.function["Environment"]["Variables"].items():
        monkeypatch.setenv(name, str(value))
    # A fresh copy of the handler module: it reads its settings at import time.
    spec = importlib.util.spec_from_file_location(
        f"duff_infra_handler_{env_name}", ROOT / "ingestion" / "handler.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    deployed.handler = module.handler
    try:
        yield deployed
    finally:
        events = boto3.client("events")
        events.remove_targets(Rule=deployed.rule, Ids=["tap"])
        events.delete_rule(Name=deployed.rule)


# -- the test -----------------------------------------------------------------------------------


def test_a_csv_dropped_in_the_incoming_bucket_lands_through_the_deployed_wiring(stack):
    s3, sqs, glue = boto3.client("s3"), boto3.client("sqs"), boto3.client("glue")
    ctx = SimpleNamespace(aws_request_id="req-1")
    # Given a CSV (with a space and a plus in its name) and a text file dropped in the bucket
    key = "drops/Duff orders+march.csv"
    s3.put_object(Bucket=stack.incoming, Key=key, Body=("\n".join([HEADER, *ROWS]) + "\n").encode())
    s3.put_object(Bucket=stack.incoming, Key="drops/readme.txt", Body=b"not an orders file")

    # When S3 notifies (moto applies the template's suffix filter) and the handler runs on
    # the event S3 produced, with the function's environment
    notified = [b for b in _drain(sqs, stack.tap_s3_url) if "Records" in b]
    records = [r for b in notified for r in b["Records"]]
    assert [unquote_plus(r["s3"]["object"]["key"]) for r in records] == [key]
    assert records[0]["s3"]["object"]["key"] != key  # S3 sends the key URL-encoded
    summary = stack.handler(notified[0], ctx)

    # Then the file landed, its key decoded
    assert (summary["records"], summary["landed"], summary["failed"]) == (1, 1, 0)
    manifests = _keys(s3, stack.lake, "manifests/")
    assert len(manifests) == 1
    manifest = json.loads(s3.get_object(Bucket=stack.lake, Key=manifests[0])["Body"].read())
    assert manifest["status"] == "landed"
    assert manifest["source_file"] == f"s3://{stack.incoming}/{key}"
    assert (manifest["rows_in"], manifest["valid"]) == (4, 3)
    assert manifest["rejected"] == {"missing": 0, "invalid": 1, "duplicate": 0}
    assert manifest["partitions"] == ["2024-03-01", "2024-03-02"]
    # And the valid rows are Parquet in their pa_date partitions of the lake bucket
    landed: dict[str, set[int]] = {}
    for obj in _keys(s3, stack.lake, "raw/orders/"):
        assert obj.endswith(".parquet"), obj
        part = obj.split("/")[2]
        body = s3.get_object(Bucket=stack.lake, Key=obj)["Body"].read()
        ids = pq.read_table(io.BytesIO(body)).column("order_id").to_pylist()
        landed.setdefault(part, set()).update(ids)
    assert landed == {"pa_date=2024-03-01": {1}, "pa_date=2024-03-02": {2, 3}}
    # And raw_orders is registered in the template's Glue database with both partitions
    parts = glue.get_partitions(DatabaseName=stack.raw_db, TableName="raw_orders")["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == ["2024-03-01", "2024-03-02"]
    # And objects are encrypted with the stack's key by the bucket default
    head = s3.head_object(Bucket=stack.lake, Key=manifests[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    # And every key written is one the ingestion role may write (least privilege holds)
    written = _keys(s3, stack.lake)
    allowed = [
        r
        for st in stack.res.properties("IngestRole")["Policies"][0]["PolicyDocument"]["Statement"]
        if st["Sid"] == "WriteOwnLakePrefixes"
        for r in st["Resource"]
    ]
    for obj in written:
        arn = f"arn:aws:s3:::{stack.lake}/{obj}"
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in allowed), obj
    assert not [k for k in written if k.startswith("_staging/")]
    # And the manifest, the last write of the landing, matched the build-after-landing rule
    # while the Parquet and reject writes did not
    matched = _drain(sqs, stack.tap_events_url)
    assert [e["detail"]["object"]["key"] for e in matched] == manifests
    assert {e["detail-type"] for e in matched} == {"Object Created"}


def test_a_redelivered_event_is_skipped_and_a_compressed_file_is_quarantined(stack):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    ctx = SimpleNamespace(aws_request_id="req-2")
    # Given one landed file
    s3.put_object(Bucket=stack.incoming, Key="a.csv", Body=f"{HEADER}\n{ROWS[0]}\n".encode())
    event = next(b for b in _drain(sqs, stack.tap_s3_url) if "Records" in b)
    assert stack.handler(event, ctx)["landed"] == 1
    raw_before = _keys(s3, stack.lake, "raw/")
    # When S3 delivers the same event again (at least once delivery)
    again = stack.handler(event, ctx)
    # Then nothing new lands
    assert (again["skipped"], again["landed"]) == (1, 0)
    assert _keys(s3, stack.lake, "raw/") == raw_before
    # When a gzip file named .csv arrives
    packed = gzip.compress(f"{HEADER}\n{ROWS[1]}\n".encode())
    s3.put_object(Bucket=stack.incoming, Key="packed.csv", Body=packed)
    event = next(b for b in _drain(sqs, stack.tap_s3_url) if "Records" in b)
    result = stack.handler(event, ctx)
    # Then it is quarantined whole, byte for byte, and the invocation still succeeds
    assert result["quarantined"] == 1
    quarantined = _keys(s3, stack.lake, "quarantine/")
    assert len(quarantined) == 1 and quarantined[0].endswith("/packed.csv")
    assert s3.get_object(Bucket=stack.lake, Key=quarantined[0])["Body"].read() == packed
    assert _keys(s3, stack.lake, "raw/") == raw_before
