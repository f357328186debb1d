"""The call audit (tests/aws_audit.py) on recorded calls built by hand: it passes the template's
policies, and it fails, naming the call, the role and the statement, on the template with
defect 1 or defect 5 of issue 12 put back."""

from __future__ import annotations

import copy

import pytest

from infra.cfn import load_template
from tests.aws_audit import REPO, Audit, Binding, Call, Unbound, role_of_stack

LAKE_ENV = {"DUFF_LAKE": "s3://test-lake/some/prefix", "DUFF_GLUE_DATABASE": "raw_x"}
API_ENV = {
    "DUFF_ATHENA_WORK_GROUP": "wg_x",
    "DUFF_ATHENA_SCHEMA": "marts_x",
    "DUFF_ATHENA_S3_STAGING_DIR": "s3://test-results/",
    "DUFF_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-1",
}
CLAIMS = "some/prefix/_state/claims/ab12/cd34/"


def landing_calls() -> list[Call]:
    """What claim() and the idempotency check do on S3, as the recorder records them."""
    return [
        Call(
            "s3",
            "GetObject",
            {"Bucket": "test-lake", "Key": "some/prefix/_state/sources/ab12/cd34.json"},
            "IngestRole",
            LAKE_ENV,
            response={"HTTPStatusCode": 404},
        ),
        Call(
            "s3", "ListObjectsV2", {"Bucket": "test-lake", "Prefix": CLAIMS}, "IngestRole", LAKE_ENV
        ),
        Call(
            "s3",
            "PutObject",
            {"Bucket": "test-lake", "Key": CLAIMS + "0000000000.json", "IfNoneMatch": "*"},
            "IngestRole",
            LAKE_ENV,
        ),
        Call(
            "s3",
            "CopyObject",
            {
                "Bucket": "test-lake",
                "Key": "some/prefix/raw/orders/pa_date=2024-03-01/x.parquet",
                "CopySource": {"Bucket": "test-lake", "Key": "some/prefix/_staging/i/x.parquet"},
            },
            "IngestRole",
            LAKE_ENV,
        ),
        Call(
            "s3",
            "GetObject",
            {"Bucket": "drop-zone", "Key": "in/orders.csv"},
            "IngestRole",
            LAKE_ENV,
        ),
        Call(
            "glue",
            "BatchCreatePartition",
            {"DatabaseName": "raw_x", "TableName": "raw_orders"},
            "IngestRole",
            LAKE_ENV,
        ),
    ]


def api_calls() -> list[Call]:
    return [
        Call(
            "secretsmanager",
            "GetSecretValue",
            {"SecretId": API_ENV["DUFF_API_KEY_SECRET_ARN"]},
            "ApiRole",
            API_ENV,
        ),
        Call(
            "athena",
            "StartQueryExecution",
            {
                "QueryString": "select 1",
                "WorkGroup": "wg_x",
                "QueryExecutionContext": {"Database": "marts_x"},
            },
            "ApiRole",
            API_ENV,
            response={"QueryExecutionId": "q-1"},
        ),
        Call("athena", "GetQueryExecution", {"QueryExecutionId": "q-1"}, "ApiRole", API_ENV),
        Call(
            "athena",
            "GetQueryResults",
            {"QueryExecutionId": "q-1", "MaxResults": 1000},
            "ApiRole",
            API_ENV,
        ),
    ]


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def audit(template):
    return Audit(copy.deepcopy(template))


