"""The Lambda entry point fed with API Gateway event fixtures (tests/events/api/)."""

import importlib
import json
from pathlib import Path

import pytest

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"
KEY = "lambda-unit-key-42"


@pytest.fixture
def lambda_handler(api_unit_lake, monkeypatch):
    # Given the Lambda's environment pointing at a local lake (the local twin of Athena)
    monkeypatch.setenv("DUFF_API_BACKEND", "local")
    monkeypatch.setenv("DUFF_LAKE", str(api_unit_lake))
    monkeypatch.setenv("DUFF_API_KEY", KEY)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "duff-test-api")
    import api.handler

    module = importlib.reload(api.handler)
    yield module.handler
    module._app = None


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text().replace("__KEY__", KEY))


def test_rest_event_paged_client_orders(lambda_handler):
    result = lambda_handler(event("rest_get_client_orders.json"), None)
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    body = json.loads(result["body"])
    assert len(body["items"]) == 2
    assert {i["client_id"] for i in body["items"]} == {13}
    ids = [i["order_id"] for i in body["items"]]
    assert ids == sorted(ids)
    assert body["next_cursor"]


def test_rest_health_is_open(lambda_handler):
    result = lambda_handler(event("rest_health_no_key.json"), None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "ok"


def test_injection_attempt_is_400(lambda_handler):
    result = lambda_handler(event("rest_get_orders_bad_status.json"), None)
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["code"] == "invalid_parameter"


def test_post_is_405(lambda_handler):
    result = lambda_handler(event("rest_post_clients.json"), None)
    assert result["statusCode"] == 405
    assert result["headers"]["allow"] == "GET, HEAD"


def test_http_api_v2_event_with_case_insensitive_filters(lambda_handler):
    result = lambda_handler(event("http_v2_get_orders.json"), None)
    assert result["statusCode"] == 200
    items = json.loads(result["body"])["items"]
    assert 0 < len(items) <= 3
    assert {(i["status"], i["channel"]) for i in items} == {("delivered", "B2B")}


def test_http_api_v2_stage_prefix_serves_the_dashboard(lambda_handler):
    result = lambda_handler(event("http_v2_static_index_stage.json"), None)
    assert result["statusCode"] == 200
    assert result["headers"]["content-type"].startswith("text/html")


def test_wrong_key_is_403(lambda_handler):
    ev = event("http_v2_get_orders.json")
    ev["headers"]["x-api-key"] = "nope"
    result = lambda_handler(ev, None)
    assert result["statusCode"] == 403
    assert json.loads(result["body"])["error"]["code"] == "forbidden"


def test_key_from_secrets_manager(monkeypatch):
    from api.keystore import read_api_key

    class FakeSecrets:
        def __init__(self, value):
            self.value = value

        def get_secret_value(self, SecretId):
            assert SecretId == "arn:secret"
            return {"SecretString": self.value}

    assert read_api_key("arn:secret", FakeSecrets('{"api_key": "k1"}')) == "k1"
    assert read_api_key("arn:secret", FakeSecrets("plain-key\n")) == "plain-key"


def test_rest_event_with_the_key_header_twice_is_403(lambda_handler):
    # Given a REST API event whose x-api-key came twice (`headers` keeps only the last value)
    ev = event("rest_get_client_orders.json")
    ev["multiValueHeaders"]["X-Api-Key"] = ["wrong", KEY]
    # When handled / Then 403, not the last value winning
    result = lambda_handler(ev, None)
    assert result["statusCode"] == 403
    assert "more than once" in json.loads(result["body"])["error"]["message"]


def test_the_metrics_line_is_bare_json_on_stdout(lambda_handler, capsys):
    # Given the Lambda runtime, whose logging handler prefixes every record with its level,
    # time and request id (CloudWatch extracts EMF metrics only from a bare JSON event)
    # When a request is handled
    lambda_handler(event("rest_get_client_orders.json"), None)
    # Then its counts are one JSON line on stdout
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    emf = [x for x in lines if "_aws" in x]
    assert len(emf) == 1
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Duff/Api"
    assert emf[0]["Requests"] == 1
