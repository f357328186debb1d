"""IAM policy evaluation, offline, over the policies of ``infra/template.yaml``.

What AWS decides for one request of one principal in the stack's own account: an explicit
``Deny`` in any applicable policy wins; otherwise an ``Allow`` in the principal's identity
policies or in the resource's policy (bucket, topic, queue, secret) allows; a KMS key is the
exception, its key policy must allow, directly or by delegating to the account (the ``root``
principal), and then the identity policy must allow as well. Anything else is an implicit deny.
(IAM user guide, "Policy evaluation logic" and "Determining whether a request is allowed
within an account"; KMS developer guide, "Key policies: default key policy".)

Covered: ``Action`` (``*`` and ``?`` wildcards, case-insensitive), ``Resource`` (wildcards,
case-sensitive), ``Principal`` of resource policies (``*``, role ARNs, the account root),
``Condition`` with the operators ``OPERATORS`` lists, ``...IfExists`` and the
``ForAnyValue:``/``ForAllValues:`` qualifiers. Not covered, and refused loudly rather than
guessed: ``NotAction``, ``NotResource``, ``NotPrincipal``, policy variables, other operators,
managed policies whose text is not in the template. Service control policies, permission
boundaries and session policies do not exist in this stack.

A missing condition key: a positive operator (``StringLike``, ``ArnLike``, ``Bool``...) does
not match, a negated one (``StringNotEquals``...) does, ``...IfExists`` always does (IAM user
guide, "Condition operators" and "...IfExists condition operators").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class PolicyError(ValueError):
    """A policy uses a construct this evaluator does not implement."""


ContextValue = str | bool | int | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One authorization request as AWS evaluates it."""

    principal: str  # the role ARN
    action: str  # "s3:ListBucket"
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    note: str = ""  # why this request happens (an implied call: "S3 on behalf of PutObject")

    def describe(self) -> str:
        keys = ", ".join(f"{k}={v!r}" for k, v in sorted(self.context.items()))
        text = f"{self.action} on {self.resource}"
        if keys:
            text += f" [{keys}]"
        if self.note:
            text += f" ({self.note})"
        return text


