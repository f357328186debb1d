"""Each role's reach, read from every IAM grant of infra/template.yaml and evaluated with
infra/iam.py (issue 17): which lake areas it reads and writes, which tables it reads and
changes, which Athena work group it queries through. The table below is the intended reach;
a grant that widens or narrows it, or a role missing from it, fails."""

from __future__ import annotations

import pytest

from infra.cfn import load_template, offline_resolver
from infra.iam import Request, policies_from_template
from tests.aws_audit import AUDIT_PARAMETERS

# The template resolved as the call audit resolves it (EnvironmentName dev).
PARAMS = AUDIT_PARAMETERS
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
#: A served mart is a table of its build under a view of its name (macros/served_builds.sql):
#: the API reads the build's table, ``<mart>__b<tag>``, which every grant of the view covers.
PER_BUILD = "analytics.mart_daily_sales__b0123456789ab"
TABLES = ["raw.raw_orders", "analytics.fact_orders", "analytics.mart_daily_sales", PER_BUILD]
MARTS = {"analytics.fact_orders", "analytics.mart_daily_sales", PER_BUILD}

#: role -> (lake areas read, lake areas written, tables read, tables changed, work groups)
REACH: dict[str, tuple[set[str], set[str], set[str], set[str], set[str]]] = {
    "IngestRole": (INGEST_WRITES, INGEST_WRITES, {"raw.raw_orders"}, {"raw.raw_orders"}, set()),
    "DbtBuildRole": (
        # the quality sources read the manifests and the stored rejects
        {"raw/orders/", "manifests/", "rejects/orders/", "warehouse/", "dbt-docs/"},
        {"warehouse/", "dbt-docs/"},
        set(TABLES),
        MARTS,
        {"DbtWorkGroup"},
    ),
    "ApiRole": (
        {"warehouse/"},
        set(),
        MARTS,
        set(),
        {"ApiWorkGroup"},
    ),
    "AnalystsRole": (
        {"warehouse/"},
        set(),
        MARTS,
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
    # Lake Formation reads and writes the two registered prefixes with it (no queries).
    "LakeFormationDataAccessRole": (
        {"raw/orders/", "warehouse/"},
        {"raw/orders/", "warehouse/"},
        set(),
        set(),
        set(),
    ),
    # Optional Redshift (EnableRedshift): Spectrum reads the marts in place; the schema
    # function only runs one statement.
    "RedshiftSpectrumRole": (
        {"warehouse/"},
        set(),
        MARTS,
        set(),
        set(),
    ),
    "RedshiftSchemaRole": (set(), set(), set(), set(), set()),
    # API Gateway's account-wide logging role: an AWS managed policy, no data access.
    "ApiGatewayCloudWatchRole": (set(), set(), set(), set(), set()),
    # Starts the dbt build and keeps the follow-up flag (test_build_starter.py), no data.
    "DbtBuildStarterRole": (set(), set(), set(), set(), set()),
    # Real-time figures (issue 16): the stream and the DynamoDB table only, no lake.
    "RealtimeRole": (set(), set(), set(), set(), set()),
    # Real-time batches land like a file: the ingestion's areas, and the raw table's
    # partitions. Quarantine too, though an event is never a whole file to refuse: a batch's
    # recover() rolls forward any interrupted publication in _staging/, a CSV file's
    # quarantine included (ingestion/publish.py).
    "RealtimeLakeRole": (
        INGEST_WRITES,
        INGEST_WRITES,
        {"raw.raw_orders"},
        {"raw.raw_orders"},
        set(),
    ),
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


def test_the_dbt_build_drops_past_builds_and_the_api_cannot(world):
    # Given a per-build table of a past build and its data under warehouse/
    _, res, _ = world
    analytics = res.properties("AnalyticsDatabase")["DatabaseInput"]["Name"]
    lake = res.properties("LakeBucket")["BucketName"]
    table = f"arn:aws:glue:us-east-1:123456789012:table/{analytics}/{PER_BUILD.split('.')[1]}"
    data = f"arn:aws:s3:::{lake}/warehouse/{analytics}/mart_daily_sales__b0123456789ab/x/y"
    database = f"arn:aws:glue:us-east-1:123456789012:database/{analytics}"
    # Then the dbt build lists the schema, drops the table and deletes its data (the on-run-end
    # of macros/served_builds.sql), and the API role, which reads it, can do neither
    for action, resource in (
        ("glue:GetTables", database),
        ("glue:DeleteTable", table),
        ("s3:DeleteObject", data),
    ):
        assert allowed(world, "DbtBuildRole", action, resource), action
        assert not allowed(world, "ApiRole", action, resource) or action == "glue:GetTables"


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


#: Actions without resource-level permissions, allowed on "*": tracing, and Lake Formation's
#: credential vending and tagging (LF checks its own grants, table by table, tag by tag).
NO_RESOURCE_LEVEL = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "lakeformation:GetDataAccess",
    "lakeformation:AddLFTagsToResource",
    "lakeformation:RemoveLFTagsFromResource",
    "lakeformation:GetResourceLFTags",
    "lakeformation:ListLFTags",
    "lakeformation:GetLFTag",
    "redshift-data:DescribeStatement",  # a caller sees only its own statements
)


def test_no_statement_allows_a_data_action_on_every_resource(world):
    template, res, _ = world
    documents = []
    for lid, r in template["Resources"].items():
        if r["Type"] == "AWS::IAM::Role":
            documents += [
                (lid, p["PolicyDocument"]) for p in res.properties(lid).get("Policies", [])
            ]
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append((lid, res.properties(lid)["PolicyDocument"]))
    assert len(documents) >= 9
    for lid, document in documents:
        for st in document["Statement"]:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st["Effect"] == "Allow" and "*" in resources:
                assert set(actions) <= set(NO_RESOURCE_LEVEL), (lid, st)


#: role -> {(kind, what): permissions}, every Lake Formation grant of the template
LF_REACH = {
    "IngestRole": {
        ("location", "raw/orders"): {"DATA_LOCATION_ACCESS"},
        ("database", "raw"): {"CREATE_TABLE", "DESCRIBE"},
        ("tables of", "raw"): {"ALTER", "INSERT", "DESCRIBE"},
    },
    # Real-time batches land like a file
    "RealtimeLakeRole": {
        ("location", "raw/orders"): {"DATA_LOCATION_ACCESS"},
        ("database", "raw"): {"CREATE_TABLE", "DESCRIBE"},
        ("tables of", "raw"): {"ALTER", "INSERT", "DESCRIBE"},
    },
    "DbtBuildRole": {
        ("tables of", "raw"): {"SELECT", "DESCRIBE"},
        # (its staging views over raw_orders: Athena creates a view of registered data only
        # with permissions on the source location too)
        ("location", "raw/orders"): {"DATA_LOCATION_ACCESS"},
        ("location", "warehouse"): {"DATA_LOCATION_ACCESS"},
        ("database", "analytics"): {"CREATE_TABLE", "ALTER", "DROP", "DESCRIBE"},
        ("tables of", "analytics"): {"SELECT", "INSERT", "DELETE", "ALTER", "DROP", "DESCRIBE"},
        ("tag", "served"): {"ASSOCIATE", "DESCRIBE"},
    },
    "ApiRole": {("tables tagged", "served"): {"SELECT", "DESCRIBE"}},
    "AnalystsRole": {("tables tagged", "core,served"): {"SELECT", "DESCRIBE"}},
    "DataScienceRole": {("tables tagged", "core,raw,served"): {"SELECT", "DESCRIBE"}},
}


def test_every_lake_formation_grant_matches_the_reach_table(world):
    template, res, _ = world
    lake = f"arn:aws:s3:::{res.properties('LakeBucket')['BucketName']}/"
    databases = {
        res.properties("RawDatabase")["DatabaseInput"]["Name"]: "raw",
        res.properties("AnalyticsDatabase")["DatabaseInput"]["Name"]: "analytics",
    }
    roles = {res.attrs[lid]["Arn"]: lid for lid in REACH}
    got: dict[str, dict[tuple[str, str], set[str]]] = {}
    for lid, r in template["Resources"].items():
        if r["Type"] != "AWS::LakeFormation::PrincipalPermissions":
            continue
        p = res.properties(lid)
        assert p["PermissionsWithGrantOption"] == [], lid  # nobody re-grants
        resource = p["Resource"]
        if "DataLocation" in resource:
            key = ("location", resource["DataLocation"]["ResourceArn"].removeprefix(lake))
        elif "Database" in resource:
            key = ("database", databases[resource["Database"]["Name"]])
        elif "Table" in resource:
            assert resource["Table"]["TableWildcard"] == {}, lid
            key = ("tables of", databases[resource["Table"]["DatabaseName"]])
        elif "LFTag" in resource:
            key = ("tag", ",".join(sorted(resource["LFTag"]["TagValues"])))
        else:
            (expression,) = resource["LFTagPolicy"]["Expression"]
            assert resource["LFTagPolicy"]["ResourceType"] == "TABLE", lid
            key = ("tables tagged", ",".join(sorted(expression["TagValues"])))
        role = roles[p["Principal"]["DataLakePrincipalIdentifier"]]
        assert key not in got.get(role, {}), (role, key)
        got.setdefault(role, {})[key] = set(p["Permissions"])
    assert got == LF_REACH


def test_every_role_that_reaches_a_table_holds_lake_formation_grants_too(world):
    # Once IAM_ALLOWED_PRINCIPALS is revoked (docs/operations.md, "Lake Formation"), Lake
    # Formation decides for the tables: a role whose IAM reach reads or changes a table needs
    # a grant there too, and a role that writes a registered prefix needs its data location
    # (the real-time lake role had neither).
    for role, (_, writes, tables_read, tables_changed, _) in REACH.items():
        if role in ("LakeFormationDataAccessRole", "RedshiftSpectrumRole"):
            continue  # Lake Formation's own role; Spectrum reads through the analysts' grants
        if tables_read or tables_changed:
            assert role in LF_REACH, role
        grants = LF_REACH.get(role, {})
        for table in tables_changed:
            database = table.split(".")[0]
            assert {"INSERT", "ALTER"} <= grants.get(("tables of", database), set()), role
        if "raw/orders/" in writes:
            assert ("location", "raw/orders") in grants, role
    # And every role with a Lake Formation grant may fetch its data credentials
    _, res, _ = world
    vending = set(res.properties("LakeFormationDataAccess")["Roles"])
    assert vending == {res.properties(role)["RoleName"] for role in LF_REACH}


def test_lake_formation_governs_the_two_data_prefixes_and_classifies_both_databases(world):
    template, res, _ = world
    lake = res.properties("LakeBucket")["BucketName"]
    locations = {
        res.properties(lid)["ResourceArn"]: res.properties(lid)
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::LakeFormation::Resource"
    }
    assert set(locations) == {f"arn:aws:s3:::{lake}/raw/orders", f"arn:aws:s3:::{lake}/warehouse"}
    for props in locations.values():
        assert props["RoleArn"] == res.attrs["LakeFormationDataAccessRole"]["Arn"]
        assert props["UseServiceLinkedRole"] is False  # the lake's key is a customer key
    tag = res.properties("TierTag")
    assert tag["TagValues"] == ["raw", "core", "served"]
    tiers = {
        res.properties(lid)["Resource"]["Database"]["Name"]: res.properties(lid)["LFTags"][0][
            "TagValues"
        ]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::LakeFormation::TagAssociation"
    }
    assert tiers == {
        res.properties("RawDatabase")["DatabaseInput"]["Name"]: ["raw"],
        res.properties("AnalyticsDatabase")["DatabaseInput"]["Name"]: ["core"],
    }
    # And the dbt build knows the tag it must set on the served marts
    env = {
        v["Name"]: v["Value"]
        for v in res.properties("DbtBuildProject")["Environment"]["EnvironmentVariables"]
    }
    assert env["DUFF_LF_TIER_TAG"] == tag["TagKey"]
