"""Each role's reach, read from every IAM grant of infra/template.yaml and evaluated with
infra/iam.py (issue 17): which lake areas it reads and writes, which tables it reads and
changes, which Athena work group it queries through. The table below is the intended reach;
a grant that widens or narrows it, or a role missing from it, fails."""

from __future__ import annotations

import pytest

from infra.cfn import load_template, offline_resolver
from infra.iam import Request, policies_from_template

PARAMS = {
    "EnvironmentName": "dev",
    "ArtifactBucket": "duff-artifacts-123456789012-us-east-1",
    "IngestCodeKey": "i.zip",
    "ApiCodeKey": "a.zip",
    "DbtSourceKey": "d.zip",
}
LAKE_AREAS = [
    "raw/orders/",
    "rejects/orders/",
    "manifests/",
    "quarantine/",
    "_staging/",
    "_state/sources/",
    "_state/claims/",
    "warehouse/",
    "dbt-docs/",
]
INGEST_WRITES = {a for a in LAKE_AREAS if a not in ("warehouse/", "dbt-docs/")}
WORK_GROUPS = ["ApiWorkGroup", "DbtWorkGroup", "AnalystsWorkGroup", "DataScienceWorkGroup"]
TABLES = ["raw.raw_orders", "analytics.fact_orders", "analytics.mart_daily_sales"]

#: role -> (lake areas read, lake areas written, tables read, tables changed, work groups)
REACH: dict[str, tuple[set[str], set[str], set[str], set[str], set[str]]] = {
    "IngestRole": (INGEST_WRITES, INGEST_WRITES, {"raw.raw_orders"}, {"raw.raw_orders"}, set()),
    "DbtBuildRole": (
        {"raw/orders/", "warehouse/", "dbt-docs/"},
        {"warehouse/", "dbt-docs/"},
        set(TABLES),
        {"analytics.fact_orders", "analytics.mart_daily_sales"},
        {"DbtWorkGroup"},
    ),
    "ApiRole": (
        {"warehouse/"},
        set(),
        {"analytics.fact_orders", "analytics.mart_daily_sales"},
        set(),
        {"ApiWorkGroup"},
    ),
    "AnalystsRole": (
        {"warehouse/"},
        set(),
        {"analytics.fact_orders", "analytics.mart_daily_sales"},
        set(),
        {"AnalystsWorkGroup"},
    ),
    "DataScienceRole": (
        {"warehouse/", "raw/orders/"},
        set(),
        set(TABLES),
        set(),
        {"DataScienceWorkGroup"},
    ),
    # API Gateway's account-wide logging role: an AWS managed policy, no data access.
    "ApiGatewayCloudWatchRole": (set(), set(), set(), set(), set()),
    # Starts the dbt build and keeps the follow-up flag (test_build_starter.py), no data.
    "DbtBuildStarterRole": (set(), set(), set(), set(), set()),
}
NOT_AUDITABLE = {"ApiGatewayCloudWatchRole"}  # managed policy text not in the template


@pytest.fixture(scope="module")
def world():
    template = load_template()
    res = offline_resolver(template, PARAMS)
    return template, res, policies_from_template(res)


def allowed(world, role: str, action: str, resource: str, **context) -> bool:
    _, res, policies = world
    principal = res.attrs[role]["Arn"]
    request = Request(principal, action, resource, {"aws:SecureTransport": True, **context})
    return policies.evaluate(request).allowed


def test_every_role_of_the_template_has_a_row_in_the_reach_table(world):
    template, _, _ = world
    roles = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == set(REACH)


@pytest.mark.parametrize("role", sorted(set(REACH) - NOT_AUDITABLE))
def test_each_role_reaches_exactly_its_row(world, role):
    _, res, _ = world
    reads, writes, tables_read, tables_changed, work_groups = REACH[role]
    lake = res.properties("LakeBucket")["BucketName"]
    got_reads = {
        a for a in LAKE_AREAS if allowed(world, role, "s3:GetObject", f"arn:aws:s3:::{lake}/{a}x")
    }
    got_writes = {
        a for a in LAKE_AREAS if allowed(world, role, "s3:PutObject", f"arn:aws:s3:::{lake}/{a}x")
    }
    listed = {
        a
        for a in LAKE_AREAS
        if allowed(world, role, "s3:ListBucket", f"arn:aws:s3:::{lake}", **{"s3:prefix": a})
    }
    glue = "arn:aws:glue:us-east-1:123456789012:table/{}/{}"
    names = {
        "raw": res.properties("RawDatabase")["DatabaseInput"]["Name"],
        "analytics": res.properties("AnalyticsDatabase")["DatabaseInput"]["Name"],
    }

    def table_arn(t):
        db, name = t.split(".")
        return glue.format(names[db], name)

    got_tables_read = {t for t in TABLES if allowed(world, role, "glue:GetTable", table_arn(t))}
    got_tables_changed = {
        t
        for t in TABLES
        if allowed(world, role, "glue:UpdateTable", table_arn(t))
        or allowed(world, role, "glue:BatchCreatePartition", table_arn(t))
    }
    wg_arn = "arn:aws:athena:us-east-1:123456789012:workgroup/{}"
    got_wgs = {
        wg
        for wg in WORK_GROUPS
        if allowed(world, role, "athena:StartQueryExecution", wg_arn.format(res.refs[wg]))
    }
    assert (got_reads, got_writes, got_tables_read, got_tables_changed, got_wgs) == (
        reads,
        writes,
        tables_read,
        tables_changed,
        work_groups,
    )
    # And listing follows reading: a role lists exactly the lake areas it reads
    assert listed == reads


def test_each_work_group_is_enforced_encrypted_under_its_own_prefix_with_its_own_cutoff(world):
    _, res, _ = world
    results = res.properties("AthenaResultsBucket")["BucketName"]
    prefixes, cutoffs = set(), set()
    template = world[0]
    for wg in WORK_GROUPS:
        cfg = res.properties(wg)["WorkGroupConfiguration"]
        assert cfg["EnforceWorkGroupConfiguration"] is True, wg
        location = cfg["ResultConfiguration"]["OutputLocation"]
        assert location.startswith(f"s3://{results}/"), wg
        prefixes.add(location)
        assert (
            cfg["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
        )
        cutoff = template["Resources"][wg]["Properties"]["WorkGroupConfiguration"][
            "BytesScannedCutoffPerQuery"
        ]
        assert set(cutoff) == {"Ref"} and cutoff["Ref"] in template["Parameters"], wg
        cutoffs.add(cutoff["Ref"])
    assert len(prefixes) == len(cutoffs) == len(WORK_GROUPS)


def test_no_statement_allows_a_data_action_on_every_resource(world):
    template, res, _ = world
    no_resource_level = ("xray:", "cloudwatch:PutMetricData", "logs:")
    for lid, r in template["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for policy in res.properties(lid).get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if st["Effect"] == "Allow" and "*" in resources:
                    assert all(a.startswith(no_resource_level) for a in actions), (lid, st)
