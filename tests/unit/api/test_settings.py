"""The local server follows dbt's target directory unless told not to (export/follow.py)."""

import pytest

from api.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "target"),
        ({"DBT_TARGET_PATH": "/tmp/t"}, "/tmp/t"),
        ({"DUFF_API_FOLLOW_DBT": "0"}, None),
        ({"DUFF_API_FOLLOW_DBT": "off", "DBT_TARGET_PATH": "/tmp/t"}, None),
        ({"DUFF_API_FOLLOW_DBT": " Yes "}, "target"),
    ],
)
def test_the_dbt_target_path_comes_from_dbts_own_variable(env, expected):
    assert Settings.from_env(env).dbt_target_path == expected


def test_a_follow_setting_that_is_not_a_switch_is_refused():
    with pytest.raises(SettingsError, match="DUFF_API_FOLLOW_DBT must be 1 or 0"):
        Settings.from_env({"DUFF_API_FOLLOW_DBT": "sometimes"})


def test_constructed_settings_follow_nothing():
    # tests and embedders that build Settings themselves serve what is exported
    assert Settings(api_key="k", backend="local", lake="lake").dbt_target_path is None


@pytest.mark.parametrize("blank", [" ", "\t", "  \n"])
def test_a_blank_api_key_is_refused(blank):
    with pytest.raises(SettingsError, match="DUFF_API_KEY is blank"):
        Settings.from_env({"DUFF_API_KEY": blank})


def test_an_unset_api_key_is_none():
    assert Settings.from_env({}).api_key is None
    assert Settings.from_env({"DUFF_API_KEY": ""}).api_key is None


def test_whitespace_around_the_api_key_is_not_part_of_it():
    # (the server strips it from the x-api-key header value too: RFC 9110, section 5.5)
    assert Settings.from_env({"DUFF_API_KEY": " k3y\t"}).api_key == "k3y"
