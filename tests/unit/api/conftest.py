"""Fixtures for the API's unit tests: a small exported build and an App over it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from api.app import App, Request
from api.backends.local import LocalBackend
from api.settings import Settings
from tests.support.fake_marts import make_orders, write_build

API_UNIT_KEY = "unit-test-key-0123456789"


@pytest.fixture(scope="session")
def api_unit_lake(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("api-unit-lake")
    write_build(
        lake,
        make_orders(300, clients=20, products=5, days=10, seed=3),
        built_at=dt.datetime(2024, 4, 1, 12, 0, tzinfo=dt.UTC),
        data_as_of=dt.datetime(2024, 4, 1, 11, 59, 30, tzinfo=dt.UTC),
        build_id="unit-build-1",
    )
    return lake


@pytest.fixture
def api_unit_app(api_unit_lake) -> App:
    settings = Settings(api_key=API_UNIT_KEY, backend="local", lake=str(api_unit_lake))
    backend = LocalBackend(api_unit_lake)
    backend.refresh()
    return App(settings, backend)


@pytest.fixture
def api_get(api_unit_app):
    """``api_get(path, query=(), key=API_UNIT_KEY, method="GET")`` -> Response."""

    def get(path, query=(), key=API_UNIT_KEY, method="GET", headers=None):
        hdrs = dict(headers or {})
        if key is not None:
            hdrs["x-api-key"] = key
        return api_unit_app.handle(Request(method, path, tuple(query), hdrs))

    return get
