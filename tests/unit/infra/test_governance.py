"""Issue 17 in infra/template.yaml, resolved offline: the audit trail, the cost budget and the
operations dashboard, each checked against what it must see or reach (the metrics the code
really emits, the buckets it must log, the topic it must reach through its policies)."""

from __future__ import annotations

import json

import pytest

from api.metrics import Metrics
from infra.cfn import load_template, offline_resolver
from infra.iam import parse_statements
from ingestion.metrics import emf_record
from realtime.metrics import emf as realtime_emf
from tests.aws_audit import AUDIT_PARAMETERS

# The template resolved as the call audit resolves it (EnvironmentName dev).
PARAMS = AUDIT_PARAMETERS


@pytest.fixture(scope="module")
def res():
    return offline_resolver(load_template(), PARAMS)


def test_the_trail_validates_encrypts_and_logs_writes_to_the_lake_and_incoming_buckets(res):
    trail = res.properties("Trail")
    assert trail["EnableLogFileValidation"] is True and trail["IsLogging"] is True
    assert trail["KMSKeyId"] == res.attrs["TrailKey"]["Arn"]
    assert trail["S3BucketName"] == res.refs["TrailBucket"]
    assert "EventSelectors" not in trail  # advanced selectors only: a trail takes one kind
    selectors = {s["Name"]: s["FieldSelectors"] for s in trail["AdvancedEventSelectors"]}
    data = next(
        fs for fs in selectors.values() if {"Field": "eventCategory", "Equals": ["Data"]} in fs
    )
    fields = {f["Field"]: f for f in data}
    assert fields["readOnly"]["Equals"] == ["false"]
    assert fields["resources.type"]["Equals"] == ["AWS::S3::Object"]
    assert set(fields["resources.ARN"]["StartsWith"]) == {
        f"arn:aws:s3:::{res.properties('LakeBucket')['BucketName']}/",
        f"arn:aws:s3:::{res.properties('IncomingBucket')['BucketName']}/",
    }
    assert any(
        {"Field": "eventCategory", "Equals": ["Management"]} in fs for fs in selectors.values()
    )


