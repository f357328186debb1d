"""One twin AWS account for dbt: moto's S3 and Glue, the Athena twin in front of them, and the
work group, buckets and databases as infra/template.yaml declares them."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3

from infra.cfn import load_template, offline_resolver, parameter_defaults
from ingestion.glue import catalog_for_lake
from tests.athena_twin.engine import AthenaTwin, WorkGroup
from tests.athena_twin.server import TwinServer

ENVIRONMENT = "twin"


def template_work_group(logical_id: str, refs: dict[str, str]) -> WorkGroup:
    """The work group ``logical_id`` of infra/template.yaml, as deployed with ``refs``."""
    template = load_template()
    resolver = offline_resolver(
        template,
        {
            **parameter_defaults(template),
            # the deployment's own parameters; none of them reaches a work group
            "ArtifactBucket": "artifacts",
            "IngestCodeKey": "ingest.zip",
            "ApiCodeKey": "api.zip",
            "DbtSourceKey": "dbt.zip",
            "EnvironmentName": ENVIRONMENT,
        },
        refs=refs,
        attrs={"DataKey": {"Arn": "arn:aws:kms:us-east-1:123456789012:key/twin"}},
    )
    props = resolver.properties(logical_id)
    config = props.get("WorkGroupConfiguration", {})
    return WorkGroup(
        name=props["Name"],
        output_location=config.get("ResultConfiguration", {}).get("OutputLocation"),
        enforced=bool(config.get("EnforceWorkGroupConfiguration", False)),
        bytes_scanned_cutoff=config.get("BytesScannedCutoffPerQuery"),
    )


@dataclass
class TwinAccount:
    endpoint: str  # moto
    server: TwinServer
    lake_bucket: str
    results_bucket: str
    raw_database: str
    analytics_database: str
    work_group: WorkGroup
    tier_tag: str  # the stack's LF-tag key (template TierTag), raw / core / served

    @property
    def twin(self) -> AthenaTwin:
        return self.server.twin

    @property
    def data_dir(self) -> str:
        return f"s3://{self.lake_bucket}/warehouse/"

    def dbt_env(self) -> dict[str, str]:
        """What the CodeBuild project sets (template DbtBuildProject), pointed at the twin."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_ATHENA": self.server.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "DUFF_DBT_TARGET": "athena",
            "DUFF_ATHENA_REGION": "us-east-1",
            "DUFF_ATHENA_WORK_GROUP": self.work_group.name,
            "DUFF_ATHENA_SCHEMA": self.analytics_database,
            "DUFF_GLUE_DATABASE": self.raw_database,
            "DUFF_ATHENA_S3_STAGING_DIR": f"s3://{self.results_bucket}/dbt/",
            "DUFF_ATHENA_S3_DATA_DIR": self.data_dir,
            "DUFF_LF_TIER_TAG": self.tier_tag,
        }

    def land(self, lake_root: Path) -> None:
        """Copy every raw Parquet file, manifest and rejects file of a local lake to S3 and
        register their tables and partitions in Glue with the ingestion's own catalog adapter
        (the production table definitions)."""
        s3 = self.client("s3")
        dates = set()
        for path in sorted((lake_root / "raw" / "orders").glob("pa_date=*/*.parquet")):
            key = f"raw/orders/{path.parent.name}/{path.name}"
            s3.upload_file(str(path), self.lake_bucket, key)
            dates.add(path.parent.name.split("=", 1)[1])
        # and what the ingestion writes beside them: manifests and rejected rows, registered
        # as the tables ingest_manifests and ingest_rejects (the dbt `ingest` sources)
        reject_dates = set()
        for path in sorted((lake_root / "manifests").glob("*.json")):
            s3.upload_file(str(path), self.lake_bucket, f"manifests/{path.name}")
        for path in sorted((lake_root / "rejects" / "orders").glob("ingest_date=*/*.parquet")):
            key = f"rejects/orders/{path.parent.name}/{path.name}"
            s3.upload_file(str(path), self.lake_bucket, key)
            reject_dates.add(path.parent.name.split("=", 1)[1])
        glue = self.client("glue")
        catalog = catalog_for_lake(f"s3://{self.lake_bucket}", self.raw_database, client=glue)
        catalog.add_partitions(sorted(dates))
        catalog.register_ingest(sorted(reject_dates))

    def client(self, service: str):
        return _session().client(service, endpoint_url=self.endpoint)

    def lf_tags(self, name: str) -> dict[str, list[str]]:
        """The LF-tags set on the analytics table ``name`` itself (not those it inherits)."""
        answer = self.client("lakeformation").get_resource_lf_tags(
            Resource={"Table": {"DatabaseName": self.analytics_database, "Name": name}}
        )
        return {t["TagKey"]: t["TagValues"] for t in answer.get("LFTagsOnTable", [])}

    def glue_table(self, name: str) -> dict | None:
        glue = self.client("glue")
        try:
            return glue.get_table(DatabaseName=self.analytics_database, Name=name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            return None


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def _moto_reads_untagged_tables() -> None:
    """moto 5.2's GetResourceLFTags answers 500 (a KeyError) for a table that has no LF-tag
    yet, where Lake Formation answers an empty list; dbt-athena's add_lf_tags asks it first
    for every table it tags. The moto server runs in this process (tests/conftest.py), so its
    backend is corrected here, once: an untagged table reads as one without tags."""
    from moto.lakeformation import models

    original = models.LakeFormationBackend.get_resource_lf_tags
    if getattr(original, "reads_untagged_tables", False):
        return

    def get_resource_lf_tags(self, catalog_id, resource):
        table = resource.get("Table")
        if table is not None:
            key = (table.get("CatalogId", self.account_id), table["DatabaseName"], table["Name"])
            self.lf_table_tags.setdefault(key, [])
        return original(self, catalog_id, resource)

    get_resource_lf_tags.reads_untagged_tables = True
    models.LakeFormationBackend.get_resource_lf_tags = get_resource_lf_tags


def open_account(endpoint: str, work_group: WorkGroup | None = None) -> TwinAccount:
    """Buckets, databases and the dbt work group of the template, in moto, with the twin
    serving Athena. Close it with ``account.server.__exit__()``."""
    suffix = uuid.uuid4().hex[:10]
    lake, results = f"duff-lake-{suffix}", f"duff-athena-results-{suffix}"
    session = _session()
    s3 = session.client("s3", endpoint_url=endpoint)
    glue = session.client("glue", endpoint_url=endpoint)
    for bucket in (lake, results):
        s3.create_bucket(Bucket=bucket)
    raw_db, analytics_db = f"duff_{suffix}", f"duff_{suffix}_analytics"
    glue.create_database(DatabaseInput={"Name": raw_db, "LocationUri": f"s3://{lake}/raw/"})
    glue.create_database(
        DatabaseInput={"Name": analytics_db, "LocationUri": f"s3://{lake}/warehouse/"}
    )
    # Lake Formation as the template sets it up (TierTag, RawDatabaseTier, AnalyticsTier):
    # the tier tag, and the databases tagged raw and core, which their tables inherit
    tier_tag = f"duff_{suffix}_tier"
    lf = session.client("lakeformation", endpoint_url=endpoint)
    lf.create_lf_tag(TagKey=tier_tag, TagValues=["raw", "core", "served"])
    for database, tier in ((raw_db, "raw"), (analytics_db, "core")):
        lf.add_lf_tags_to_resource(
            Resource={"Database": {"Name": database}},
            LFTags=[{"TagKey": tier_tag, "TagValues": [tier]}],
        )
    _moto_reads_untagged_tables()
    if work_group is None:
        work_group = template_work_group(
            "DbtWorkGroup", {"AthenaResultsBucket": results, "LakeBucket": lake}
        )
    twin = AthenaTwin(endpoint, [work_group])
    twin.lake_formation_locations = [f"s3://{lake}/warehouse"]  # WarehouseLocation
    server = TwinServer(twin).__enter__()
    return TwinAccount(endpoint, server, lake, results, raw_db, analytics_db, work_group, tier_tag)


AUDIT_SITE = Path(__file__).resolve().parents[1] / "support" / "audit_site"


def dbt_environment(
    account: TwinAccount, lake_root: Path, call_log: Path | None = None
) -> dict[str, str]:
    """The environment of a dbt build on the twin; with ``call_log``, every AWS call the build
    makes is recorded there (tests/support/audit_site) for the IAM call audit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("AWS_PROFILE", None)
    env.pop("DUFF_AWS_CALL_LOG", None)
    if call_log is not None:
        repo = str(AUDIT_SITE.parents[2])
        path = [str(AUDIT_SITE), repo, env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        env["DUFF_AWS_CALL_LOG"] = str(call_log)
    return {
        **env,
        **account.dbt_env(),
        "DUFF_LAKE": str(lake_root),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