@dataclass(frozen=True)
class Statement:
    source: str  # "IngestRole policy ingest" or "LakeBucketPolicy"
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    principals: tuple[str, ...] | None  # None in identity policies
    condition: Mapping[str, Mapping[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.source} statement {self.sid or '(no Sid)'}"


@dataclass(frozen=True)
class Decision:
    request: Request
    allowed: bool
    reason: str
    #: Statements that name the action but did not apply, each with why (for the message).
    near_misses: tuple[tuple[Statement, str], ...] = ()

    def explain(self) -> str:
        lines = [f"{self.request.describe()}: {self.reason}"]
        for st, why in self.near_misses:
            lines.append(f"    {st.name} names the action but {why}")
        return "\n".join(lines)


# -- matching -------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise PolicyError(f"policy variables are not supported: {pattern!r}")
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters (``/`` and ``:`` included), ``?`` one."""
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _values(value: ContextValue) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int):
        return [str(value)]
    return [str(v) for v in value]


def _string_eq(policy: str, req: str) -> bool:
    return policy == req


def _string_eq_ic(policy: str, req: str) -> bool:
    return policy.lower() == req.lower()


def _string_like(policy: str, req: str) -> bool:
    return glob_match(policy, req)


def _arn_like(policy: str, req: str) -> bool:
    # ARN matching is per segment; with the patterns this stack uses (a literal prefix and
    # trailing wildcards) a whole-string match is the same thing.
    return glob_match(policy, req)


def _bool(policy: str, req: str) -> bool:
    return str(policy).lower() == str(req).lower()


def _numeric(op: str):
    def compare(policy: str, req: str) -> bool:
        a, b = float(req), float(policy)
        return {
            "eq": a == b,
            "lt": a < b,
            "le": a <= b,
            "gt": a > b,
            "ge": a >= b,
        }[op]

    return compare


#: operator -> (value test, negated)
OPERATORS: dict[str, tuple[Any, bool]] = {
    "StringEquals": (_string_eq, False),
    "StringNotEquals": (_string_eq, True),
    "StringEqualsIgnoreCase": (_string_eq_ic, False),
    "StringNotEqualsIgnoreCase": (_string_eq_ic, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_eq, False),
    "ArnNotEquals": (_string_eq, True),
    "ArnLike": (_arn_like, False),
    "ArnNotLike": (_arn_like, True),
    "Bool": (_bool, False),
    "NumericEquals": (_numeric("eq"), False),
    "NumericLessThan": (_numeric("lt"), False),
    "NumericLessThanEquals": (_numeric("le"), False),
    "NumericGreaterThan": (_numeric("gt"), False),
    "NumericGreaterThanEquals": (_numeric("ge"), False),
}


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAnyValue", "ForAllValues"):
            raise PolicyError(f"unknown condition qualifier {qualifier!r}")
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    wanted = [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_tuple(expected)] or [
        str(expected)
    ]
    # context keys are case-insensitive
    present = {k.lower(): v for k, v in context.items()}
    if base == "Null":
        is_absent = key.lower() not in present
        return any((w.lower() == "true") == is_absent for w in wanted)
    if base not in OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not supported")
    test, negated = OPERATORS[base]
    if key.lower() not in present:
        if if_exists or qualifier == "ForAllValues":
            return True
        return negated
    got = _values(present[key.lower()])
    if qualifier == "ForAllValues":
        matched = all(any(test(w, g) for w in wanted) for g in got)
    else:  # single-valued keys, or ForAnyValue: one request value matching one policy value
        matched = any(test(w, g) for w in wanted for g in got)
    return not matched if negated else matched


def condition_failure(
    condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]
) -> str | None:
    """None when every operator block holds for ``context``; else why the first one fails."""
    for operator, block in condition.items():
        for key, expected in block.items():
            if not _condition_holds(operator, key, expected, context):
                value = {k.lower(): v for k, v in context.items()}.get(key.lower())
                got = "absent from the request" if value is None else f"{value!r} in the request"
                values = list(_as_tuple(expected))
                return f"its condition {operator} {key} {values} does not hold ({key} is {got})"
    return None


# -- policies -------------------------------------------------------------------------------------


def parse_statements(
    document: Mapping[str, Any], source: str, *, resource_policy: bool
) -> list[Statement]:
    out = []
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    for raw in statements:
        for unsupported in ("NotAction", "NotResource", "NotPrincipal"):
            if unsupported in raw:
                raise PolicyError(f"{source}: {unsupported} is not supported")
        principals: tuple[str, ...] | None = None
        if resource_policy:
            principal = raw.get("Principal")
            if principal == "*":
                principals = ("*",)
            elif isinstance(principal, Mapping):
                principals = tuple(
                    f"{kind}:{value}"
                    for kind, values in principal.items()
                    for value in _as_tuple(values)
                )
            else:
                raise PolicyError(f"{source}: a resource policy statement needs a Principal")
        effect = raw["Effect"]
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{source}: Effect {effect!r}")
        out.append(
            Statement(
                source=source,
                sid=str(raw.get("Sid", "")),
                effect=effect,
                actions=_as_tuple(raw["Action"]),
                resources=_as_tuple(raw.get("Resource", "*")),
                principals=principals,
                condition=raw.get("Condition", {}) or {},
            )
        )
    return out


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def _principal_matches(statement: Statement, principal: str) -> tuple[bool, bool]:
    """(matches, only_by_delegation): the account root delegates to IAM, it grants nothing."""
    assert statement.principals is not None
    account = _account_of(principal)
    direct = False
    delegated = False
    for p in statement.principals:
        if p in ("*", "AWS:*"):
            direct = True
        elif p.startswith("AWS:"):
            value = p[4:]
            if value == principal:
                direct = True
            elif value in (f"arn:aws:iam::{account}:root", account):
                delegated = True
    return direct or delegated, delegated and not direct


@dataclass
class PolicySet:
    """The identity policies of each principal and the resource policies, as statements."""

    identity: dict[str, list[Statement]] = field(default_factory=dict)  # principal ARN ->
    resource: list[tuple[tuple[str, ...], list[Statement]]] = field(default_factory=list)
    #: ARNs of KMS keys: their key policy is required (not merely sufficient)
    kms_keys: set[str] = field(default_factory=set)
    #: principals whose policies are not all known (managed policies), with the reason
    opaque: dict[str, str] = field(default_factory=dict)

    def add_identity(self, principal: str, statements: Iterable[Statement]) -> None:
        self.identity.setdefault(principal, []).extend(statements)

    def add_resource_policy(
        self,
        resource_patterns: Sequence[str],
        statements: Iterable[Statement],
        *,
        kms: bool = False,
    ) -> None:
        self.resource.append((tuple(resource_patterns), list(statements)))
        if kms:
            self.kms_keys.update(resource_patterns)

    def _resource_statements(self, resource: str) -> list[Statement]:
        out: list[Statement] = []
        for patterns, statements in self.resource:
            if any(glob_match(p, resource) for p in patterns):
                out.extend(statements)
        return out

    def evaluate(self, request: Request) -> Decision:
        if request.principal not in self.identity:
            raise PolicyError(f"no identity policies known for {request.principal}")
        if request.principal in self.opaque:
            raise PolicyError(self.opaque[request.principal])
        misses: list[tuple[Statement, str]] = []
        identity_allow: list[Statement] = []
        resource_allow: list[Statement] = []
        delegates = False
        denies: list[Statement] = []

        def consider(st: Statement) -> bool:
            if not any(glob_match(a, request.action, ignore_case=True) for a in st.actions):
                return False
            if not any(glob_match(r, request.resource) for r in st.resources):
                if st.effect == "Allow":
                    misses.append(
                        (st, f"its Resource {list(st.resources)} does not match {request.resource}")
                    )
                return False
            why = condition_failure(st.condition, request.context)
            if why is not None:
                if st.effect == "Allow":
                    misses.append((st, why))
                return False
            return True

        for st in self.identity[request.principal]:
            if consider(st):
                (identity_allow if st.effect == "Allow" else denies).append(st)
        for st in self._resource_statements(request.resource):
            matches, by_delegation = _principal_matches(st, request.principal)
            if not matches or not consider(st):
                continue
            if st.effect == "Deny":
                denies.append(st)
            elif by_delegation:
                delegates = True
            else:
                resource_allow.append(st)

        if denies:
            return Decision(request, False, f"explicitly denied by {denies[0].name}")
        is_kms_key = any(glob_match(k, request.resource) for k in self.kms_keys)
        if is_kms_key:
            if resource_allow:
                return Decision(request, True, f"allowed by {resource_allow[0].name}")
            if not delegates:
                return Decision(
                    request,
                    False,
                    "the key policy neither allows this role nor delegates to the account's IAM",
                    tuple(misses),
                )
            if identity_allow:
                return Decision(request, True, f"allowed by {identity_allow[0].name}")
        else:
            allow = identity_allow + resource_allow
            if allow:
                return Decision(request, True, f"allowed by {allow[0].name}")
        return Decision(request, False, "no statement allows it (implicit deny)", tuple(misses))


# -- the template's policies ----------------------------------------------------------------------


def _bucket_arns(bucket: str) -> list[str]:
    return [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


def policies_from_template(resolver: Any) -> PolicySet:
    """Every IAM role's inline and attached policies and every resource policy of the template,
    resolved with ``resolver`` (an ``infra.cfn.Resolver`` that knows every physical name)."""
    template = resolver.template
    resources = template["Resources"]
    policies = PolicySet()
    role_arns = {
        lid: resolver.attrs[lid]["Arn"]
        for lid, r in resources.items()
        if r["Type"] == "AWS::IAM::Role"
    }
    for lid, arn in role_arns.items():
        props = resolver.properties(lid)
        policies.identity.setdefault(arn, [])
        for policy in props.get("Policies", []):
            policies.add_identity(
                arn,
                parse_statements(
                    policy["PolicyDocument"],
                    f"{lid} policy {policy['PolicyName']}",
                    resource_policy=False,
                ),
            )
        if props.get("ManagedPolicyArns"):
            # AWS managed policies' text is not in the template: such a role cannot be audited.
            policies.opaque[arn] = f"{lid} has AWS managed policies, whose text is not here"
    by_ref = {resolver.refs[lid]: lid for lid in role_arns if lid in resolver.refs}
    for lid, r in resources.items():
        kind = r["Type"]
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = resolver.properties(lid)
            statements = parse_statements(props["PolicyDocument"], f"{lid}", resource_policy=False)
            for role_ref in props.get("Roles", []):
                role = by_ref.get(role_ref, role_ref)
                policies.add_identity(role_arns[role], statements)
        elif kind == "AWS::S3::BucketPolicy":
            props = resolver.properties(lid)
            policies.add_resource_policy(
                _bucket_arns(props["Bucket"]),
                parse_statements(props["PolicyDocument"], lid, resource_policy=True),
            )
        elif kind == "AWS::KMS::Key":
            props = resolver.properties(lid)
            policies.add_resource_policy(
                [resolver.attrs[lid]["Arn"]],
                parse_statements(props["KeyPolicy"], f"{lid} key policy", resource_policy=True),
                kms=True,
            )
        elif kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            props = resolver.properties(lid)
            targets = props.get("Topics") or props.get("Queues") or []
            arns = [t if t.startswith("arn:") else _queue_arn(resolver, t) for t in targets]
            policies.add_resource_policy(
                arns, parse_statements(props["PolicyDocument"], lid, resource_policy=True)
            )
        elif kind == "AWS::SecretsManager::ResourcePolicy":
            props = resolver.properties(lid)
            policies.add_resource_policy(
                [props["SecretId"]],
                parse_statements(props["ResourcePolicy"], lid, resource_policy=True),
            )
    return policies


def _queue_arn(resolver: Any, url: str) -> str:
    for lid, r in resolver.template["Resources"].items():
        if r["Type"] == "AWS::SQS::Queue" and resolver.refs.get(lid) == url:
            return resolver.attrs[lid]["Arn"]
    raise PolicyError(f"unknown queue {url}")
