"""The IAM call audit: every AWS call our production code makes in a test, checked against
the policy of the role that makes it in production (infra/template.yaml).

Recording. ``install()`` wraps ``botocore.session.Session.create_client`` so that every client
created in this process (boto3's default session, ``boto3.session.Session()``, dbt-athena's
own sessions) gets two botocore event hooks: ``before-parameter-build`` records the operation
and its parameters, ``after-call``/``after-call-error`` the query id or the error code.

Attribution. A call belongs to a role by the code that makes it (``CODE_ROLES``): an entry
point of a function that runs shared code (``CONTEXT_ROLES``: the real-time lake function lands
through ``ingestion/``) anywhere on the stack decides; otherwise the
innermost frame of the call's stack in ``ingestion/`` is the ingestion Lambda's role, in
``api/`` the API Lambda's, in dbt-athena or PyAthena the CodeBuild (dbt) role; test code makes
setup calls, which are not audited. A call from a worker thread that holds no such frame
(``pool.submit(client.put_object, ...)``) takes the role of the code that created the client.

Binding. Tests name their buckets, databases and work groups freely; production code finds its
resources through the environment the template gives it (``DUFF_LAKE``, ``DUFF_GLUE_DATABASE``,
``DUFF_ATHENA_*``, ``DUFF_API_KEY_SECRET_ARN``). So the value a variable has when the call is
made is bound to the value the template sets for that role's function or build project, and
the call's bucket, key, prefix, database, work group or secret is rewritten to the template's
before it is evaluated. The only other bucket ingestion touches is the one the S3 event names,
the incoming bucket. A resource that binds to nothing fails the audit: it cannot be checked.

Evaluation: ``infra.authz`` turns the bound call into IAM requests (with the implied KMS and
Athena-on-your-behalf ones) and ``infra.iam`` evaluates each against the role's policies, the
bucket policies and the key policy. Tests opt in with the ``iam_audit`` fixture
(tests/conftest.py); ``DUFF_IAM_AUDIT_LOG=<file>`` writes every evaluated request as JSON lines.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: The template resolved with these values is what every call is checked against.
AUDIT_PARAMETERS = {
    "EnvironmentName": "dev",
    "ArtifactBucket": "duff-artifacts-123456789012-us-east-1",
    "IngestCodeKey": "duff/dev/duff-ingest.zip",
    "ApiCodeKey": "duff/dev/duff-api.zip",
    "DbtSourceKey": "duff/dev/dbt-project.zip",
}

#: Code that runs under a role in production: a path fragment of its files -> the role.
CODE_ROLES: tuple[tuple[str, str], ...] = (
    (str(REPO / "ingestion") + os.sep, "IngestRole"),
    (str(REPO / "api") + os.sep, "ApiRole"),
    (str(REPO / "infra" / "landed_yet.py"), "DbtBuildRole"),  # buildspec.yml runs it
    (f"{os.sep}dbt{os.sep}adapters{os.sep}athena{os.sep}", "DbtBuildRole"),
    (f"{os.sep}pyathena{os.sep}", "DbtBuildRole"),
)
#: Entry points whose role wins over CODE_ROLES anywhere below them on the stack: the real-time
#: functions land through the ingestion's own code (ingestion/s3.py, glue.py, publish.py) under
#: their own roles. (file, function or None for any) -> role.
CONTEXT_ROLES: tuple[tuple[str, str | None, str], ...] = (
    (str(REPO / "realtime" / "landing.py"), None, "RealtimeLakeRole"),
    (str(REPO / "realtime" / "handler.py"), "_lake", "RealtimeLakeRole"),
    (str(REPO / "realtime" / "handler.py"), "_land", "RealtimeLakeRole"),
    (str(REPO / "realtime" / "dynamo_store.py"), None, "RealtimeRole"),
    (str(REPO / "realtime" / "handler.py"), "_store", "RealtimeRole"),
)
TEST_CODE = str(REPO / "tests") + os.sep
#: For a role, the template resource any bucket its environment does not name must be.
DEFAULT_BUCKET = {"IngestRole": "IncomingBucket"}  # the bucket the S3 event comes from


def role_of_stack(frame: Any) -> str | None:
    """The role of the entry point the call runs under (CONTEXT_ROLES), else of the innermost
    production frame; None for test code or no clue."""
    outer = frame
    while outer is not None:
        code = outer.f_code
        for filename, function, role in CONTEXT_ROLES:
            if code.co_filename == filename and function in (None, code.co_name):
                return role
        outer = outer.f_back
    while frame is not None:
        filename = frame.f_code.co_filename
        for fragment, role in CODE_ROLES:
            if fragment in filename:
                return role
        if filename.startswith(TEST_CODE):
            return None
        frame = frame.f_back
    return None


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if k not in ("Body", "SecretString")}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(type(value).__name__)


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    role: str | None
    env: dict[str, str]
    response: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "QueryString"}
        return f"{self.service}.{self.operation} {json.dumps(shown, default=str)[:300]}"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._original: Any = None
        self._log = os.environ.get("DUFF_AWS_CALL_LOG")

    def install(self) -> None:
        import botocore.session

        if self._original is not None:
            return
        self._original = botocore.session.Session.create_client
        recorder = self
        original = self._original

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            creator = role_of_stack(sys._getframe(1))
            recorder.attach(client, creator)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]

    def uninstall(self) -> None:
        import botocore.session

        if self._original is not None:
            botocore.session.Session.create_client = self._original  # type: ignore[method-assign]
            self._original = None

    def attach(self, client: Any, creator_role: str | None) -> None:
        service = client.meta.service_model.service_name
        event_id = client.meta.service_model.service_id.hyphenize()  # as botocore emits
        events = client.meta.events

        def before(params: Mapping[str, Any], model: Any, context: dict, **_: Any) -> None:
            frame = sys._getframe(1)
            role = role_of_stack(frame)
            if role is None and not _has_frame_in(frame, TEST_CODE):
                role = creator_role
            if role is None:
                return  # a test's own setup or assertion: not audited, not kept
            call = Call(
                service=service,
                operation=model.name,
                params=_clean(copy.copy(dict(params))),
                role=role,
                env={k: v for k, v in os.environ.items() if k.startswith("DUFF_")},
            )
            context["duff_audit_call"] = call
            with self._lock:
                self.calls.append(call)

        def after(parsed: Mapping[str, Any], context: dict, **_: Any) -> None:
            call = context.get("duff_audit_call")
            if call is None:
                return
            if isinstance(parsed, Mapping) and "QueryExecutionId" in parsed:
                call.response["QueryExecutionId"] = parsed["QueryExecutionId"]
            if isinstance(parsed, Mapping):
                status = parsed.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status:
                    call.response["HTTPStatusCode"] = status
            error = (parsed or {}).get("Error", {}) if isinstance(parsed, Mapping) else {}
            if error.get("Code"):
                call.error = error["Code"]
            self._write(call)

        def failed(exception: BaseException, context: dict, **_: Any) -> None:
            call = context.get("duff_audit_call")
            if call is not None:
                call.error = type(exception).__name__
                self._write(call)

        events.register(f"before-parameter-build.{event_id}", before, unique_id="duff-audit-before")
        events.register(f"after-call.{event_id}", after, unique_id="duff-audit-after")
        events.register(f"after-call-error.{event_id}", failed, unique_id="duff-audit-error")

    def _write(self, call: Call) -> None:
        if self._log and call.role:
            with self._lock, open(self._log, "a", encoding="utf-8") as f:
                f.write(json.dumps(call.__dict__, default=str) + "\n")

    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        with self._lock:
            return list(self.calls[mark:])


def _has_frame_in(frame: Any, prefix: str) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(prefix):
            return True
        frame = frame.f_back
    return False


RECORDER = Recorder()


# -- binding -----------------------------------------------------------------------------------


class Unbound(LookupError):
    """A call names a resource the role's environment does not bind to the template."""


