"""Read ``infra/template.yaml`` and resolve its intrinsic functions offline.

Used by the infra tests (handler paths, IAM scopes, the moto deployment of the data plane) so
that they check the template itself, not a copy of its values. The resolver covers what the
template uses: ``Ref``, ``Fn::Sub`` (both forms), ``Fn::GetAtt``, ``Fn::If``/``Condition``
(``Fn::Equals``/``Fn::Not``), ``Fn::Join`` and ``Fn::Select``; anything else raises, so a new
construct cannot be silently mis-resolved.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class ResolveError(ValueError):
    """The template uses a construct or a name the resolver cannot resolve."""


def _plain(value: Any) -> Any:
    """cfn-lint's decoded nodes as plain dicts, lists and strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data, short-form tags (``!Sub``) turned into ``Fn::`` keys."""
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    if matches or template is None:
        raise ResolveError(f"{path} does not parse: {[str(m) for m in matches]}")
    return _plain(template)


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }


class Resolver:
    """Resolves intrinsic functions against parameters, pseudo parameters and the physical
    ids/attributes of resources (given by the caller, e.g. what a moto deployment created)."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        stack_name: str = "duff-test",
        refs: Mapping[str, str] | None = None,
        attrs: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.template = template
        self.parameters = {**parameter_defaults(template), **parameters}
        missing = [p for p in template.get("Parameters", {}) if p not in self.parameters]
        if missing:
            raise ResolveError(f"parameters without a value: {missing}")
        self.pseudo = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.refs: dict[str, str] = dict(refs or {})
        self.attrs: dict[str, dict[str, str]] = {k: dict(v) for k, v in (attrs or {}).items()}

    # -- names --------------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template.get("Resources", {}):
            raise ResolveError(f"Ref {name}: the resource has no physical id yet")
        raise ResolveError(f"Ref {name}: unknown name")

    def get_att(self, name: str, attribute: str) -> Any:
        try:
            return self.attrs[name][attribute]
        except KeyError:
            raise ResolveError(f"GetAtt {name}.{attribute}: not known yet") from None

    def condition(self, name: str) -> bool:
        spec = self.template.get("Conditions", {}).get(name)
        if spec is None:
            raise ResolveError(f"unknown condition {name}")
        return bool(self._condition_value(spec))

    def _condition_value(self, spec: Any) -> Any:
        if isinstance(spec, Mapping) and len(spec) == 1:
            ((fn, arg),) = spec.items()
            if fn == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if fn == "Fn::Not":
                return not self._condition_value(arg[0])
            if fn == "Condition":
                return self.condition(arg)
        return self.resolve(spec)

    # -- values -------------------------------------------------------------------------------

    def sub(self, text: str, variables: Mapping[str, Any] | None = None) -> str:
        variables = variables or {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and name.split(".", 1)[0] in self.template.get("Resources", {}):
                resource, attribute = name.split(".", 1)
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return _SUB_VAR.sub(replace, text).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg)
                return self.sub(arg[0], arg[1])
            if key == "Fn::GetAtt":
                resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(resource, attribute)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.resolve(parts))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise ResolveError(f"{key} is not supported by the offline resolver")
        return {k: self.resolve(v) for k, v in value.items()}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resolved Properties of one resource."""
        resource = self.template["Resources"][logical_id]
        return self.resolve(copy.deepcopy(resource.get("Properties", {})))


# -- physical ids for an offline "deployment" -------------------------------------------------

_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Athena::WorkGroup": "Name",
    "AWS::CodeBuild::Project": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::KMS::Alias": "AliasName",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::ApiGateway::Stage": "StageName",
    "AWS::ApiGateway::UsagePlan": "UsagePlanName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}


def resource_name(resolver: Resolver, logical_id: str) -> str | None:
    """The name a resource's properties give it (resolved), or None when CloudFormation
    would generate one."""
    resource = resolver.template["Resources"][logical_id]
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::Glue::Database":
        return str(resolver.resolve(props["DatabaseInput"]["Name"]))
    key = _NAME_PROPERTY.get(resource["Type"])
    if key is None or key not in props:
        return None
    return str(resolver.resolve(props[key]))


def offline_resolver(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    account_id: str = "123456789012",
    region: str = "us-east-1",
    refs: Mapping[str, str] | None = None,
    attrs: Mapping[str, Mapping[str, str]] | None = None,
) -> Resolver:
    """A resolver where every resource has the physical id and ARN it would get in AWS
    (names from the template; generated ids are stand-ins). ``refs``/``attrs`` override."""
    resolver = Resolver(template, parameters, account_id=account_id, region=region)
    arn_prefix = f"arn:aws:{{service}}:{region}:{account_id}"
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        name = resource_name(resolver, logical_id) or f"{logical_id.lower()}-generated"
        service = kind.split("::")[1].lower()
        ref = name
        arn = f"{arn_prefix.format(service=service)}:{name}"
        extra: dict[str, str] = {}
        if kind == "AWS::S3::Bucket":
            arn = f"arn:aws:s3:::{name}"
            extra["DomainName"] = f"{name}.s3.amazonaws.com"
        elif kind == "AWS::Lambda::Function":
            arn = f"{arn_prefix.format(service='lambda')}:function:{name}"
        elif kind == "AWS::IAM::Role":
            arn = f"arn:aws:iam::{account_id}:role/{name}"
        elif kind == "AWS::SQS::Queue":
            arn = f"{arn_prefix.format(service='sqs')}:{name}"
            ref = f"https://sqs.{region}.amazonaws.com/{account_id}/{name}"
            extra["QueueName"] = name
        elif kind == "AWS::SNS::Topic":
            ref = arn
        elif kind == "AWS::Logs::LogGroup":
            arn = f"{arn_prefix.format(service='logs')}:log-group:{name}:*"
        elif kind == "AWS::KMS::Key":
            ref = "0e3c0ffe-0000-4000-8000-000000000000"
            arn = f"{arn_prefix.format(service='kms')}:key/{ref}"
        elif kind == "AWS::SecretsManager::Secret":
            arn = f"{arn_prefix.format(service='secretsmanager')}:secret:{name}-AbCdEf"
            ref = arn
        elif kind == "AWS::CodeBuild::Project":
            arn = f"{arn_prefix.format(service='codebuild')}:project/{name}"
        elif kind == "AWS::Events::Rule":
            arn = f"{arn_prefix.format(service='events')}:rule/{name}"
        elif kind == "AWS::RedshiftServerless::Workgroup":
            extra["Workgroup.WorkgroupArn"] = (
                f"{arn_prefix.format(service='redshift-serverless')}:workgroup/{logical_id.lower()}"
            )
        elif kind == "AWS::ApiGateway::RestApi":
            ref = "a1b2c3d4e5"
            extra["RootResourceId"] = "r00t1d"
        resolver.refs[logical_id] = ref
        resolver.attrs[logical_id] = {"Arn": arn, **extra}
    for logical_id, value in (refs or {}).items():
        resolver.refs[logical_id] = value
    for logical_id, values in (attrs or {}).items():
        resolver.attrs.setdefault(logical_id, {}).update(values)
    return resolver
