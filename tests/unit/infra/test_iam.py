"""infra/iam.py (policy evaluation) and infra/authz.py (what a call needs), on hand-made
policies and calls: every rule the call audit relies on, including the ones that must deny."""

from __future__ import annotations

import pytest

from infra.authz import Deployment, NotModelled, WorkGroup, authorizations
from infra.iam import PolicyError, PolicySet, Request, glob_match, parse_statements

ROLE = "arn:aws:iam::123456789012:role/app"
OTHER = "arn:aws:iam::123456789012:role/other"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k1"
TLS = {"aws:SecureTransport": True}


def policy_set(*statements, bucket_policy=None, key_policy=None) -> PolicySet:
    ps = PolicySet()
    ps.add_identity(
        ROLE, parse_statements({"Statement": list(statements)}, "app", resource_policy=False)
    )
    ps.add_identity(OTHER, [])
    if bucket_policy is not None:
        ps.add_resource_policy(
            ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            parse_statements({"Statement": bucket_policy}, "bucket", resource_policy=True),
        )
    if key_policy is not None:
        ps.add_resource_policy(
            [KEY],
            parse_statements({"Statement": key_policy}, "key", resource_policy=True),
            kms=True,
        )
    return ps


def allow(action, resource, condition=None, sid="S"):
    st = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        st["Condition"] = condition
    return st


def decide(ps, action, resource, context=None, principal=ROLE):
    return ps.evaluate(Request(principal, action, resource, {**TLS, **(context or {})}))


# -- matching -----------------------------------------------------------------------------------


def test_wildcards_span_separators_and_question_mark_is_one_character():
    assert glob_match("arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/raw/p=1/x.parquet")
    assert glob_match("s3:Get?bject", "s3:GetObject")
    assert not glob_match("s3:Get?bject", "s3:GetOObject")
    # regex metacharacters in a pattern are literal
    assert not glob_match("arn:aws:s3:::b/a.c", "arn:aws:s3:::b/abc")
    assert not glob_match("arn:aws:s3:::b/[ab]", "arn:aws:s3:::b/a")


def test_actions_match_case_insensitively_resources_case_sensitively():
    ps = policy_set(allow("S3:getobject", "arn:aws:s3:::b/Raw/*"))
    assert decide(ps, "s3:GetObject", "arn:aws:s3:::b/Raw/x").allowed
    denied = decide(ps, "s3:GetObject", "arn:aws:s3:::b/raw/x")
    assert not denied.allowed
    assert "does not match arn:aws:s3:::b/raw/x" in denied.explain()


def test_nothing_allows_is_an_implicit_deny_that_names_no_statement_for_another_action():
    ps = policy_set(allow("s3:GetObject", "*"))
    d = decide(ps, "s3:PutObject", "arn:aws:s3:::b/x")
    assert not d.allowed and d.reason == "no statement allows it (implicit deny)"
    assert d.near_misses == ()


# -- conditions ---------------------------------------------------------------------------------


def test_s3_prefix_condition_allows_listing_inside_and_denies_outside_and_without_prefix():
    ps = policy_set(
        allow("s3:ListBucket", "arn:aws:s3:::b", {"StringLike": {"s3:prefix": ["raw/*", "m/*"]}})
    )
    assert decide(ps, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "raw/x/"}).allowed
    outside = decide(ps, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "_state/claims/"})
    assert not outside.allowed
    assert "StringLike s3:prefix ['raw/*', 'm/*'] does not hold" in outside.explain()
    # a request without the key never satisfies a positive operator
    absent = decide(ps, "s3:ListBucket", "arn:aws:s3:::b")
    assert not absent.allowed and "s3:prefix is absent from the request" in absent.explain()


def test_get_bucket_location_under_an_s3_prefix_condition_is_never_allowed():
    # Given the shape of defect 5: GetBucketLocation grouped with ListBucket under s3:prefix
    ps = policy_set(
        allow(
            ["s3:ListBucket", "s3:GetBucketLocation"],
            "arn:aws:s3:::b",
            {"StringLike": {"s3:prefix": ["api/*"]}},
        )
    )
    # When Athena asks for the location (a request that carries no s3:prefix)
    requests = authorizations(
        "s3",
        "GetBucketLocation",
        {"Bucket": "b"},
        principal=ROLE,
        deployment=Deployment("123456789012", "us-east-1"),
    )
    # Then it is denied, while listing under the prefix is allowed
    assert [r.context for r in requests] == [TLS]
    assert not ps.evaluate(requests[0]).allowed
    assert decide(ps, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "api/q"}).allowed


