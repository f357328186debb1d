"""Coalesced dbt builds (issue 17, part 6): the DbtBuildStarter function's inline code, read
from infra/template.yaml and run against a stubbed CodeBuild (a build runs until the test ends
it: moto's CodeBuild reports every build SUCCEEDED as soon as it is read) and the moto
server's SSM, with the template's parameter, fed the events its four rules deliver, on a
clock the test moves (builds started by landings are DbtMinMinutesBetweenBuilds apart)."""

from __future__ import annotations

import datetime as dt
import itertools

import boto3
import pytest

from infra.cfn import load_template, offline_resolver
from tests.aws_audit import AUDIT_PARAMETERS

# The template resolved as the call audit resolves it (EnvironmentName dev).
PARAMS = AUDIT_PARAMETERS
LANDING = {"source": "aws.s3", "detail-type": "Object Created", "detail": {}}
SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
TICK = {"tick": True}  # the pending tick rule's Input: EventBridge sends it as the event
GAP = dt.timedelta(  # the template's default, as the starter's environment gets it
    minutes=float(
        offline_resolver(load_template(), PARAMS).properties("DbtBuildStarter")["Environment"][
            "Variables"
        ]["DUFF_MIN_MINUTES_BETWEEN_BUILDS"]
    )
)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)

    def advance(self, minutes: float) -> None:
        self.now += dt.timedelta(minutes=minutes)


def ended(status: str = "SUCCEEDED") -> dict:
    return {
        "source": "aws.codebuild",
        "detail-type": "CodeBuild Build State Change",
        "detail": {"build-status": status},
    }


class StubCodeBuild:
    """CodeBuild's three calls the starter makes, with builds that run until ``end``."""

    def __init__(self, project: str, clock: Clock) -> None:
        self.project = project
        self.clock = clock
        self.builds: list[dict] = []  # newest last
        self._ids = itertools.count(1)
        self.refuse = 0  # how many StartBuild calls fail (the account's build limit)

    def start_build(self, projectName: str) -> dict:
        assert projectName == self.project
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("AccountLimitExceededException")
        build = {
            "id": f"{projectName}:{next(self._ids)}",
            "buildStatus": "IN_PROGRESS",
            "startTime": self.clock.now,
        }
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
    monkeypatch.setenv(
        "DUFF_MIN_MINUTES_BETWEEN_BUILDS", str(env["DUFF_MIN_MINUTES_BETWEEN_BUILDS"])
    )
    exec(compile(fn["Code"]["ZipFile"], "<template:DbtBuildStarter>", "exec"), scope)
    clock = Clock()
    codebuild = StubCodeBuild(env["DUFF_DBT_PROJECT"], clock)
    scope["CODEBUILD"] = codebuild
    scope["now"] = lambda: clock.now
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
    # When the build ends (after longer than the gap): exactly one follow-up starts
    codebuild.clock.advance(45)
    codebuild.end()
    assert handler(ended(), None)["started"] is not None
    assert len(codebuild.builds) == 2
    # And when the follow-up ends with nothing new, nothing more starts
    codebuild.clock.advance(45)
    codebuild.end()
    assert handler(ended(), None)["started"] is None
    assert [b["buildStatus"] for b in codebuild.builds] == ["SUCCEEDED", "SUCCEEDED"]


def test_a_landing_during_the_follow_up_gets_a_build_of_its_own_and_failures_count_as_ends(starter):
    handler, codebuild = starter
    handler(LANDING, None)  # build 1
    handler(LANDING, None)  # pending
    codebuild.clock.advance(45)
    codebuild.end("FAILED")
    handler(ended("FAILED"), None)  # build 2, the follow-up (a failed build still ends)
    # When a file lands while the follow-up runs
    assert handler(LANDING, None)["started"] is None
    codebuild.clock.advance(45)
    codebuild.end()
    # Then the end of the follow-up starts one more build: the landing is never left unbuilt
    assert handler(ended(), None)["started"] is not None
    assert len(codebuild.builds) == 3


def test_with_no_build_running_every_landing_and_the_schedule_start_one(starter):
    handler, codebuild = starter
    handler(SCHEDULE, None)
    codebuild.clock.advance(45)
    codebuild.end()
    # A build that ended with nothing pending, then a landing: a new build
    assert handler(ended(), None)["started"] is None
    assert handler(LANDING, None)["started"] is not None
    assert len(codebuild.builds) == 2