def test_cloudtrail_may_write_to_its_bucket_and_use_its_key_for_this_trail_only(res):
    trail_arn = (
        f"arn:aws:cloudtrail:us-east-1:123456789012:trail/{res.properties('Trail')['TrailName']}"
    )
    bucket = res.properties("TrailBucket")["BucketName"]
    policy = parse_statements(
        res.properties("TrailBucketPolicy")["PolicyDocument"], "trail bucket", resource_policy=True
    )
    writes = next(st for st in policy if st.sid == "CloudTrailWrites")
    assert writes.principals == ("Service:cloudtrail.amazonaws.com",)
    assert writes.resources == (f"arn:aws:s3:::{bucket}/AWSLogs/123456789012/*",)
    assert writes.condition["StringEquals"]["aws:SourceArn"] == trail_arn
    assert writes.condition["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    # And the bucket refuses plain HTTP, and keeps files for the retention, archived at 90 days
    assert any(
        st.effect == "Deny" and st.condition == {"Bool": {"aws:SecureTransport": "false"}}
        for st in policy
    )
    (rule,) = res.properties("TrailBucket")["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 2557 and rule["Transitions"][0]["TransitionInDays"] == 90
    key = res.properties("TrailKey")
    assert key["EnableKeyRotation"] is True
    encrypt = next(
        st for st in key["KeyPolicy"]["Statement"] if st["Sid"] == "CloudTrailEncryptsThisTrail"
    )
    assert encrypt["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert res.properties("Trail")["TrailName"] == trail_arn.rsplit("/", 1)[1]


def test_the_budget_alerts_the_topic_at_80_percent_forecast_and_100_actual(res):
    props = res.properties("CostBudget")
    assert props["Budget"]["BudgetLimit"] == {"Amount": 100, "Unit": "USD"}
    assert props["Budget"]["TimeUnit"] == "MONTHLY" and props["Budget"]["BudgetType"] == "COST"
    got = {
        (n["Notification"]["NotificationType"], n["Notification"]["Threshold"])
        for n in props["NotificationsWithSubscribers"]
    }
    assert got == {("FORECASTED", 80), ("ACTUAL", 100)}
    topic = res.refs["AlarmTopic"]
    for n in props["NotificationsWithSubscribers"]:
        assert n["Subscribers"] == [{"SubscriptionType": "SNS", "Address": topic}]
    # And AWS Budgets may publish to the topic and use its (customer) key
    topic_policy = res.properties("AlarmTopicPolicy")["PolicyDocument"]["Statement"]
    assert any(
        st["Principal"] == {"Service": "budgets.amazonaws.com"} and st["Action"] == "sns:Publish"
        for st in topic_policy
    )
    key_policy = res.properties("DataKey")["KeyPolicy"]["Statement"]
    assert any(
        st["Principal"] == {"Service": "budgets.amazonaws.com"}
        and "kms:GenerateDataKey*" in st["Action"]
        for st in key_policy
    )


def _emitted() -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) the ingestion and the API really emit."""
    out = set()
    env = offline_resolver(load_template(), PARAMS).properties("IngestFunction")
    namespace = env["Environment"]["Variables"]["DUFF_METRICS_NAMESPACE"]
    for status in ("landed", "skipped", "quarantined"):
        manifest = {"status": status, "rows_in": 3, "valid": 2, "rejected": {"invalid": 1}}
        doc = emf_record(manifest, bytes_in=10, seconds=1.0, namespace=namespace)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        for dims in directive["Dimensions"]:
            for metric in directive["Metrics"]:
                out.add(
                    (directive["Namespace"], metric["Name"], tuple((d, str(doc[d])) for d in dims))
                )
    realtime_env = offline_resolver(load_template(), PARAMS).properties("RealtimeFunction")
    doc = realtime_emf(
        realtime_env["Environment"]["Variables"]["DUFF_METRICS_NAMESPACE"],
        "shardId-000000000000",
        {"EventsIn": (3, "Count"), "Valid": (2, "Count"), "Rejected": (1, "Count"),
         "LagSeconds": (0.5, "Seconds")},
    )  # fmt: skip
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    for dims in directive["Dimensions"]:
        for metric in directive["Metrics"]:
            out.add((directive["Namespace"], metric["Name"], tuple((d, str(doc[d])) for d in dims)))
    metrics = Metrics()
    metrics.count("CacheHits")
    doc = metrics.emf()
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    for dims in directive["Dimensions"]:
        for metric in directive["Metrics"]:
            out.add((directive["Namespace"], metric["Name"], tuple((d, str(doc[d])) for d in dims)))
    return out


def _expand(metrics: list[list]) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Dashboard metric arrays with CloudWatch's "." and "..." shorthands expanded."""
    out, previous = [], None
    for row in metrics:
        parts = [p for p in row if not isinstance(p, dict)]
        if not parts:
            continue  # a math expression
        if parts[0] == "...":
            parts = previous[: len(previous) - len(parts) + 1] + parts[1:]
        else:
            parts = [previous[i] if p == "." else p for i, p in enumerate(parts)]
        previous = parts
        namespace, name, *dims = parts
        out.append((namespace, name, tuple(zip(dims[::2], dims[1::2], strict=True))))
    return out


def test_the_dashboard_plots_metrics_the_code_emits_and_the_services_publish(res):
    body = json.loads(res.properties("OperationsDashboard")["DashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert len(titles) == 8
    emitted = _emitted()
    functions = [
        res.refs[f] for f in ("IngestFunction", "RealtimeFunction", "RealtimeLakeFunction")
    ]
    project = res.refs["DbtBuildProject"]
    api = res.properties("RestApi")["Name"]
    stage = res.refs["ApiStage"]
    seen_namespaces = set()
    for widget in body["widgets"]:
        for namespace, name, dims in _expand(widget["properties"]["metrics"]):
            seen_namespaces.add(namespace)
            if namespace.startswith("Duff/"):
                # Then every custom metric is one the code emits, with these dimensions
                assert (namespace, name, dims) in emitted, (namespace, name, dims)
            else:
                # And every AWS metric names this stack's function, project or API stage
                assert dict(dims) in (
                    *({"FunctionName": function} for function in functions),
                    {"ProjectName": project},
                    {"ApiName": api, "Stage": stage},
                ), (namespace, name, dims)
    # And the real-time consumers' lag is there: each consumer's iterator age, and the age
    # of the newest event the figures consumer applied (the lag alarm's metric, in seconds)
    (lag,) = [w["properties"] for w in body["widgets"] if "lag" in w["properties"]["title"]]
    plotted = {(name, dims) for _ns, name, dims in _expand(lag["metrics"])}
    assert plotted == {
        ("LagSeconds", ()),
        ("IteratorAge", (("FunctionName", res.refs["RealtimeFunction"]),)),
        ("IteratorAge", (("FunctionName", res.refs["RealtimeLakeFunction"]),)),
    }
    assert seen_namespaces == {
        "Duff/dev/Ingestion",
        "Duff/dev/Realtime",
        "Duff/Api",
        "AWS/Lambda",
        "AWS/CodeBuild",
        "AWS/ApiGateway",
    }