def test_negated_operators_match_a_missing_key_and_if_exists_tolerates_it():
    deny_unless_tagged = {
        "Sid": "D",
        "Effect": "Deny",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalTag/team": "data"}},
    }
    ps = policy_set(allow("s3:GetObject", "*"), deny_unless_tagged)
    assert not decide(ps, "s3:GetObject", "arn:aws:s3:::b/x").allowed  # tag absent: denied
    assert decide(ps, "s3:GetObject", "arn:aws:s3:::b/x", {"aws:PrincipalTag/team": "data"}).allowed
    ps = policy_set(
        allow("s3:GetObject", "*", {"StringEqualsIfExists": {"s3:x-amz-acl": "private"}})
    )
    assert decide(ps, "s3:GetObject", "arn:aws:s3:::b/x").allowed
    assert not decide(ps, "s3:GetObject", "arn:aws:s3:::b/x", {"s3:x-amz-acl": "public"}).allowed


def test_for_all_values_and_for_any_value_on_multivalued_keys():
    cond_all = {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}
    cond_any = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}
    ps_all = policy_set(allow("s3:PutObject", "*", cond_all))
    ps_any = policy_set(allow("s3:PutObject", "*", cond_any))
    assert decide(ps_all, "s3:PutObject", "x", {"aws:TagKeys": ["a"]}).allowed
    assert not decide(ps_all, "s3:PutObject", "x", {"aws:TagKeys": ["a", "c"]}).allowed
    assert decide(ps_any, "s3:PutObject", "x", {"aws:TagKeys": ["c", "a"]}).allowed
    assert not decide(ps_any, "s3:PutObject", "x", {"aws:TagKeys": ["c"]}).allowed


