"""AWS Lambda entry point behind API Gateway: ``api.handler.handler(event, context)``.

Thin: the app is built once per execution environment (settings from the environment, the key
from DUFF_API_KEY or the Secrets Manager secret named by DUFF_API_KEY_SECRET_ARN, the backend
from DUFF_API_BACKEND, default athena in Lambda); each invocation is one call into the core.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

from api.app import App
from api.backends import make_backend
from api.lambda_events import to_request, to_result
from api.settings import Settings

logging.getLogger().setLevel(os.environ.get("DUFF_LOG_LEVEL", "INFO").upper())
_app: App | None = None


def _build_app() -> App:
    settings = Settings.from_env()
    secret_arn = os.environ.get("DUFF_API_KEY_SECRET_ARN")
    if not settings.api_key and secret_arn:
        from api.keystore import read_api_key

        settings = dataclasses.replace(settings, api_key=read_api_key(secret_arn))
    return App(settings, make_backend(settings))


def handler(event: dict, context: object) -> dict:
    global _app
    if _app is None:
        _app = _build_app()
    result = to_result(_app.handle(to_request(event)))
    _app.metrics.flush(sys.stdout)  # bare EMF JSON: see api/metrics.py
    return result
