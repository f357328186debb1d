"""What AWS authorizes for one SDK call: the IAM requests (action, resource ARN, condition
keys) an S3, Glue, Athena, Secrets Manager, KMS or CloudWatch operation makes, including the
ones a service makes on the caller's behalf with the caller's permissions.

Sources, per service (checked against the AWS documentation, see docs/operations.md):

* S3 (S3 user guide, "Required permissions for Amazon S3 API operations"; Service
  Authorization Reference, Amazon S3): ``HeadObject`` is ``s3:GetObject``; ``CopyObject`` and
  ``UploadPartCopy`` are ``s3:GetObject`` on the source and ``s3:PutObject`` on the target;
  multipart calls are ``s3:PutObject``; ``DeleteObjects`` is ``s3:DeleteObject`` per key;
  ``ListObjectsV2`` and ``HeadBucket`` are ``s3:ListBucket`` on the bucket, and only
  ``ListBucket`` (and ``ListBucketVersions``) requests carry ``s3:prefix``, ``s3:delimiter`` and
  ``s3:max-keys``: ``GetBucketLocation`` carries none of them. A ``GetObject`` or ``HeadObject``
  of a key that does not exist answers 404 only to a caller allowed ``s3:ListBucket`` on the
  bucket (evaluated for that request, so without ``s3:prefix``), 403 to anyone else
  (``HeadObject`` and ``GetObject`` API reference, "Permissions"). On an SSE-KMS bucket, S3 calls
  KMS with the caller's permissions: ``kms:GenerateDataKey`` to write, ``kms:Decrypt`` to read
  and to complete a multipart upload ("Multipart upload API and permissions").
* Glue (Glue developer guide, "Specifying AWS Glue resource ARNs"): a Data Catalog call needs
  the action on the catalog, the database and, for table and partition calls, the table.
  The list calls return only what the caller may see (Glue developer guide, "Identity-based
  policy examples": "Filter tables by GetTables permission"; Lake Formation: "For all Get* API
  operations, only databases and tables that the caller has permissions on get returned"):
  ``GetDatabases`` lists a database only to a caller allowed ``glue:GetDatabases`` on it, so a
  caller that relies on finding a database in the list (dbt creates every schema it does not
  find there, with ``create schema``) needs the action on that database too.
* Athena (Athena user guide, "Access to Amazon S3" and "Workgroup settings override
  client-side settings"): the caller needs ``athena:*`` actions on the work group, and Athena
  writes the results to the work group's location (the client's location only when the work
  group does not enforce its own) with the caller's permissions: ``s3:GetBucketLocation`` on
  the bucket, ``s3:PutObject`` (and ``s3:GetObject`` to read them back), and the KMS key of
  SSE_KMS results. The tables a query reads are not modelled here (that needs the SQL).
* Secrets Manager: ``GetSecretValue`` on the secret, ``kms:Decrypt`` on its key via Secrets
  Manager.
* CloudWatch ``PutMetricData`` has no resource-level permissions (``Resource: "*"``) and
  carries ``cloudwatch:namespace``.

An operation of these services that is not listed raises :class:`NotModelled`, so the audit
fails loudly rather than passing a call it does not understand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.iam import Request


class NotModelled(ValueError):
    """The audit does not know which permissions this operation needs."""


AUDITED_SERVICES = (
    "s3",
    "glue",
    "athena",
    "secretsmanager",
    "kms",
    "cloudwatch",
    "sts",
    "lakeformation",
)


@dataclass
class WorkGroup:
    output_location: str | None
    kms_key: str | None
    enforced: bool


@dataclass
class Deployment:
    """What the authorization of a call depends on beyond its parameters."""

    account: str
    region: str
    bucket_keys: dict[str, str | None] = field(default_factory=dict)  # bucket -> KMS key ARN
    work_groups: dict[str, WorkGroup] = field(default_factory=dict)
    secret_keys: dict[str, str] = field(default_factory=dict)  # secret ARN -> KMS key ARN
    secret_names: dict[str, str] = field(default_factory=dict)  # secret name -> ARN

    @classmethod
    def from_template(cls, resolver: Any) -> Deployment:
        resources = resolver.template["Resources"]
        dep = cls(account=resolver.pseudo["AWS::AccountId"], region=resolver.pseudo["AWS::Region"])
        key_ids = {
            resolver.refs[lid]: resolver.attrs[lid]["Arn"]
            for lid, r in resources.items()
            if r["Type"] == "AWS::KMS::Key"
        }

        def key_arn(value: str | None) -> str | None:
            if value is None:
                return None
            return key_ids.get(value, value)

        for lid, r in resources.items():
            kind = r["Type"]
            if kind == "AWS::S3::Bucket":
                props = resolver.properties(lid)
                sse = props.get("BucketEncryption", {}).get(
                    "ServerSideEncryptionConfiguration", [{}]
                )[0]
                default = sse.get("ServerSideEncryptionByDefault", {})
                kms = default.get("SSEAlgorithm") == "aws:kms"
                dep.bucket_keys[props["BucketName"]] = (
                    key_arn(default.get("KMSMasterKeyID")) if kms else None
                )
            elif kind == "AWS::Athena::WorkGroup":
                props = resolver.properties(lid)
                cfg = props.get("WorkGroupConfiguration", {})
                result = cfg.get("ResultConfiguration", {})
                enc = result.get("EncryptionConfiguration", {})
                dep.work_groups[props["Name"]] = WorkGroup(
                    output_location=result.get("OutputLocation"),
                    kms_key=key_arn(enc.get("KmsKey"))
                    if enc.get("EncryptionOption") == "SSE_KMS"
                    else None,
                    enforced=bool(cfg.get("EnforceWorkGroupConfiguration")),
                )
            elif kind == "AWS::SecretsManager::Secret":
                props = resolver.properties(lid)
                arn = resolver.refs[lid]
                dep.secret_names[props["Name"]] = arn
                if props.get("KmsKeyId"):
                    dep.secret_keys[arn] = key_arn(props["KmsKeyId"])
        return dep


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def _copy_source(value: Any) -> tuple[str, str, str | None]:
    if isinstance(value, Mapping):
        return value["Bucket"], value["Key"], value.get("VersionId")
    text = str(value).lstrip("/")
    text, _, version = text.partition("?versionId=")
    bucket, _, key = text.partition("/")
    return bucket, key, version or None


def authorizations(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    *,
    principal: str,
    deployment: Deployment,
    response: Mapping[str, Any] | None = None,
    query_work_group: str | None = None,
    databases_used: frozenset[str] = frozenset(),
) -> list[Request]:
    """The requests AWS authorizes for one call made by ``principal``.

    ``response`` is the parsed response when known (a query id names its results object);
    ``query_work_group`` the work group of the query a ``QueryExecutionId`` call names;
    ``databases_used`` the Glue databases the caller works in (named by its other calls),
    which a ``GetDatabases`` must list to it.
    """
    dep = deployment
    tls = {"aws:SecureTransport": True}
    out: list[Request] = []

    def req(action: str, resource: str, context: Mapping[str, Any] | None = None, note: str = ""):
        out.append(Request(principal, action, resource, {**tls, **(context or {})}, note))

    def kms(action: str, bucket: str, why: str) -> None:
        key = dep.bucket_keys.get(bucket)
        if key:
            req(
                action,
                key,
                {
                    "kms:ViaService": f"s3.{dep.region}.amazonaws.com",
                    "kms:EncryptionContext:aws:s3:arn": _s3_arn(bucket),
                },
                f"S3 calls KMS for {why}",
            )

    if service == "sts":
        return out  # GetCallerIdentity needs no permission
    if service == "s3":
        bucket = params.get("Bucket", "")
        key = params.get("Key")
        if operation in ("GetObject", "HeadObject"):
            action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
            req(action, _s3_arn(bucket, key))
            if (response or {}).get("HTTPStatusCode") == 404:
                # S3 answers 404 for a missing key only to a caller that may list the bucket,
                # 403 to anyone else; the request carries no s3:prefix.
                req(
                    "s3:ListBucket",
                    _s3_arn(bucket),
                    note=f"{operation} of a missing key: 404, not 403",
                )
            elif operation == "GetObject":
                kms("kms:Decrypt", bucket, "GetObject")
        elif operation in ("PutObject", "CreateMultipartUpload", "UploadPart"):
            req("s3:PutObject", _s3_arn(bucket, key))
            if operation != "UploadPart":
                kms("kms:GenerateDataKey", bucket, operation)
        elif operation == "CompleteMultipartUpload":
            req("s3:PutObject", _s3_arn(bucket, key))
            kms("kms:Decrypt", bucket, "CompleteMultipartUpload")
        elif operation in ("CopyObject", "UploadPartCopy"):
            src_bucket, src_key, version = _copy_source(params["CopySource"])
            req(
                "s3:PutObject",
                _s3_arn(bucket, key),
                {"s3:x-amz-copy-source": f"{src_bucket}/{src_key}"},
            )
            req(
                "s3:GetObjectVersion" if version else "s3:GetObject",
                _s3_arn(src_bucket, src_key),
                note=f"source of {operation}",
            )
            kms("kms:Decrypt", src_bucket, f"the source of {operation}")
            kms("kms:GenerateDataKey", bucket, f"the target of {operation}")
        elif operation == "AbortMultipartUpload":
            req("s3:AbortMultipartUpload", _s3_arn(bucket, key))
        elif operation == "ListParts":
            req("s3:ListMultipartUploadParts", _s3_arn(bucket, key))
        elif operation == "DeleteObject":
            action = "s3:DeleteObjectVersion" if params.get("VersionId") else "s3:DeleteObject"
            req(action, _s3_arn(bucket, key))
        elif operation == "DeleteObjects":
            for item in params.get("Delete", {}).get("Objects", []):
                action = "s3:DeleteObjectVersion" if item.get("VersionId") else "s3:DeleteObject"
                req(action, _s3_arn(bucket, item["Key"]), note="one key of DeleteObjects")
        elif operation in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
            context: dict[str, Any] = {}
            if "Prefix" in params:
                context["s3:prefix"] = params["Prefix"]
            if "Delimiter" in params:
                context["s3:delimiter"] = params["Delimiter"]
            if "MaxKeys" in params:
                context["s3:max-keys"] = str(params["MaxKeys"])
            action = (
                "s3:ListBucketVersions" if operation == "ListObjectVersions" else "s3:ListBucket"
            )
            req(action, _s3_arn(bucket), context)
        elif operation == "HeadBucket":
            req("s3:ListBucket", _s3_arn(bucket))
        elif operation == "GetBucketLocation":
            req("s3:GetBucketLocation", _s3_arn(bucket))
        elif operation == "ListMultipartUploads":
            req("s3:ListBucketMultipartUploads", _s3_arn(bucket))
        else:
            raise NotModelled(f"s3:{operation}")
        return out

    arn = f"arn:aws:{{}}:{dep.region}:{dep.account}:{{}}"
    if service == "glue":
        catalog = arn.format("glue", "catalog")
        action = f"glue:{operation}"

        def database(name: str) -> str:
            return arn.format("glue", f"database/{name}")

        def table(db: str, name: str) -> str:
            return arn.format("glue", f"table/{db}/{name}")

        if operation in ("GetDatabase", "DeleteDatabase", "UpdateDatabase"):
            resources = [catalog, database(params["Name"])]
        elif operation == "CreateDatabase":
            resources = [catalog, database(params["DatabaseInput"]["Name"])]
        elif operation == "GetDatabases":
            # (filtered: the databases the caller works in must be visible to it)
            resources = [catalog] + [database(name) for name in sorted(databases_used)]
        elif operation == "GetTables":
            db = params["DatabaseName"]
            resources = [catalog, database(db), table(db, "*")]
        elif operation in ("CreateTable", "UpdateTable"):
            db = params["DatabaseName"]
            resources = [catalog, database(db), table(db, params["TableInput"]["Name"])]
        elif operation == "BatchDeleteTable":
            db = params["DatabaseName"]
            resources = [catalog, database(db)] + [table(db, t) for t in params["TablesToDelete"]]
        elif operation in (
            "GetTable",
            "DeleteTable",
            "GetTableVersions",
            "GetTableVersion",
            "DeleteTableVersion",
            "BatchDeleteTableVersion",
        ):
            db = params["DatabaseName"]
            name = params.get("Name") or params.get("TableName")
            resources = [catalog, database(db), table(db, name)]
        elif "Partition" in operation:
            db = params["DatabaseName"]
            resources = [catalog, database(db), table(db, params["TableName"])]
        else:
            raise NotModelled(f"glue:{operation}")
        for resource in resources:
            req(action, resource)
        return out

    if service == "athena":
        action = f"athena:{operation}"
        if operation == "StartQueryExecution":
            wg_name = params.get("WorkGroup", "primary")
            req(action, arn.format("athena", f"workgroup/{wg_name}"))
            wg = dep.work_groups.get(wg_name)
            location = params.get("ResultConfiguration", {}).get("OutputLocation")
            kms_key = None
            if wg is not None and (wg.enforced or not location):
                location, kms_key = wg.output_location, wg.kms_key
            database = params.get("QueryExecutionContext", {}).get("Database")
            if database:
                for resource in (
                    arn.format("glue", "catalog"),
                    arn.format("glue", f"database/{database}"),
                ):
                    req("glue:GetDatabase", resource, note="Athena resolves the query's database")
            if location:
                qid = (response or {}).get("QueryExecutionId", "<query-id>")
                _athena_results(req, location, qid, kms_key, dep, write=True)
            return out
        if operation in (
            "GetQueryExecution",
            "GetQueryResults",
            "StopQueryExecution",
            "GetQueryRuntimeStatistics",
        ):
            wg_name = query_work_group or "primary"
            req(action, arn.format("athena", f"workgroup/{wg_name}"))
            wg = dep.work_groups.get(wg_name)
            if operation == "GetQueryResults" and wg is not None and wg.output_location:
                _athena_results(
                    req,
                    wg.output_location,
                    params["QueryExecutionId"],
                    wg.kms_key,
                    dep,
                    write=False,
                )
            return out
        if operation == "GetWorkGroup":
            req(action, arn.format("athena", f"workgroup/{params['WorkGroup']}"))
            return out
        if operation in ("GetDataCatalog", "GetDatabase", "GetTableMetadata", "ListTableMetadata"):
            name = params.get("Name") or params.get("CatalogName")
            req(action, arn.format("athena", f"datacatalog/{name}"))
            return out
        raise NotModelled(f"athena:{operation}")

    if service == "secretsmanager":
        if operation not in ("GetSecretValue", "DescribeSecret"):
            raise NotModelled(f"secretsmanager:{operation}")
        secret = params["SecretId"]
        secret = dep.secret_names.get(secret, secret)
        req(f"secretsmanager:{operation}", secret)
        key = dep.secret_keys.get(secret)
        if key and operation == "GetSecretValue":
            req(
                "kms:Decrypt",
                key,
                {"kms:ViaService": f"secretsmanager.{dep.region}.amazonaws.com"},
                "Secrets Manager calls KMS",
            )
        return out

    if service == "kms":
        key_id = params.get("KeyId", "")
        key = key_id if key_id.startswith("arn:") else arn.format("kms", f"key/{key_id}")
        req(f"kms:{operation}", key)
        return out

    if service == "lakeformation":
        # Tagging has no resource-level permissions (the LF grant of ASSOCIATE on the tag
        # limits which tag and value); the caller also needs glue:GetDatabase on the
        # resource's database (Lake Formation guide, "Assigning LF-Tags to Data Catalog
        # resources").
        if operation not in (
            "AddLFTagsToResource",
            "RemoveLFTagsFromResource",
            "GetResourceLFTags",
        ):
            raise NotModelled(f"lakeformation:{operation}")
        req(f"lakeformation:{operation}", "*")
        resource = params.get("Resource", {})
        db = (resource.get("Database") or {}).get("Name") or (
            resource.get("Table") or resource.get("TableWithColumns") or {}
        ).get("DatabaseName")
        if db:
            for glue_resource in (
                arn.format("glue", "catalog"),
                arn.format("glue", f"database/{db}"),
            ):
                req("glue:GetDatabase", glue_resource, note=f"Lake Formation {operation}")
        return out

    if service == "cloudwatch":
        context = {"cloudwatch:namespace": params["Namespace"]} if "Namespace" in params else {}
        req(f"cloudwatch:{operation}", "*", context)
        return out

    raise NotModelled(f"{service}:{operation}")


def _athena_results(
    req, location: str, qid: str, kms_key: str | None, dep: Deployment, *, write: bool
):
    """What Athena does in the results location with the caller's permissions."""
    bucket, _, prefix = location[len("s3://") :].partition("/")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    via = {"aws:CalledVia": "athena.amazonaws.com"}
    note = "Athena on the caller's behalf, results location"
    if write:
        req("s3:GetBucketLocation", _s3_arn(bucket), via, note)
        for suffix in (".csv", ".csv.metadata"):
            req("s3:PutObject", _s3_arn(bucket, f"{prefix}{qid}{suffix}"), via, note)
    else:
        req("s3:GetObject", _s3_arn(bucket, f"{prefix}{qid}.csv"), via, note)
    if kms_key:
        req(
            "kms:GenerateDataKey" if write else "kms:Decrypt",
            kms_key,
            {**via, "kms:ViaService": f"s3.{dep.region}.amazonaws.com"},
            "S3 calls KMS for Athena's results",
        )