def test_unsupported_constructs_are_refused_not_guessed():
    with pytest.raises(PolicyError, match="NotAction"):
        parse_statements(
            {"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]},
            "p",
            resource_policy=False,
        )
    ps = policy_set(allow("s3:GetObject", "*", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    with pytest.raises(PolicyError, match="IpAddress"):
        decide(ps, "s3:GetObject", "arn:aws:s3:::b/x", {"aws:SourceIp": "10.1.1.1"})
    ps = policy_set(allow("s3:GetObject", "arn:aws:s3:::b/${aws:username}/*"))
    with pytest.raises(PolicyError, match="policy variables"):
        decide(ps, "s3:GetObject", "arn:aws:s3:::b/me/x")


# -- resource policies --------------------------------------------------------------------------


TLS_ONLY = {
    "Sid": "TlsOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_an_explicit_deny_in_the_bucket_policy_beats_the_role_allow():
    ps = policy_set(allow("s3:GetObject", "arn:aws:s3:::b/*"), bucket_policy=[TLS_ONLY])
    assert decide(ps, "s3:GetObject", "arn:aws:s3:::b/x").allowed
    plain = ps.evaluate(
        Request(ROLE, "s3:GetObject", "arn:aws:s3:::b/x", {"aws:SecureTransport": False})
    )
    assert not plain.allowed and plain.reason == "explicitly denied by bucket statement TlsOnly"


def test_a_bucket_policy_naming_the_role_grants_but_one_naming_the_account_only_delegates():
    to_role = {**allow("s3:GetObject", "arn:aws:s3:::b/*"), "Principal": {"AWS": ROLE}}
    to_root = {
        **allow("s3:GetObject", "arn:aws:s3:::b/*"),
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    }
    assert decide(policy_set(bucket_policy=[to_role]), "s3:GetObject", "arn:aws:s3:::b/x").allowed
    assert not decide(
        policy_set(bucket_policy=[to_role]), "s3:GetObject", "arn:aws:s3:::b/x", principal=OTHER
    ).allowed
    assert not decide(
        policy_set(bucket_policy=[to_root]), "s3:GetObject", "arn:aws:s3:::b/x"
    ).allowed


def test_a_kms_key_needs_its_key_policy_as_well_as_the_role_policy():
    role_allows = allow(["kms:Decrypt", "kms:GenerateDataKey"], KEY)
    delegating = [{**allow("kms:*", "*"), "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]
    only_logs = [{**allow("kms:*", "*"), "Principal": {"Service": "logs.amazonaws.com"}}]
    # Given a key policy that delegates to the account: the role policy decides
    assert decide(policy_set(role_allows, key_policy=delegating), "kms:Decrypt", KEY).allowed
    assert not decide(policy_set(key_policy=delegating), "kms:Decrypt", KEY).allowed
    # Given a key policy that neither names the role nor delegates: the role policy is not enough
    d = decide(policy_set(role_allows, key_policy=only_logs), "kms:Decrypt", KEY)
    assert not d.allowed and "key policy" in d.reason
    # Given a key policy that names the role: no role policy is needed
    direct = [{**allow("kms:Decrypt", "*"), "Principal": {"AWS": ROLE}}]
    assert decide(policy_set(key_policy=direct), "kms:Decrypt", KEY).allowed


# -- what a call needs --------------------------------------------------------------------------


DEP = Deployment(
    "123456789012",
    "us-east-1",
    bucket_keys={"lake": KEY, "plain": None, "results": KEY},
    work_groups={"wg": WorkGroup("s3://results/wg/", KEY, enforced=True)},
)


def needs(service, operation, params, **kw):
    return [
        (r.action, r.resource, {k: v for k, v in r.context.items() if k != "aws:SecureTransport"})
        for r in authorizations(service, operation, params, principal=ROLE, deployment=DEP, **kw)
    ]


def test_s3_calls_map_to_their_iam_actions_with_kms_on_encrypted_buckets():
    assert needs("s3", "HeadObject", {"Bucket": "lake", "Key": "k"}) == [
        ("s3:GetObject", "arn:aws:s3:::lake/k", {})
    ]
    put = needs("s3", "PutObject", {"Bucket": "lake", "Key": "k", "IfNoneMatch": "*"})
    assert [a for a, *_ in put] == ["s3:PutObject", "kms:GenerateDataKey"]
    assert put[1][1] == KEY and put[1][2]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert needs("s3", "PutObject", {"Bucket": "plain", "Key": "k"}) == [
        ("s3:PutObject", "arn:aws:s3:::plain/k", {})
    ]
    copy = needs(
        "s3",
        "CopyObject",
        {"Bucket": "lake", "Key": "raw/x", "CopySource": {"Bucket": "plain", "Key": "in/x"}},
    )
    assert [(a, r) for a, r, _ in copy] == [
        ("s3:PutObject", "arn:aws:s3:::lake/raw/x"),
        ("s3:GetObject", "arn:aws:s3:::plain/in/x"),
        ("kms:GenerateDataKey", KEY),
    ]
    deleted = needs(
        "s3",
        "DeleteObjects",
        {"Bucket": "lake", "Delete": {"Objects": [{"Key": "a"}, {"Key": "b"}]}},
    )
    assert [r for _, r, _ in deleted] == ["arn:aws:s3:::lake/a", "arn:aws:s3:::lake/b"]
    assert needs("s3", "ListObjectsV2", {"Bucket": "lake", "Prefix": "raw/"}) == [
        ("s3:ListBucket", "arn:aws:s3:::lake", {"s3:prefix": "raw/"})
    ]
    assert needs("s3", "GetBucketLocation", {"Bucket": "lake"}) == [
        ("s3:GetBucketLocation", "arn:aws:s3:::lake", {})
    ]
    with pytest.raises(NotModelled, match="s3:PutBucketPolicy"):
        needs("s3", "PutBucketPolicy", {"Bucket": "lake"})


def test_glue_calls_need_the_catalog_the_database_and_the_table():
    got = needs(
        "glue",
        "BatchCreatePartition",
        {"DatabaseName": "raw", "TableName": "t", "PartitionInputList": []},
    )
    assert [r for _, r, _ in got] == [
        "arn:aws:glue:us-east-1:123456789012:catalog",
        "arn:aws:glue:us-east-1:123456789012:database/raw",
        "arn:aws:glue:us-east-1:123456789012:table/raw/t",
    ]
    assert {a for a, _, _ in got} == {"glue:BatchCreatePartition"}


def test_an_enforced_work_group_puts_results_in_its_own_location_whatever_the_client_asks():
    got = needs(
        "athena",
        "StartQueryExecution",
        {"WorkGroup": "wg", "ResultConfiguration": {"OutputLocation": "s3://elsewhere/x/"}},
        response={"QueryExecutionId": "q1"},
    )
    assert (
        "athena:StartQueryExecution",
        "arn:aws:athena:us-east-1:123456789012:workgroup/wg",
        {},
    ) in got
    on_behalf = {"aws:CalledVia": "athena.amazonaws.com"}
    assert ("s3:GetBucketLocation", "arn:aws:s3:::results", on_behalf) in got
    assert ("s3:PutObject", "arn:aws:s3:::results/wg/q1.csv", on_behalf) in got
    assert not [r for _, r, _ in got if "elsewhere" in r]
    reads = needs("athena", "GetQueryResults", {"QueryExecutionId": "q1"}, query_work_group="wg")
    assert ("s3:GetObject", "arn:aws:s3:::results/wg/q1.csv", on_behalf) in reads
