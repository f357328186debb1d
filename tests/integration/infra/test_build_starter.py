"""Coalesced dbt builds (issue 17, part 6): the DbtBuildStarter function's inline code, read
from infra/template.yaml and run against a stubbed CodeBuild (a build runs until the test ends
it: moto's CodeBuild reports every build SUCCEEDED as soon as it is read) and the moto
server's SSM, with the template's parameter, fed the events its three rules deliver."""

from __future__ import annotations

import itertools

import boto3
import pytest

from infra.cfn import load_template, offline_resolver
from tests.aws_audit import AUDIT_PARAMETERS

# The template resolved as the call audit resolves it (EnvironmentName dev).
PARAMS = AUDIT_PARAMETERS
LANDING = {"source": "aws.s3", "detail-type": "Object Created", "detail": {}}
SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def ended(status: str = "SUCCEEDED") -> dict:
    return {
        "source": "aws.codebuild",
        "detail-type": "CodeBuild Build State Change",
        "detail": {"build-status": status},
    }


class StubCodeBuild:
    """CodeBuild's three calls the starter makes, with builds that run until ``end``."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.builds: list[dict] = []  # newest last
        self._ids = itertools.count(1)

    def start_build(self, projectName: str) -> dict:
        assert projectName == self.project
        build = {"id": f"{projectName}:{next(self._ids)}", "buildStatus": "IN_PROGRESS"}
        self.builds.append(build)
        return {"build": dict(build)}

    def list_builds_for_project(self, projectName: str, sortOrder: str) -> dict:
        assert projectName == self.project and sortOrder == "DESCENDING"
        return {"ids": [b["id"] for b in reversed(self.builds)]}

    def batch_get_builds(self, ids: list[str]) -> dict:
        return {"builds": [dict(b) for b in self.builds if b["id"] in ids]}

    def end(self, status: str = "SUCCEEDED") -> None:
        (running,) = [b for b in self.builds if b["buildStatus"] == "IN_PROGRESS"]
        running["buildStatus"] = status


@pytest.fixture
def starter(aws_env, monkeypatch, unique_name):
    res = offline_resolver(load_template(), {**PARAMS, "EnvironmentName": "dev"})
    fn = res.properties("DbtBuildStarter")
    env = fn["Environment"]["Variables"]
    # A parameter of this test's own (the moto server is shared), created as the template does
    parameter = res.properties("DbtBuildPending")
    name = f"{parameter['Name']}-{unique_name('t')}"
    boto3.client("ssm").put_parameter(Name=name, Value=parameter["Value"], Type=parameter["Type"])
    monkeypatch.setenv("DUFF_DBT_PROJECT", env["DUFF_DBT_PROJECT"])
    monkeypatch.setenv("DUFF_PENDING_PARAMETER", name)
    scope: dict = {"__name__": "dbt_build_starter"}
    exec(compile(fn["Code"]["ZipFile"], "<template:DbtBuildStarter>", "exec"), scope)
    codebuild = StubCodeBuild(env["DUFF_DBT_PROJECT"])
    scope["CODEBUILD"] = codebuild
    assert fn["ReservedConcurrentExecutions"] == 1  # the handler relies on running alone
    return scope["handler"], codebuild


def test_fifty_landings_during_a_build_cause_exactly_one_follow_up_build(starter):
    handler, codebuild = starter
    # Given a landing with no build running: it starts the first build
    assert handler(LANDING, None)["started"] is not None
    # When 50 more files land, and the schedule fires, while that build runs
    results = [handler(LANDING, None) for _ in range(50)] + [handler(SCHEDULE, None)]
    # Then none of them starts a build
    assert {r["started"] for r in results} == {None}
    assert len(codebuild.builds) == 1
    # When the build ends: exactly one follow-up starts
    codebuild.end()
    assert handler(ended(), None)["started"] is not None
    assert len(codebuild.builds) == 2
    # And when the follow-up ends with nothing new, nothing more starts
    codebuild.end()
    assert handler(ended(), None)["started"] is None
    assert [b["buildStatus"] for b in codebuild.builds] == ["SUCCEEDED", "SUCCEEDED"]


def test_a_landing_during_the_follow_up_gets_a_build_of_its_own_and_failures_count_as_ends(starter):
    handler, codebuild = starter
    handler(LANDING, None)  # build 1
    handler(LANDING, None)  # pending
    codebuild.end("FAILED")
    handler(ended("FAILED"), None)  # build 2, the follow-up (a failed build still ends)
    # When a file lands while the follow-up runs
    assert handler(LANDING, None)["started"] is None
    codebuild.end()
    # Then the end of the follow-up starts one more build: the landing is never left unbuilt
    assert handler(ended(), None)["started"] is not None
    assert len(codebuild.builds) == 3


def test_with_no_build_running_every_landing_and_the_schedule_start_one(starter):
    handler, codebuild = starter
    handler(SCHEDULE, None)
    codebuild.end()
    # A build that ended with nothing pending, then a landing: a new build
    assert handler(ended(), None)["started"] is None
    assert handler(LANDING, None)["started"] is not None
    assert len(codebuild.builds) == 2


def test_the_rules_route_landings_the_schedule_and_build_ends_to_the_starter():
    res = offline_resolver(load_template(), PARAMS)
    arn = res.attrs["DbtBuildStarter"]["Arn"]
    for rule in ("DbtOnLandingRule", "DbtScheduleRule", "DbtBuildEndedRule"):
        assert [t["Arn"] for t in res.properties(rule)["Targets"]] == [arn], rule
    pattern = res.properties("DbtBuildEndedRule")["EventPattern"]
    assert pattern["detail"] == {
        "project-name": [res.refs["DbtBuildProject"]],
        "build-status": ["SUCCEEDED", "FAILED", "STOPPED"],
    }
    permission = res.properties("DbtBuildStarterPermission")
    assert permission["Principal"] == "events.amazonaws.com"
    import fnmatch

    for rule in ("DbtOnLandingRule", "DbtScheduleRule", "DbtBuildEndedRule"):
        assert fnmatch.fnmatchcase(res.attrs[rule]["Arn"], permission["SourceArn"]), rule