def _split(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


@dataclass
class Binding:
    role: str
    locations: list[tuple[str, str, str, str]]  # test bucket, test prefix, template's
    names: dict[str, str]  # test name/ARN -> template's
    default_bucket: str | None

    @classmethod
    def for_call(
        cls,
        role: str,
        template_env: Mapping[str, str],
        call_env: Mapping[str, str],
        default_bucket: str | None,
    ) -> Binding:
        locations = []
        names = {}
        for var, value in template_env.items():
            got = call_env.get(var)
            if not got:
                continue
            if str(value).startswith("s3://") and got.startswith("s3://"):
                locations.append((*_split(got), *_split(str(value))))
            else:
                names[got] = str(value)
        return cls(role, locations, names, default_bucket)

    def key(self, bucket: str, key: str) -> tuple[str, str]:
        best = None
        for test_bucket, test_prefix, bucket_to, prefix_to in self.locations:
            longer = best is None or len(test_prefix) > len(best[1])
            if test_bucket == bucket and key.startswith(test_prefix) and longer:
                best = (test_bucket, test_prefix, bucket_to, prefix_to)
        if best is not None:
            return best[2], best[3] + key[len(best[1]) :]
        if self.default_bucket:
            return self.default_bucket, key
        raise Unbound(f"s3://{bucket}/{key}")

    def bucket(self, bucket: str) -> str:
        for test_bucket, _p, bucket_to, _q in self.locations:
            if test_bucket == bucket:
                return bucket_to
        if self.default_bucket:
            return self.default_bucket
        raise Unbound(f"s3://{bucket}")

    def name(self, value: str) -> str:
        if value in self.names:
            return self.names[value]
        raise Unbound(value)

    def uri(self, uri: str) -> str:
        bucket, _, key = uri[len("s3://") :].partition("/")
        b, k = self.key(bucket, key)
        return f"s3://{b}/{k}"

    def params(self, service: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with every resource name replaced by the template's."""
        p = copy.deepcopy(dict(params))
        if service == "s3":
            bucket = p.get("Bucket")
            if bucket is not None:
                if "Key" in p:
                    p["Bucket"], p["Key"] = self.key(bucket, p["Key"])
                elif "Prefix" in p:
                    new_bucket, p["Prefix"] = self.key(bucket, p["Prefix"])
                    p["Bucket"] = new_bucket
                elif operation == "DeleteObjects":
                    objects = p.get("Delete", {}).get("Objects", [])
                    mapped = [self.key(bucket, o["Key"]) for o in objects]
                    for o, (_b, k) in zip(objects, mapped, strict=True):
                        o["Key"] = k
                    p["Bucket"] = mapped[0][0] if mapped else self.bucket(bucket)
                else:
                    p["Bucket"] = self.bucket(bucket)
            if "CopySource" in p:
                src = p["CopySource"]
                if isinstance(src, Mapping):
                    b, k = self.key(src["Bucket"], src["Key"])
                    p["CopySource"] = {**src, "Bucket": b, "Key": k}
                else:
                    b, _, k = str(src).lstrip("/").partition("/")
                    p["CopySource"] = "/".join(self.key(b, k))
        elif service == "glue":
            if "DatabaseName" in p:
                p["DatabaseName"] = self.name(p["DatabaseName"])
            if "Database" in operation and "Name" in p:
                p["Name"] = self.name(p["Name"])
            if "DatabaseInput" in p:
                p["DatabaseInput"] = {
                    **p["DatabaseInput"],
                    "Name": self.name(p["DatabaseInput"]["Name"]),
                }
        elif service == "athena":
            if "WorkGroup" in p:
                p["WorkGroup"] = self.name(p["WorkGroup"])
            elif operation == "StartQueryExecution":
                p["WorkGroup"] = self.name("primary")
            ctx = p.get("QueryExecutionContext", {})
            if ctx.get("Database"):
                p["QueryExecutionContext"] = {**ctx, "Database": self.name(ctx["Database"])}
            out = p.get("ResultConfiguration", {}).get("OutputLocation")
            if out:
                p["ResultConfiguration"] = {
                    **p["ResultConfiguration"],
                    "OutputLocation": self.uri(out),
                }
        elif service == "lakeformation" and "Resource" in p:
            resource = dict(p["Resource"])
            for kind, field_name in (
                ("Database", "Name"),
                ("Table", "DatabaseName"),
                ("TableWithColumns", "DatabaseName"),
            ):
                if field_name in resource.get(kind, {}):
                    inner = dict(resource[kind])
                    inner[field_name] = self.name(inner[field_name])
                    resource[kind] = inner
            p["Resource"] = resource
        elif service == "secretsmanager" and "SecretId" in p:
            p["SecretId"] = self.name(p["SecretId"])
        return p


# -- the audit ---------------------------------------------------------------------------------


@dataclass
class Finding:
    call: Call
    text: str


def _databases_named(call: Call, params: Mapping[str, Any]) -> set[str]:
    """The Glue databases a call (its parameters bound to the template's names) works in: a
    Glue call's database, or the database an Athena query runs in."""
    if call.service == "glue":
        if "DatabaseName" in params:
            return {params["DatabaseName"]}
        if call.operation in ("GetDatabase", "DeleteDatabase", "UpdateDatabase"):
            return {params["Name"]}
        if "DatabaseInput" in params:
            return {params["DatabaseInput"]["Name"]}
    if call.service == "athena":
        database = params.get("QueryExecutionContext", {}).get("Database")
        if database:
            return {database}
    return set()


class Audit:
    """The template's policies, and the check of recorded calls against them."""

    def __init__(self, template: Mapping[str, Any] | None = None) -> None:
        from infra.authz import Deployment
        from infra.cfn import load_template, offline_resolver
        from infra.iam import policies_from_template

        self.resolver = offline_resolver(
            template if template is not None else load_template(),
            AUDIT_PARAMETERS,
            account_id=ACCOUNT,
            region=REGION,
        )
        self.policies = policies_from_template(self.resolver)
        self.deployment = Deployment.from_template(self.resolver)
        self.role_arns = {
            lid: self.resolver.attrs[lid]["Arn"]
            for lid, r in self.resolver.template["Resources"].items()
            if r["Type"] == "AWS::IAM::Role"
        }
        self.template_env = self._template_env()

    def _template_env(self) -> dict[str, dict[str, str]]:
        """Per role, the environment its Lambda function or CodeBuild project gets."""
        res = self.resolver
        out: dict[str, dict[str, str]] = {}
        by_arn = {arn: lid for lid, arn in self.role_arns.items()}
        for lid, r in res.template["Resources"].items():
            if r["Type"] == "AWS::Lambda::Function":
                props = res.properties(lid)
                role = by_arn.get(props["Role"])
                env = props.get("Environment", {}).get("Variables", {})
            elif r["Type"] == "AWS::CodeBuild::Project":
                props = res.properties(lid)
                role = by_arn.get(props["ServiceRole"])
                env = {
                    v["Name"]: v["Value"]
                    for v in props["Environment"].get("EnvironmentVariables", [])
                }
            else:
                continue
            if role:
                out.setdefault(role, {}).update({k: str(v) for k, v in env.items()})
        return out

    def binding(self, call: Call) -> Binding:
        role = call.role or ""
        default = DEFAULT_BUCKET.get(role)
        default_name = self.resolver.properties(default)["BucketName"] if default else None
        return Binding.for_call(role, self.template_env.get(role, {}), call.env, default_name)

    def check(self, calls: Iterable[Call]) -> tuple[list[dict[str, Any]], list[Finding]]:
        """Every evaluated request (as dicts, for the log) and the findings that fail CI."""
        from infra.authz import AUDITED_SERVICES, NotModelled, authorizations

        evaluated: list[dict[str, Any]] = []
        findings: list[Finding] = []
        query_groups: dict[str, str] = {}
        seen: set[tuple[str, str]] = set()
        bound: list[tuple[Call, dict[str, Any]]] = []
        for call in calls:
            if call.role is None or call.service not in AUDITED_SERVICES:
                continue
            try:
                params = self.binding(call).params(call.service, call.operation, call.params)
            except Unbound as exc:
                findings.append(
                    Finding(
                        call,
                        f"{call.role}: {call.describe()}\n    -> names {exc}, which "
                        "the role's environment does not bind to a resource of the template",
                    )
                )
                continue
            bound.append((call, params))
        # The Glue databases each role works in, whenever it names them (a GetDatabases
        # before its other calls must already list them to it: infra/authz.py)
        databases_used: dict[str, set[str]] = {}
        for call, params in bound:
            databases_used.setdefault(call.role or "", set()).update(_databases_named(call, params))
        for call, params in bound:
            principal = self.role_arns[call.role]
            qid = params.get("QueryExecutionId") or call.response.get("QueryExecutionId")
            if call.operation == "StartQueryExecution" and qid:
                query_groups[qid] = params["WorkGroup"]
            try:
                requests = authorizations(
                    call.service,
                    call.operation,
                    params,
                    principal=principal,
                    deployment=self.deployment,
                    response=call.response,
                    query_work_group=query_groups.get(qid) if qid else None,
                    databases_used=frozenset(databases_used.get(call.role or "", ())),
                )
            except NotModelled as exc:
                findings.append(
                    Finding(
                        call,
                        f"{call.role}: {call.describe()}\n    -> {exc} is "
                        "not modelled in infra/authz.py: add it",
                    )
                )
                continue
            for request in requests:
                decision = self.policies.evaluate(request)
                evaluated.append(
                    {
                        "role": call.role,
                        "call": f"{call.service}.{call.operation}",
                        "request": request.describe(),
                        "allowed": decision.allowed,
                        "reason": decision.reason,
                    }
                )
                if decision.allowed or (call.role, request.describe()) in seen:
                    continue
                seen.add((call.role, request.describe()))
                findings.append(
                    Finding(
                        call,
                        f"{call.role} ({principal}) made {call.describe()}\n    -> "
                        + decision.explain().replace("\n", "\n    "),
                    )
                )
        return evaluated, findings
