"""S3Lake's handling of S3 error answers, with botocore's Stubber (no network, no moto)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from ingestion import s3 as s3mod
from ingestion.s3 import S3Lake, source_exists


@pytest.fixture
def stubbed():
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_access_denied_on_a_read_names_the_missing_list_permission(stubbed):
    # Given S3 answering 403 to a GetObject (as it does for a missing key without ListBucket)
    client, stub = stubbed
    stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    lake = S3Lake("s3://lake-bkt/prefix", client=client)

    # When the lake reads the key, Then the error says what to grant, with S3's error chained
    with pytest.raises(PermissionError, match="s3:ListBucket") as raised:
        lake.read_bytes("_state/sources/x.json")
    assert "s3://lake-bkt/prefix/_state/sources/x.json" in str(raised.value)
    assert raised.value.__cause__ is not None


def test_access_denied_is_never_taken_for_a_missing_object(stubbed):
    # Given a 403 on HeadObject, Then neither exists() nor source_exists() answers False
    client, stub = stubbed
    stub.add_client_error("head_object", "403", "Forbidden", 403)
    stub.add_client_error("head_object", "403", "Forbidden", 403)
    with pytest.raises(PermissionError):
        S3Lake("s3://lake-bkt", client=client).exists("manifests/a.json")
    with pytest.raises(PermissionError):
        source_exists("s3://in-bkt/a.csv", client=client)


def test_other_errors_pass_through_unchanged(stubbed):
    # Given S3 throttling, Then the original error is raised (boto3 already retried it)
    client, stub = stubbed
    stub.add_client_error("get_object", "SlowDown", "Reduce your request rate", 503)
    with pytest.raises(client.exceptions.ClientError, match="SlowDown"):
        S3Lake("s3://lake-bkt", client=client).read_bytes("a")


def test_conditional_put_retries_a_conflict_then_reports_the_winner(stubbed, monkeypatch):
    # Given a conditional write racing another one: S3 answers 409, then 412 once it is done
    client, stub = stubbed
    monkeypatch.setattr(s3mod.time, "sleep", lambda s: None)
    stub.add_client_error("put_object", "ConditionalRequestConflict", "conflict", 409)
    stub.add_client_error("put_object", "PreconditionFailed", "exists", 412)

    # When the claim is made, Then it is lost (False), not an error
    assert S3Lake("s3://lake-bkt", client=client).put_if_absent("claims/a", b"x") is False


def test_conditional_put_that_keeps_conflicting_gives_up_clearly(stubbed, monkeypatch):
    # Given five conflicts in a row
    client, stub = stubbed
    monkeypatch.setattr(s3mod.time, "sleep", lambda s: None)
    for _ in range(5):
        stub.add_client_error("put_object", "ConditionalRequestConflict", "conflict", 409)

    # Then the claim fails with an S3Error naming the key
    with pytest.raises(s3mod.S3Error, match="claims/a"):
        S3Lake("s3://lake-bkt", client=client).put_if_absent("claims/a", b"x")


def test_delete_reports_keys_s3_refused(stubbed):
    # Given DeleteObjects refusing one key
    client, stub = stubbed
    stub.add_response(
        "delete_objects",
        {"Errors": [{"Key": "raw/a", "Code": "AccessDenied", "Message": "denied"}]},
    )

    # Then the delete raises naming the key and the code
    with pytest.raises(s3mod.S3Error, match="raw/a: AccessDenied"):
        S3Lake("s3://lake-bkt", client=client).delete(["raw/a", "raw/b"])
