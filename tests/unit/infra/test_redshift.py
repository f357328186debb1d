"""Optional Redshift Serverless (issue 17, part 7): off by default, and when on, the custom
resource's inline code (read from infra/template.yaml) creates the external schema over the
Glue marts, with a stubbed Redshift Data API and a stand-in for CloudFormation's cfnresponse."""

from __future__ import annotations

import sys
import types

import pytest

from infra.cfn import load_template, offline_resolver
from tests.aws_audit import AUDIT_PARAMETERS

# The template resolved as the call audit resolves it (EnvironmentName dev).
PARAMS = AUDIT_PARAMETERS


@pytest.fixture(scope="module")
def template():
    return load_template()


def test_redshift_is_off_by_default_and_every_redshift_resource_hangs_on_the_switch(template):
    assert template["Parameters"]["EnableRedshift"]["Default"] == "false"
    assert not offline_resolver(template, PARAMS).condition("RedshiftEnabled")
    assert offline_resolver(template, {**PARAMS, "EnableRedshift": "true"}).condition(
        "RedshiftEnabled"
    )
    redshift = [
        lid
        for lid, r in template["Resources"].items()
        if "Redshift" in lid or r["Type"].startswith("AWS::RedshiftServerless::")
    ]
    assert len(redshift) == 7
    assert {template["Resources"][lid].get("Condition") for lid in redshift} == {"RedshiftEnabled"}


def test_the_namespace_is_encrypted_private_and_reads_through_the_spectrum_role(template):
    res = offline_resolver(template, {**PARAMS, "EnableRedshift": "true"})
    ns = res.properties("RedshiftNamespace")
    assert ns["KmsKeyId"] == res.attrs["DataKey"]["Arn"]
    assert "resolve:secretsmanager" in ns["AdminUserPassword"]  # never in the template
    assert ns["DefaultIamRoleArn"] == res.attrs["RedshiftSpectrumRole"]["Arn"]
    assert res.properties("RedshiftWorkgroup")["PubliclyAccessible"] is False


class StubData:
    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.statements: list[dict] = []

    def execute_statement(self, **kwargs):
        self.statements.append(kwargs)
        return {"Id": "s-1"}

    def describe_statement(self, Id):
        assert Id == "s-1"
        return {"Status": self.outcome, "Error": "permission denied for database duff"}


def run(template, monkeypatch, request_type: str, outcome: str = "FINISHED"):
    sent: list[tuple] = []
    # (the code makes its client at import, in the Lambda's region; offline any region does)
    cfnresponse = types.ModuleType("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"
    cfnresponse.send = lambda event, context, status, data, physical_id: sent.append(
        (status, data, physical_id)
    )
    sys.modules["cfnresponse"] = cfnresponse
    try:
        res = offline_resolver(template, {**PARAMS, "EnableRedshift": "true"})
        scope: dict = {"__name__": "redshift_schema"}
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        code = res.properties("RedshiftSchemaFunction")["Code"]["ZipFile"]
        exec(compile(code, "<template:RedshiftSchemaFunction>", "exec"), scope)
    finally:
        del sys.modules["cfnresponse"]
    data = StubData(outcome)
    scope["DATA"] = data
    props = res.properties("RedshiftExternalSchema")
    scope["handler"]({"RequestType": request_type, "ResourceProperties": props}, None)
    return data.statements, sent, props


def test_creating_the_stack_creates_the_external_schema_over_the_marts(template, monkeypatch):
    statements, sent, props = run(template, monkeypatch, "Create")
    (statement,) = statements
    assert statement["WorkgroupName"] == props["Workgroup"]
    assert statement["SecretArn"] == props["AdminSecret"]
    assert statement["Sql"] == (
        "create external schema if not exists marts from data catalog "
        f"database '{props['GlueDatabase']}' iam_role default"
    )
    assert props["GlueDatabase"] == "duff_dev_analytics"
    assert sent == [("SUCCESS", {}, "marts")]


def test_a_failed_statement_fails_the_stack_and_deleting_runs_nothing(template, monkeypatch):
    _, sent, _ = run(template, monkeypatch, "Update", outcome="FAILED")
    assert sent == [("FAILED", {"Error": "permission denied for database duff"}, "marts")]
    statements, sent, _ = run(template, monkeypatch, "Delete")
    assert statements == [] and sent == [("SUCCESS", {}, "marts")]
