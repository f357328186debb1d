"""infra/landed_yet.py, the scheduled build's first question, against moto's Glue under the
IAM audit (it runs in CodeBuild as DbtBuildRole)."""

from __future__ import annotations

import boto3
import pytest

from infra import landed_yet


@pytest.fixture
def raw_database(aws_env, unique_name, monkeypatch):
    database = unique_name("raw").replace("-", "_")
    monkeypatch.setenv("DUFF_GLUE_DATABASE", database)
    monkeypatch.setenv("DUFF_ATHENA_REGION", "us-east-1")
    return database


def test_a_new_stack_has_nothing_to_build_then_the_first_landing_does(
    raw_database, iam_audit, capsys
):
    # Given a new stack: the raw database, no raw_orders table yet
    glue = boto3.client("glue", region_name="us-east-1")
    glue.create_database(DatabaseInput={"Name": raw_database})
    # When the build asks / Then "not yet" (3), and it says why
    assert landed_yet.main() == landed_yet.NOT_YET
    assert f"no {raw_database}.raw_orders" in capsys.readouterr().out
    # When the first landing has registered the table / Then the build goes on (0)
    glue.create_table(
        DatabaseName=raw_database,
        TableInput={"Name": "raw_orders", "StorageDescriptor": {"Columns": []}},
    )
    assert landed_yet.main() == 0


def test_a_missing_database_is_an_error_not_a_new_stack(raw_database, capsys):
    # Given no raw database at all (a broken stack) / Then 1, one line on stderr
    assert landed_yet.main() == 1
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith("landed_yet: cannot tell whether") and "not found" in line