def test_a_landing_every_minute_gets_builds_the_gap_apart_and_none_is_left_unbuilt(starter):
    handler, codebuild = starter
    # Given the real-time lake's manifests, one a minute for three hours, and builds that take
    # five minutes; the tick rule fires every five minutes
    landed = []
    for minute in range(180):
        handler(LANDING, None)
        landed.append(codebuild.clock.now)
        codebuild.clock.advance(1)
        running = [b for b in codebuild.builds if b["buildStatus"] == "IN_PROGRESS"]
        if running and codebuild.clock.now - running[0]["startTime"] >= dt.timedelta(minutes=5):
            codebuild.end()
            handler(ended(), None)
        if minute % 5 == 4:
            handler(TICK, None)
    # When the landings stop, the last build ends and the ticks go on for a gap
    for _ in range(int(GAP.total_seconds() // 300) + 2):
        codebuild.clock.advance(5)
        if any(b["buildStatus"] == "IN_PROGRESS" for b in codebuild.builds):
            codebuild.end()
            handler(ended(), None)
        handler(TICK, None)
    # Then builds started at least the gap apart (not back to back: 180 landings, ~7 builds)
    starts = [b["startTime"] for b in codebuild.builds]
    assert all(b - a >= GAP for a, b in itertools.pairwise(starts))
    assert len(starts) <= 180 // (GAP.total_seconds() / 60) + 1
    # And the last landing was followed by a build
    assert starts[-1] >= landed[-1]


def test_the_schedule_starts_a_build_inside_the_gap_and_a_held_follow_up_starts_on_a_tick(
    starter,
):
    handler, codebuild = starter
    # Given a build that a landing started and that ended ten minutes later
    handler(LANDING, None)
    codebuild.clock.advance(10)
    codebuild.end()
    assert handler(ended(), None)["started"] is None  # nothing pending
    # When the schedule fires inside the gap / Then it starts a build (the baseline)
    assert handler(SCHEDULE, None)["started"] is not None
    # When a file lands during it, and it ends ten minutes after it started
    assert handler(LANDING, None)["started"] is None
    codebuild.clock.advance(10)
    codebuild.end()
    # Then its end holds the follow-up (inside the gap), and a tick after the gap starts it
    assert handler(ended(), None)["started"] is None
    codebuild.clock.advance(5)
    assert handler(TICK, None)["started"] is None
    codebuild.clock.advance(GAP.total_seconds() / 60)
    assert handler(TICK, None)["started"] is not None
    assert len(codebuild.builds) == 3


def test_a_follow_up_that_codebuild_refuses_stays_pending(starter):
    handler, codebuild = starter
    handler(LANDING, None)  # build 1
    handler(LANDING, None)  # pending
    codebuild.clock.advance(45)
    codebuild.end()
    # When StartBuild fails for the follow-up (the account's concurrent build limit)
    codebuild.refuse = 1
    with pytest.raises(RuntimeError):
        handler(ended(), None)
    # Then the landing is still pending: Lambda's retry of the event starts it
    assert handler(ended(), None)["started"] is not None
    assert len(codebuild.builds) == 2


def test_the_rules_route_landings_the_schedule_and_build_ends_to_the_starter():
    res = offline_resolver(load_template(), PARAMS)
    arn = res.attrs["DbtBuildStarter"]["Arn"]
    for rule in ("DbtOnLandingRule", "DbtScheduleRule", "DbtBuildEndedRule", "DbtPendingTickRule"):
        assert [t["Arn"] for t in res.properties(rule)["Targets"]] == [arn], rule
    assert res.properties("DbtPendingTickRule")["Targets"][0]["Input"] == '{"tick": true}'
    # on whatever BuildOnLanding says: a follow-up the schedule asked for waits on it too
    off = offline_resolver(load_template(), {**PARAMS, "BuildOnLanding": "false"})
    assert off.properties("DbtPendingTickRule")["State"] == "ENABLED"
    pattern = res.properties("DbtBuildEndedRule")["EventPattern"]
    assert pattern["detail"] == {
        "project-name": [res.refs["DbtBuildProject"]],
        "build-status": ["SUCCEEDED", "FAILED", "STOPPED"],
    }
    permission = res.properties("DbtBuildStarterPermission")
    assert permission["Principal"] == "events.amazonaws.com"
    import fnmatch

    for rule in ("DbtOnLandingRule", "DbtScheduleRule", "DbtBuildEndedRule", "DbtPendingTickRule"):
        assert fnmatch.fnmatchcase(res.attrs[rule]["Arn"], permission["SourceArn"]), rule
