"""infra/template.yaml, read and resolved offline: what each rule of issue 7 asks of it.

cfn-lint and checkov run in ``make lint``; these tests check what linters cannot know: that
handler paths resolve to real functions, that the names computed to avoid the S3 -> Lambda
cycle really name the same buckets, that IAM scopes match the lake layout, and that the
environment variables match what the code and profiles.yml read.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from infra import package
from infra.cfn import load_template, offline_resolver, resource_name

ROOT = Path(__file__).resolve().parents[3]
PARAMS = {
    "EnvironmentName": "dev",
    "ArtifactBucket": "duff-artifacts-123456789012-us-east-1",
    "IngestCodeKey": "duff/dev/duff-ingest-0123.zip",
    "ApiCodeKey": "duff/dev/duff-api-4567.zip",
    "DbtSourceKey": "duff/dev/dbt-project-89ab.zip",
}
S3_WRITE = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:*"}


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def res(tpl):
    return offline_resolver(tpl, PARAMS)


def _of_type(tpl, kind: str) -> list[str]:
    return [lid for lid, r in tpl["Resources"].items() if r["Type"] == kind]


def _statements(res, role_id: str) -> list[dict[str, Any]]:
    props = res.properties(role_id)
    out = []
    for policy in props.get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            out.append(
                {
                    **st,
                    "Action": st["Action"] if isinstance(st["Action"], list) else [st["Action"]],
                    "Resource": (
                        st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                    ),
                }
            )
    return out


def _allowed(res, role_id: str, action: str, resource: str) -> bool:
    """True when an Allow statement of the role names the action and matches the resource."""
    for st in _statements(res, role_id):
        if st["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action, a) for a in st["Action"]):
            continue
        if any(fnmatch.fnmatchcase(resource, r) for r in st["Resource"]):
            return True
    return False


# -- handlers -----------------------------------------------------------------------------------


def _packaged(tpl, lid: str) -> bool:
    """Functions built by make package (the others carry their code inline: ZipFile)."""
    return "ZipFile" not in tpl["Resources"][lid]["Properties"]["Code"]


def test_every_lambda_handler_path_resolves_to_a_callable_in_the_package(tpl):
    # Given every packaged Lambda function of the template
    functions = [lid for lid in _of_type(tpl, "AWS::Lambda::Function") if _packaged(tpl, lid)]
    assert functions, "the template defines no Lambda function"
    for lid in functions:
        handler = tpl["Resources"][lid]["Properties"]["Handler"]
        # When the handler path is split into module and function
        module_name, _, func_name = handler.rpartition(".")
        # Then the module is a file of this repository and the function is callable
        assert (ROOT / (module_name.replace(".", "/") + ".py")).is_file(), handler
        module = importlib.import_module(module_name)
        assert callable(getattr(module, func_name, None)), f"{lid}: {handler} is not callable"


def test_the_expected_handlers_are_wired(tpl):
    # Given the two functions issue 7 names
    props = {lid: tpl["Resources"][lid]["Properties"] for lid in ("IngestFunction", "ApiFunction")}
    # Then they point at the entry points fixed in CONTRACT.md and docs/architecture.md
    assert props["IngestFunction"]["Handler"] == "ingestion.handler.handler"
    assert props["ApiFunction"]["Handler"] == "api.handler.handler"


def test_package_builds_exactly_the_handlers_and_runtime_the_template_deploys(tpl):
    # Given the functions of the template and the artifacts make package builds
    functions = [
        tpl["Resources"][lid]["Properties"]
        for lid in _of_type(tpl, "AWS::Lambda::Function")
        if _packaged(tpl, lid)
    ]
    # Then every handler is packaged, for the runtime and architecture of the wheels
    packaged = {a.handler for a in package.ARTIFACTS}
    packaged |= {h for a in package.ARTIFACTS for h in a.also_handlers}
    assert {f["Handler"] for f in functions} == packaged
    for f in functions:
        assert f["Runtime"] == f"python{package.PYTHON_VERSION}"
        assert f["Architectures"] == [package.PYTHON_PLATFORM.split("-", 1)[0]]


# -- names --------------------------------------------------------------------------------------


def test_no_name_is_hard_coded_every_one_derives_from_the_environment(tpl):
    # Given the stack resolved for two environments
    dev = offline_resolver(tpl, {**PARAMS, "EnvironmentName": "dev"})
    prod = offline_resolver(tpl, {**PARAMS, "EnvironmentName": "prod"})
    named = 0
    for lid in tpl["Resources"]:
        a, b = resource_name(dev, lid), resource_name(prod, lid)
        if a is None or tpl["Resources"][lid]["Type"] == "AWS::ApiGateway::Stage":
            continue
        named += 1
        # Then each explicit name changes with the environment
        assert a != b and "dev" in a and "prod" in b, (lid, a, b)
    assert named >= 20


def test_names_fit_aws_limits_for_the_longest_environment_and_region(tpl):
    # Given the longest environment name the parameter allows, in a long region name
    res = offline_resolver(
        tpl, {**PARAMS, "EnvironmentName": "abcdefghijkl"}, region="ap-southeast-5"
    )
    for lid in _of_type(tpl, "AWS::S3::Bucket"):
        name = resource_name(res, lid)
        # Then bucket names are valid S3 names
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name), name
    for lid in _of_type(tpl, "AWS::IAM::Role"):
        name = resource_name(res, lid)
        assert name is None or len(name) <= 64, name
    for lid in _of_type(tpl, "AWS::Glue::Database"):
        assert re.fullmatch(r"[a-z0-9_]{1,255}", resource_name(res, lid))


# -- buckets ------------------------------------------------------------------------------------


def test_every_bucket_is_private_versioned_encrypted_logged_and_tls_only(tpl, res):
    buckets = _of_type(tpl, "AWS::S3::Bucket")
    policies = {
        res.properties(lid)["Bucket"]: res.properties(lid)["PolicyDocument"]
        for lid in _of_type(tpl, "AWS::S3::BucketPolicy")
    }
    log_bucket = resource_name(res, "AccessLogBucket")
    key_arn = res.attrs["DataKey"]["Arn"]
    # (the audit trail's log files have a key of their own, see test_governance.py)
    keys = {"TrailBucket": res.attrs["TrailKey"]["Arn"]}
    assert len(buckets) == 5
    for lid in buckets:
        p = res.properties(lid)
        name = p["BucketName"]
        # Then public access is blocked four ways and ACLs are off
        assert set(p["PublicAccessBlockConfiguration"].values()) == {True}, lid
        assert p["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        assert p["VersioningConfiguration"] == {"Status": "Enabled"}
        sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        if lid == "AccessLogBucket":
            # (S3 server access logs can only be delivered to an SSE-S3 bucket)
            assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        else:
            assert sse["ServerSideEncryptionByDefault"] == {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": keys.get(lid, key_arn),
            }
            assert p["LoggingConfiguration"]["DestinationBucketName"] == log_bucket
        # And a bucket policy denies every request that is not TLS, on the bucket and objects
        denies = [
            st
            for st in policies[name]["Statement"]
            if st["Effect"] == "Deny"
            and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{lid} has no TLS-only statement"
        assert set(denies[0]["Resource"]) == {f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"}
        assert denies[0]["Action"] == "s3:*" and denies[0]["Principal"] == "*"


def test_lifecycles_expire_incoming_after_90_days_results_after_7_and_old_versions(res, tpl):
    def rules(lid):
        return res.properties(lid)["LifecycleConfiguration"]["Rules"]

    # Then incoming files and Athena results expire as issue 7 says
    assert [r["ExpirationInDays"] for r in rules("IncomingBucket") if "ExpirationInDays" in r] == [
        90
    ]
    assert [
        r["ExpirationInDays"]
        for r in rules("AthenaResultsBucket")
        if "Prefix" not in r and "ExpirationInDays" in r
    ] == [7]
    # And the lake keeps its current objects (no whole-bucket expiry) but cleans old versions
    assert not [r for r in rules("LakeBucket") if "ExpirationInDays" in r and "Prefix" not in r]
    for lid in _of_type(tpl, "AWS::S3::Bucket"):
        assert any("NoncurrentVersionExpiration" in r for r in rules(lid)), lid
        assert all(r["Status"] == "Enabled" for r in rules(lid))
    # And the tables every dbt build replaces keep their old versions a day, not 30: the
    # warehouse is dbt's data dir in the lake bucket
    data_dir = next(
        v["Value"]
        for v in res.properties("DbtBuildProject")["Environment"]["EnvironmentVariables"]
        if v["Name"] == "DUFF_ATHENA_S3_DATA_DIR"
    )
    prefix = data_dir.split("/", 3)[3]
    assert data_dir.startswith(f"s3://{res.properties('LakeBucket')['BucketName']}/")
    assert [
        r["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for r in rules("LakeBucket")
        if r.get("Prefix") == prefix and "NoncurrentVersionExpiration" in r
    ] == [1]


# -- ingestion ----------------------------------------------------------------------------------


def test_incoming_bucket_triggers_ingestion_on_csv_without_a_dependency_cycle(tpl, res):
    bucket = tpl["Resources"]["IncomingBucket"]
    p = res.properties("IncomingBucket")
    configs = p["NotificationConfiguration"]["LambdaConfigurations"]
    # Then object creations ending in .csv invoke the ingestion function
    assert {c["Function"] for c in configs} == {res.attrs["IngestFunction"]["Arn"]}
    assert {c["Event"] for c in configs} == {"s3:ObjectCreated:*"}
    suffixes = {
        r["Value"] for c in configs for r in c["Filter"]["S3Key"]["Rules"] if r["Name"] == "suffix"
    }
    assert ".csv" in suffixes
    # And the invoke permission exists before the bucket validates its notification
    assert "IngestInvokePermission" in bucket["DependsOn"]
    perm = res.properties("IngestInvokePermission")
    # And the permission's computed SourceArn names exactly this bucket
    assert perm["SourceArn"] == f"arn:aws:s3:::{p['BucketName']}"
    assert perm["Principal"] == "s3.amazonaws.com" and perm["SourceAccount"] == "123456789012"
    assert perm["FunctionName"] == res.attrs["IngestFunction"]["Arn"]


def test_ingestion_function_environment_names_the_stack_lake_and_database(res):
    env = res.properties("IngestFunction")["Environment"]["Variables"]
    # Then DUFF_LAKE is the lake bucket (CONTRACT.md 2) and the database is the raw one
    assert env["DUFF_LAKE"] == f"s3://{resource_name(res, 'LakeBucket')}"
    assert env["DUFF_GLUE_DATABASE"] == resource_name(res, "RawDatabase")
    # And the quarantine alarm reads the namespace the function writes its EMF metrics to
    alarm = res.properties("IngestQuarantineAlarm")
    assert alarm["Namespace"] == env["DUFF_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "Status", "Value": "quarantined"}]


def test_ingestion_function_has_dlq_concurrency_memory_and_alarms(tpl, res):
    p = res.properties("IngestFunction")
    # Then failed asynchronous events go to an encrypted SQS queue
    assert p["DeadLetterConfig"]["TargetArn"] == res.attrs["IngestDeadLetterQueue"]["Arn"]
    assert res.properties("IngestDeadLetterQueue")["KmsMasterKeyId"] == res.refs["DataKey"]
    # And concurrency is reserved, memory sized from the benchmark, the timeout the maximum
    assert p["ReservedConcurrentExecutions"] == 5
    assert p["MemorySize"] == 2048 and p["Timeout"] == 900
    # And alarms watch errors and the DLQ depth, publishing to the alarm topic
    errors = res.properties("IngestErrorsAlarm")
    assert errors["MetricName"] == "Errors"
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": res.refs["IngestFunction"]}]
    dlq = res.properties("IngestDlqDepthAlarm")
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Dimensions"][0]["Value"] == resource_name(res, "IngestDeadLetterQueue")


# -- IAM ----------------------------------------------------------------------------------------


def test_no_role_allows_wildcard_actions_or_resources_beyond_tracing(tpl, res):
    for lid in _of_type(tpl, "AWS::IAM::Role"):
        for st in _statements(res, lid):
            if st["Effect"] != "Allow":
                continue
            # Then no statement allows every action of a service
            assert not [a for a in st["Action"] if a == "*" or a.endswith(":*")], (lid, st)
            # And Resource "*" only appears for X-Ray and Lake Formation's credential vending and
            # tagging, which have no resource-level permissions (LF checks its own grants)
            if "*" in st["Resource"]:
                assert all(
                    a.startswith(("xray:", "lakeformation:", "redshift-data:DescribeStatement"))
                    for a in st["Action"]
                ), (
                    lid,
                    st,
                )


def test_each_role_writes_only_its_own_lake_prefixes(res):
    lake = resource_name(res, "LakeBucket")
    incoming = resource_name(res, "IncomingBucket")
    obj = f"arn:aws:s3:::{lake}/{{}}"
    # Then ingestion writes raw/, rejects/, manifests/, quarantine/, _staging/, _state/ only
    for key in [
        "raw/orders/pa_date=2024-03-01/x-0.parquet",
        "rejects/orders/ingest_date=2024-03-01/x.parquet",
        "manifests/x.json",
        "quarantine/x/orders.csv",
        "_staging/x/part-0.parquet",
        "_state/sources/ab12/cd34.json",
    ]:
        assert _allowed(res, "IngestRole", "s3:PutObject", obj.format(key)), key
    for key in ["warehouse/fact_orders/x.parquet", "dbt-docs/index.html", "other.txt"]:
        assert not _allowed(res, "IngestRole", "s3:PutObject", obj.format(key)), key
    assert _allowed(res, "IngestRole", "s3:GetObject", f"arn:aws:s3:::{incoming}/a b.csv")
    assert _allowed(res, "IngestRole", "s3:ListBucket", f"arn:aws:s3:::{incoming}")
    assert not _allowed(res, "IngestRole", "s3:PutObject", f"arn:aws:s3:::{incoming}/a.csv")
    # And the dbt build reads raw/ but writes only warehouse/ and dbt-docs/
    assert _allowed(res, "DbtBuildRole", "s3:GetObject", obj.format("raw/orders/p/x.parquet"))
    for action in S3_WRITE - {"s3:*"}:
        assert not _allowed(res, "DbtBuildRole", action, obj.format("raw/orders/p/x.parquet"))
        assert not _allowed(res, "DbtBuildRole", action, obj.format("manifests/x.json"))
    assert _allowed(res, "DbtBuildRole", "s3:PutObject", obj.format("warehouse/t/x.parquet"))
    assert _allowed(res, "DbtBuildRole", "s3:PutObject", obj.format("dbt-docs/index.html"))
    # And the API writes nothing to the lake, only reads the warehouse
    for action in S3_WRITE - {"s3:*"}:
        assert not _allowed(res, "ApiRole", action, obj.format("warehouse/t/x.parquet"))
    assert _allowed(res, "ApiRole", "s3:GetObject", obj.format("warehouse/t/x.parquet"))
    assert not _allowed(res, "ApiRole", "s3:GetObject", obj.format("raw/orders/p/x.parquet"))


def test_each_role_queries_only_through_its_own_work_group_and_schema(res):
    arn = "arn:aws:athena:us-east-1:123456789012:workgroup/{}"
    api_wg, dbt_wg = resource_name(res, "ApiWorkGroup"), resource_name(res, "DbtWorkGroup")
    assert _allowed(res, "ApiRole", "athena:StartQueryExecution", arn.format(api_wg))
    assert not _allowed(res, "ApiRole", "athena:StartQueryExecution", arn.format(dbt_wg))
    assert _allowed(res, "DbtBuildRole", "athena:StartQueryExecution", arn.format(dbt_wg))
    assert not _allowed(res, "DbtBuildRole", "athena:StartQueryExecution", arn.format(api_wg))
    assert not _allowed(res, "IngestRole", "athena:StartQueryExecution", arn.format(api_wg))
    table = "arn:aws:glue:us-east-1:123456789012:table/{}/{}"
    raw, analytics = resource_name(res, "RawDatabase"), resource_name(res, "AnalyticsDatabase")
    # Then ingestion may create and extend raw_orders only
    assert _allowed(res, "IngestRole", "glue:BatchCreatePartition", table.format(raw, "raw_orders"))
    assert not _allowed(res, "IngestRole", "glue:CreateTable", table.format(analytics, "x"))
    assert not _allowed(res, "IngestRole", "glue:DeleteTable", table.format(raw, "raw_orders"))
    # And dbt owns the analytics schema but only reads raw_orders
    assert _allowed(res, "DbtBuildRole", "glue:CreateTable", table.format(analytics, "fact_orders"))
    assert _allowed(res, "DbtBuildRole", "glue:GetPartitions", table.format(raw, "raw_orders"))
    assert not _allowed(res, "DbtBuildRole", "glue:UpdateTable", table.format(raw, "raw_orders"))
    # And the API only reads the analytics schema
    assert _allowed(res, "ApiRole", "glue:GetTable", table.format(analytics, "mart_orders"))
    assert not _allowed(res, "ApiRole", "glue:UpdateTable", table.format(analytics, "mart_orders"))
    assert not _allowed(res, "ApiRole", "glue:GetTable", table.format(raw, "raw_orders"))


def test_both_landing_roles_keep_the_ingest_tables_and_dbt_reads_them(res):
    # Given the Glue calls ingestion.glue makes for ingest_manifests and ingest_rejects
    table = "arn:aws:glue:us-east-1:123456789012:table/{}/{}"
    raw = resource_name(res, "RawDatabase")
    lake = resource_name(res, "LakeBucket")
    landing_calls = ["glue:GetTable", "glue:CreateTable", "glue:BatchCreatePartition"]
    for name in ("ingest_manifests", "ingest_rejects"):
        # Then the S3 ingestion and the real-time landing (same publish path) may make them
        for role in ("IngestRole", "RealtimeLakeRole"):
            for action in landing_calls:
                assert _allowed(res, role, action, table.format(raw, name)), (role, action, name)
            assert not _allowed(res, role, "glue:DeleteTable", table.format(raw, name)), role
        # And the dbt build reads the tables (their data too) but cannot change them
        assert _allowed(res, "DbtBuildRole", "glue:GetPartitions", table.format(raw, name))
        assert not _allowed(res, "DbtBuildRole", "glue:CreateTable", table.format(raw, name))
    for key in ("manifests/x.json", "rejects/orders/ingest_date=2024-03-01/x.parquet"):
        assert _allowed(res, "DbtBuildRole", "s3:GetObject", f"arn:aws:s3:::{lake}/{key}"), key
    # And no other table of the raw database is opened up by them
    assert not _allowed(res, "IngestRole", "glue:CreateTable", table.format(raw, "ingest_other"))


# -- Athena, API, dbt ---------------------------------------------------------------------------


def test_work_groups_enforce_their_configuration_with_a_cutoff_and_kms(tpl, res):
    results = resource_name(res, "AthenaResultsBucket")
    for lid, prefix in (("ApiWorkGroup", "api"), ("DbtWorkGroup", "dbt")):
        cfg = res.properties(lid)["WorkGroupConfiguration"]
        # dbt's too: its tables are Iceberg, which keep their location under an enforced
        # result location (issue 12 defect 2; the Athena twin's build test proves it)
        assert cfg["EnforceWorkGroupConfiguration"] is True
        assert cfg["BytesScannedCutoffPerQuery"] >= 10 * 1024 * 1024
        out = cfg["ResultConfiguration"]
        assert out["OutputLocation"] == f"s3://{results}/{prefix}/"
        assert out["EncryptionConfiguration"] == {
            "EncryptionOption": "SSE_KMS",
            "KmsKey": res.attrs["DataKey"]["Arn"],
        }


def test_api_gateway_opens_exactly_the_routes_the_contract_opens(tpl, res):
    from api.declarations import from_project
    from api.routes import Router

    # Given the methods of the REST API and the paths of their resources
    paths = {"r00t1d": ""}
    resources = {lid: res.properties(lid) for lid in _of_type(tpl, "AWS::ApiGateway::Resource")}
    while len(paths) <= len(resources):
        for lid, p in resources.items():
            parent = p["ParentId"]
            if parent in paths:
                paths[lid + "-id"] = paths[parent] + "/" + p["PathPart"]
        res.refs.update({lid: lid + "-id" for lid in resources})
        resources = {lid: res.properties(lid) for lid in resources}
    methods = {}
    for lid in _of_type(tpl, "AWS::ApiGateway::Method"):
        p = res.properties(lid)
        methods[(paths[p["ResourceId"]] or "/", p["HttpMethod"])] = p["ApiKeyRequired"]
    # Then the open routes are the contract's open ones and everything else needs the key
    open_paths = {path for (path, _), needs_key in methods.items() if not needs_key}
    assert open_paths == {"/", "/health", "/openapi.json", "/static/{proxy+}"}
    assert methods[("/{proxy+}", "ANY")] is True
    for route in Router(from_project(ROOT)).endpoints:
        if route.auth:
            assert route.path not in open_paths, route.path
        else:
            assert route.path in open_paths, route.path
    # And the usage plan throttles and caps, the stage writes access logs
    plan = res.properties("UsagePlan")
    assert plan["Throttle"] == {"RateLimit": 20, "BurstLimit": 40}
    assert plan["Quota"] == {"Limit": 100000, "Period": "DAY"}
    stage = res.properties("ApiStage")
    assert (
        stage["AccessLogSetting"]["DestinationArn"] == res.attrs["ApiGatewayAccessLogGroup"]["Arn"]
    )


def test_api_function_reads_the_marts_and_the_key_the_gateway_checks(res):
    env = res.properties("ApiFunction")["Environment"]["Variables"]
    assert env["DUFF_ATHENA_WORK_GROUP"] == resource_name(res, "ApiWorkGroup")
    assert env["DUFF_ATHENA_SCHEMA"] == resource_name(res, "AnalyticsDatabase")
    assert env["DUFF_API_BACKEND"] == "athena"
    # Then the app and API Gateway use one secret
    assert env["DUFF_API_KEY_SECRET_ARN"] == res.refs["ApiKeySecret"]
    key = res.properties("ApiKey")
    assert (
        key["Value"]
        == f"{{{{resolve:secretsmanager:{res.refs['ApiKeySecret']}:SecretString:api_key}}}}"
    )
    alarms = {res.properties(a)["MetricName"] for a in ("ApiErrorsAlarm", "ApiLatencyAlarm")}
    assert alarms == {"5XXError", "Latency"}


def test_codebuild_sets_every_variable_profiles_yml_reads_for_athena(tpl, res):
    # Given the env_var() names of the athena target in profiles.yml
    profiles = (ROOT / "profiles.yml").read_text(encoding="utf-8")
    athena = profiles[profiles.index("athena:") :]
    wanted = set(re.findall(r"env_var\('(DUFF_[A-Z_]+)'", athena)) | {"DUFF_GLUE_DATABASE"}
    project = res.properties("DbtBuildProject")
    env = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    # Then CodeBuild sets each of them, to this stack's resources
    assert wanted <= set(env), wanted - set(env)
    assert env["DUFF_DBT_TARGET"] == "athena"
    assert env["DUFF_ATHENA_WORK_GROUP"] == resource_name(res, "DbtWorkGroup")
    assert env["DUFF_ATHENA_SCHEMA"] == resource_name(res, "AnalyticsDatabase")
    assert env["DUFF_GLUE_DATABASE"] == resource_name(res, "RawDatabase")
    assert env["DUFF_ATHENA_S3_DATA_DIR"] == f"s3://{resource_name(res, 'LakeBucket')}/warehouse/"
    # And it runs the repository's buildspec.yml, one build at a time
    assert project["Source"]["BuildSpec"] == "buildspec.yml"
    assert (ROOT / "buildspec.yml").is_file()
    assert project["ConcurrentBuildLimit"] == 1


def test_dbt_build_is_scheduled_started_after_landing_and_alarmed(tpl, res):
    # (both go through the starter that coalesces builds: test_build_starter.py)
    project_arn = res.attrs["DbtBuildStarter"]["Arn"]
    schedule = res.properties("DbtScheduleRule")
    assert schedule["ScheduleExpression"].startswith(("cron(", "rate("))
    assert [t["Arn"] for t in schedule["Targets"]] == [project_arn]
    landing = res.properties("DbtOnLandingRule")
    # Then a manifest written to the lake (the last write of every landing) starts the build
    assert landing["EventPattern"]["detail"] == {
        "bucket": {"name": [resource_name(res, "LakeBucket")]},
        "object": {"key": [{"prefix": "manifests/"}]},
    }
    assert landing["State"] == "ENABLED"
    assert [t["Arn"] for t in landing["Targets"]] == [project_arn]
    lake = res.properties("LakeBucket")
    assert lake["NotificationConfiguration"]["EventBridgeConfiguration"] == {
        "EventBridgeEnabled": True
    }
    alarm = res.properties("DbtBuildFailedAlarm")
    assert alarm["MetricName"] == "FailedBuilds"
    assert alarm["AlarmActions"] == [res.refs["AlarmTopic"]]
    # And no success for hours alarms whatever the cause: no build at all is no data point
    silent = res.properties("DbtNoSuccessAlarm")
    project = [{"Name": "ProjectName", "Value": res.refs["DbtBuildProject"]}]
    assert (silent["MetricName"], silent["Dimensions"]) == ("SucceededBuilds", project)
    assert (silent["ComparisonOperator"], silent["Threshold"]) == ("LessThanThreshold", 1)
    assert silent["TreatMissingData"] == "breaching"
    hours = int(silent["EvaluationPeriods"]) * silent["Period"] / 3600
    assert int(silent["DatapointsToAlarm"]) == int(silent["EvaluationPeriods"])
    # (CloudWatch: at most 7 days of evaluation for periods of an hour or more)
    parameter = tpl["Parameters"]["DbtMaxHoursWithoutSuccess"]
    assert silent["Period"] >= 3600 and silent["Period"] * parameter["MaxValue"] <= 604800
    # (longer than two scheduled builds: one failed build alone is the other alarm's)
    assert hours > 2 * 6 and schedule["ScheduleExpression"] == "cron(0 */6 * * ? *)"
    starter = res.properties("DbtBuildStarterErrorsAlarm")
    assert (starter["Namespace"], starter["MetricName"]) == ("AWS/Lambda", "Errors")
    assert starter["Dimensions"] == [{"Name": "FunctionName", "Value": res.refs["DbtBuildStarter"]}]


def test_every_alarm_notifies_the_topic(tpl, res):
    alarms = _of_type(tpl, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 7
    for lid in alarms:
        assert res.properties(lid)["AlarmActions"] == [res.refs["AlarmTopic"]], lid


def test_every_checkov_skip_is_justified_inline(tpl):
    skips = [
        (lid, skip)
        for lid, r in tpl["Resources"].items()
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for lid, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (lid, skip)
        assert len(skip.get("comment", "").split()) >= 6, f"{lid}: {skip['id']} needs a reason"


def test_gateway_made_errors_are_json_in_the_contract_error_shape(tpl, res):
    import json

    responses = _of_type(tpl, "AWS::ApiGateway::GatewayResponse")
    assert {res.properties(r)["ResponseType"] for r in responses} >= {
        "INVALID_API_KEY",
        "THROTTLED",
        "QUOTA_EXCEEDED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    for lid in responses:
        template = res.properties(lid)["ResponseTemplates"]["application/json"]
        # When API Gateway fills in the message ($context.error.messageString is a quoted string)
        body = template.replace("$context.error.messageString", json.dumps('say "why"'))
        # Then the body is JSON of the form {"error": {"code": ..., "message": ...}}
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message"} and error["code"] and error["message"], lid
    forbidden = next(r for r in responses if res.properties(r)["ResponseType"] == "INVALID_API_KEY")
    assert res.properties(forbidden)["StatusCode"] == "403"


def test_the_figures_function_leaves_a_batch_time_before_the_stores_write_margin(res):
    """realtime.dynamo_store starts no write with less than WRITE_MARGIN_S left, so a
    timeout that close to the margin would fail every batch (and one below it, all of them)."""
    from realtime.dynamo_store import WRITE_MARGIN_S

    p = res.properties("RealtimeFunction")
    assert p["Environment"]["Variables"]["DUFF_REALTIME_CONSUMER"] == "figures"
    assert p["Timeout"] >= 3 * WRITE_MARGIN_S, (p["Timeout"], WRITE_MARGIN_S)
