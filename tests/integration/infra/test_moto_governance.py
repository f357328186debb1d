"""The governance resources of infra/template.yaml (issue 17) deployed to the moto server from
their resolved properties, and read back through the services' own APIs: what moto validates
(shapes, names, references) and keeps. Not covered by moto 5: LF-tag associations, Lambda
execution (the build starter runs in test_build_starter.py), CloudFormation-only properties."""

from __future__ import annotations

import json
import uuid

import boto3

from infra.cfn import load_template, offline_resolver

ACCOUNT = "123456789012"
WORK_GROUPS = ["ApiWorkGroup", "DbtWorkGroup", "AnalystsWorkGroup", "DataScienceWorkGroup"]


def test_work_groups_trail_budget_dashboard_and_lake_formation_deploy_to_moto(aws_env):
    env = "g" + uuid.uuid4().hex[:10]
    template = load_template()
    res = offline_resolver(
        template,
        {
            "EnvironmentName": env,
            "ArtifactBucket": f"duff-{env}-artifacts",
            "IngestCodeKey": "i.zip",
            "ApiCodeKey": "a.zip",
            "DbtSourceKey": "d.zip",
        },
        account_id=ACCOUNT,
    )
    s3, kms = boto3.client("s3"), boto3.client("kms")
    for lid in ("DataKey", "TrailKey"):
        key = kms.create_key(Description=res.properties(lid)["Description"])["KeyMetadata"]
        res.refs[lid], res.attrs[lid]["Arn"] = key["KeyId"], key["Arn"]
    for lid in ("LakeBucket", "IncomingBucket", "AthenaResultsBucket", "TrailBucket"):
        s3.create_bucket(Bucket=res.properties(lid)["BucketName"])

    # Athena: one enforced work group per audience, each with its prefix and cutoff
    athena = boto3.client("athena")
    for lid in WORK_GROUPS:
        p = res.properties(lid)
        athena.create_work_group(
            Name=p["Name"], Description=p["Description"], Configuration=p["WorkGroupConfiguration"]
        )
    configs = {
        lid: athena.get_work_group(WorkGroup=res.refs[lid])["WorkGroup"]["Configuration"]
        for lid in WORK_GROUPS
    }
    locations = {c["ResultConfiguration"]["OutputLocation"] for c in configs.values()}
    assert len(locations) == 4
    assert {c["BytesScannedCutoffPerQuery"] for c in configs.values()} == {
        1073741824,
        10737418240,
        107374182400,
    }
    # every one enforced, dbt's included (its tables are Iceberg: see the template's note)
    assert all(c["EnforceWorkGroupConfiguration"] for c in configs.values()), configs

    # CloudTrail: the trail with its advanced selectors, logging
    trail = res.properties("Trail")
    cloudtrail = boto3.client("cloudtrail")
    cloudtrail.create_trail(
        Name=trail["TrailName"],
        S3BucketName=trail["S3BucketName"],
        KmsKeyId=trail["KMSKeyId"],
        EnableLogFileValidation=trail["EnableLogFileValidation"],
        IncludeGlobalServiceEvents=trail["IncludeGlobalServiceEvents"],
        IsMultiRegionTrail=trail["IsMultiRegionTrail"],
    )
    cloudtrail.put_event_selectors(
        TrailName=trail["TrailName"], AdvancedEventSelectors=trail["AdvancedEventSelectors"]
    )
    cloudtrail.start_logging(Name=trail["TrailName"])
    got = cloudtrail.get_trail(Name=trail["TrailName"])["Trail"]
    assert (
        got["LogFileValidationEnabled"] is True and got["KmsKeyId"] == res.attrs["TrailKey"]["Arn"]
    )
    assert cloudtrail.get_trail_status(Name=trail["TrailName"])["IsLogging"] is True
    selectors = cloudtrail.get_event_selectors(TrailName=trail["TrailName"])
    assert selectors["AdvancedEventSelectors"] == trail["AdvancedEventSelectors"]

    # Budgets: the monthly budget and its two notifications to the alarm topic
    budget = res.properties("CostBudget")
    budgets = boto3.client("budgets")
    spec = {**budget["Budget"], "BudgetLimit": {"Amount": "100", "Unit": "USD"}}
    budgets.create_budget(
        AccountId=ACCOUNT,
        Budget=spec,
        NotificationsWithSubscribers=budget["NotificationsWithSubscribers"],
    )
    notes = budgets.describe_notifications_for_budget(
        AccountId=ACCOUNT, BudgetName=spec["BudgetName"]
    )
    assert sorted((n["NotificationType"], n["Threshold"]) for n in notes["Notifications"]) == [
        ("ACTUAL", 100.0),
        ("FORECASTED", 80.0),
    ]

    # CloudWatch: the dashboard body is accepted as it is
    dashboard = res.properties("OperationsDashboard")
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_dashboard(
        DashboardName=dashboard["DashboardName"], DashboardBody=dashboard["DashboardBody"]
    )
    body = cloudwatch.get_dashboard(DashboardName=dashboard["DashboardName"])["DashboardBody"]
    stored = json.loads(body)["widgets"]
    assert [w["properties"]["title"] for w in stored] == [
        w["properties"]["title"] for w in json.loads(dashboard["DashboardBody"])["widgets"]
    ]
    assert len(stored) == 8 and "Real-time consumer lag (s)" in {
        w["properties"]["title"] for w in stored
    }

    # Lake Formation: the two locations, the tier tag, every grant, read back per principal
    lf = boto3.client("lakeformation")
    registered = set()
    for lid, r in template["Resources"].items():
        if r["Type"] == "AWS::LakeFormation::Resource":
            p = res.properties(lid)
            lf.register_resource(
                ResourceArn=p["ResourceArn"],
                RoleArn=p["RoleArn"],
                UseServiceLinkedRole=p["UseServiceLinkedRole"],
            )
            registered.add(p["ResourceArn"])
    assert {r["ResourceArn"] for r in lf.list_resources()["ResourceInfoList"]} >= registered
    tag = res.properties("TierTag")
    lf.create_lf_tag(CatalogId=ACCOUNT, TagKey=tag["TagKey"], TagValues=tag["TagValues"])
    assert lf.get_lf_tag(CatalogId=ACCOUNT, TagKey=tag["TagKey"])["TagValues"] == tag["TagValues"]
    expected: dict[str, int] = {}
    for lid, r in template["Resources"].items():
        if r["Type"] == "AWS::LakeFormation::PrincipalPermissions":
            p = res.properties(lid)
            lf.grant_permissions(
                Principal=p["Principal"],
                Resource=p["Resource"],
                Permissions=p["Permissions"],
                PermissionsWithGrantOption=p["PermissionsWithGrantOption"],
            )
            principal = p["Principal"]["DataLakePrincipalIdentifier"]
            expected[principal] = expected.get(principal, 0) + 1
    grantees = ["IngestRole", "RealtimeLakeRole", "DbtBuildRole", "ApiRole", "AnalystsRole"]
    grantees.append("DataScienceRole")
    assert set(expected) == {res.attrs[role]["Arn"] for role in grantees}
    listed: dict[str, int] = {}
    token = None
    while True:
        page = lf.list_permissions(**({"NextToken": token} if token else {}))
        for p in page["PrincipalResourcePermissions"]:
            principal = p["Principal"]["DataLakePrincipalIdentifier"]
            if principal in expected:
                listed[principal] = listed.get(principal, 0) + 1
        token = page.get("NextToken")
        if not token:
            break
    assert listed == expected

    # SSM: the follow-up flag of the build starter
    flag = res.properties("DbtBuildPending")
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=flag["Name"], Value=flag["Value"], Type=flag["Type"])
    assert ssm.get_parameter(Name=flag["Name"])["Parameter"]["Value"] == "0"
