"""Secrets Manager adapter: the API key for the Lambda (the local twin is DUFF_API_KEY)."""

from __future__ import annotations

import json


def read_api_key(secret_id: str, client=None) -> str:
    """The key stored in ``secret_id``: JSON ``{"api_key": ...}`` or the plain string."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    try:
        data = json.loads(value)
    except ValueError:
        return value.strip()
    if isinstance(data, dict) and isinstance(data.get("api_key"), str):
        return data["api_key"]
    raise ValueError(f"secret {secret_id} holds no api_key")