def statement(tpl, role: str, sid: str) -> dict:
    policy = tpl["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]
    return next(st for st in policy["Statement"] if st.get("Sid") == sid)


def test_the_template_allows_every_call_of_a_landing_and_of_an_api_query(audit):
    evaluated, findings = audit.check(landing_calls() + api_calls())
    assert [f.text for f in findings] == []
    # Then the lake prefix of the test was bound away and the event's bucket is the incoming one
    requests = [row["request"] for row in evaluated]
    assert any(
        "duff-dev-lake-123456789012-us-east-1/_state/claims/ab12/cd34/0000000000.json" in r
        for r in requests
    )
    assert any("duff-dev-incoming-123456789012-us-east-1/in/orders.csv" in r for r in requests)
    # And the implied requests were evaluated too
    assert any(
        r.startswith("s3:GetBucketLocation on arn:aws:s3:::duff-dev-athena-results")
        for r in requests
    )
    assert any(r.startswith("kms:GenerateDataKey on arn:aws:kms:") for r in requests)
    assert any(
        r.startswith("s3:ListBucket on arn:aws:s3:::duff-dev-lake") and "404" in r for r in requests
    )


def test_defect_1_put_back_claims_outside_the_ingestion_role_fail_the_audit(template):
    # Given the template as it was: _state/sources/* but not _state/claims/*
    tpl = copy.deepcopy(template)
    write = statement(tpl, "IngestRole", "WriteOwnLakePrefixes")
    write["Resource"] = [r for r in write["Resource"] if "_state/claims" not in str(r)]
    listing = statement(tpl, "IngestRole", "ListOwnLakePrefixes")
    listing["Condition"] = {"StringLike": {"s3:prefix": ["raw/orders/*", "_state/sources/*"]}}
    # When the calls of a landing are audited
    _, findings = Audit(tpl).check(landing_calls())
    text = "\n".join(f.text for f in findings)
    # Then the claim's listing and write are refused, naming the role, call and statement
    assert "IngestRole" in text and "s3.PutObject" in text and "s3.ListObjectsV2" in text
    assert "statement WriteOwnLakePrefixes names the action but its Resource" in text
    assert (
        "statement ListOwnLakePrefixes names the action but its condition StringLike s3:prefix"
        in text
    )
    # And the 404 check of a missing idempotency record is refused too (no s3:prefix there)
    assert "GetObject of a missing key" in text and "s3:prefix is absent" in text


def test_defect_5_put_back_get_bucket_location_under_s3_prefix_fails_the_audit(template):
    # Given GetBucketLocation grouped with ListBucket under the s3:prefix condition again
    tpl = copy.deepcopy(template)
    listing = statement(tpl, "ApiRole", "ListOwnQueryResults")
    listing["Action"] = ["s3:ListBucket", "s3:GetBucketLocation"]
    policy = tpl["Resources"]["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"] = [st for st in policy["Statement"] if st.get("Sid") != "LocateTheBuckets"]
    # When an API query is audited
    _, findings = Audit(tpl).check(api_calls())
    # Then Athena's GetBucketLocation on the results bucket is refused, and nothing else
    assert len(findings) == 1
    text = findings[0].text
    assert text.startswith(
        "ApiRole (arn:aws:iam::123456789012:role/duff-dev-api-us-east-1) made "
        "athena.StartQueryExecution"
    )
    assert (
        "s3:GetBucketLocation on arn:aws:s3:::duff-dev-athena-results-123456789012-us-east-1"
        in text
    )
    assert (
        "ListOwnQueryResults names the action but its condition StringLike s3:prefix ['api/*']"
        in text
    )


def test_a_resource_the_environment_does_not_bind_fails_the_audit(audit):
    # Given an API query through a work group the API's environment does not name
    call = Call(
        "athena",
        "StartQueryExecution",
        {"QueryString": "select 1", "WorkGroup": "primary"},
        "ApiRole",
        API_ENV,
    )
    _, findings = audit.check([call])
    assert len(findings) == 1 and "does not bind to a resource of the template" in findings[0].text


def test_binding_maps_prefixes_longest_first_and_refuses_strangers():
    b = Binding.for_call(
        "DbtBuildRole",
        {
            "DUFF_ATHENA_S3_DATA_DIR": "s3://lake/warehouse/",
            "DUFF_DOCS_S3_URI": "s3://lake/dbt-docs/",
        },
        {"DUFF_ATHENA_S3_DATA_DIR": "s3://t/", "DUFF_DOCS_S3_URI": "s3://t/docs/"},
        None,
    )
    assert b.key("t", "docs/index.html") == ("lake", "dbt-docs/index.html")
    assert b.key("t", "fact_orders/x") == ("lake", "warehouse/fact_orders/x")
    with pytest.raises(Unbound):
        b.key("elsewhere", "x")


def test_calls_are_attributed_by_the_production_code_on_the_stack():
    import sys

    def frame_in(path: str):
        code = compile("import sys\nframe = sys._getframe()\n", path, "exec")
        scope: dict = {"sys": sys}
        exec(code, scope)
        return scope["frame"]

    assert role_of_stack(frame_in(str(REPO / "ingestion" / "s3.py"))) == "IngestRole"
    assert role_of_stack(frame_in(str(REPO / "api" / "keystore.py"))) == "ApiRole"
    venv = "/x/site-packages/dbt/adapters/athena/impl.py"
    assert role_of_stack(frame_in(venv)) == "DbtBuildRole"
    assert role_of_stack(frame_in(str(REPO / "tests" / "x.py"))) is None


def test_tagging_a_served_mart_is_the_build_roles_and_not_the_apis(audit, template):
    # Given dbt-athena tagging a served mart (lf_tags_config), as the build role and, wrongly,
    # as the API role
    dbt_env = {"DUFF_ATHENA_SCHEMA": "marts_x", "DUFF_GLUE_DATABASE": "raw_x"}
    tag = {
        "Resource": {"Table": {"DatabaseName": "marts_x", "Name": "mart_orders"}},
        "LFTags": [{"TagKey": "duff_dev_tier", "TagValues": ["served"]}],
    }
    by_build = [
        Call("lakeformation", "GetResourceLFTags", {"Resource": tag["Resource"]}, "DbtBuildRole",
             dbt_env),
        Call("lakeformation", "AddLFTagsToResource", tag, "DbtBuildRole", dbt_env),
    ]  # fmt: skip
    # When audited: Then the build role may, on the analytics database of the template
    evaluated, findings = audit.check(by_build)
    assert [f.text for f in findings] == []
    requests = [row["request"] for row in evaluated]
    assert "lakeformation:AddLFTagsToResource on *" in " ".join(requests)
    assert any(
        r.startswith("glue:GetDatabase on arn:aws:glue:us-east-1:123456789012:database/duff_dev_")
        for r in requests
    )
    # And the API role may not
    by_api = Call("lakeformation", "AddLFTagsToResource", tag, "ApiRole", API_ENV)
    _, findings = audit.check([by_api])
    assert findings and "lakeformation:AddLFTagsToResource" in findings[0].text
    # And without the build's tagging statement the build role may not either
    tpl = copy.deepcopy(template)
    policy = tpl["Resources"]["DbtTagsTables"]["Properties"]["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "TagTheServedMarts"]
    _, findings = Audit(tpl).check(by_build)
    assert len(findings) == 2, [f.text for f in findings]


def test_a_schema_listing_must_show_the_build_the_schema_it_creates(audit, template):
    # Given dbt-athena's create_schemas as the build role makes it: list every database
    # (GetDatabases, which Glue filters to those the caller may list), then work in its
    # analytics schema, which dbt would create when the list lacks it
    dbt_env = {"DUFF_ATHENA_SCHEMA": "marts_x", "DUFF_GLUE_DATABASE": "raw_x"}
    calls = [
        Call("glue", "GetDatabases", {}, "DbtBuildRole", dbt_env),
        Call("glue", "GetTables", {"DatabaseName": "marts_x"}, "DbtBuildRole", dbt_env),
        Call("glue", "GetTable", {"DatabaseName": "raw_x", "Name": "raw_orders"}, "DbtBuildRole",
             dbt_env),
    ]  # fmt: skip
    # When audited: Then the listing is checked on both databases the build works in
    evaluated, findings = audit.check(calls)
    assert [f.text for f in findings] == []
    listed = sorted(
        row["request"].split(" on ")[1].split()[0]
        for row in evaluated
        if row["call"] == "glue.GetDatabases"
    )
    assert [arn.rsplit(":", 1)[1] for arn in listed] == [
        "catalog",
        "database/duff_dev",
        "database/duff_dev_analytics",
    ]
    # And without glue:GetDatabases on the analytics database the listing would hide it
    tpl = copy.deepcopy(template)
    own = statement(tpl, "DbtBuildRole", "OwnAnalyticsSchema")
    own["Action"] = [a for a in own["Action"] if a != "glue:GetDatabases"]
    _, findings = Audit(tpl).check(calls)
    assert len(findings) == 1
    assert (
        "glue:GetDatabases on arn:aws:glue:us-east-1:123456789012:database/duff_dev_analytics"
        in (findings[0].text)
    )
