"""API Gateway events <-> the core's Request/Response (REST API proxy v1 and HTTP API v2)."""

from __future__ import annotations

import base64
from urllib.parse import unquote

from api.app import Request, Response
from api.querystring import parse_query

_TEXT_TYPES = ("application/json", "text/", "image/svg+xml")


def to_request(event: dict) -> Request:
    """The core Request for an API Gateway proxy event (payload format 1.0 or 2.0)."""
    repeated: set[str] = set()
    if event.get("version") == "2.0":
        http = event.get("requestContext", {}).get("http", {})
        method = http.get("method", "GET")
        path = event.get("rawPath") or http.get("path") or "/"
        stage = event.get("requestContext", {}).get("stage")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
        elif stage and stage != "$default" and path == f"/{stage}":
            path = "/"
        path = unquote(path)
        raw_query = (event.get("rawQueryString") or "").encode("latin-1", "replace")
        query = parse_query(raw_query)
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    else:
        method = event.get("httpMethod", "GET")
        path = event.get("path") or "/"
        multi = event.get("multiValueQueryStringParameters")
        if multi:
            query = tuple((k, v) for k, values in multi.items() for v in (values or []))
        else:
            single = event.get("queryStringParameters") or {}
            query = tuple((k, v if v is not None else "") for k, v in single.items())
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        for k, values in (event.get("multiValueHeaders") or {}).items():
            if values and len(values) > 1:  # REST API: `headers` holds only the last value
                repeated.add(str(k).lower())
                headers[str(k).lower()] = ", ".join(str(v) for v in values)
            elif values and str(k).lower() not in headers:
                headers[str(k).lower()] = str(values[-1])
    # (HTTP API payload 2.0 joins a repeated header's values with commas itself: such a key
    # never equals the configured one, so it is refused as a wrong key.)
    return Request(
        method=method,
        path=path,
        query=query if query is not None else (),
        headers=headers,
        query_error=query is None,
        repeated_headers=frozenset(repeated),
    )


def to_result(resp: Response) -> dict:
    """The proxy integration result for a Response (text as is, other bodies base64)."""
    ctype = resp.headers.get("content-type", "")
    is_text = ctype.startswith(_TEXT_TYPES)
    body = resp.body.decode("utf-8") if is_text else base64.b64encode(resp.body).decode("ascii")
    return {
        "statusCode": resp.status,
        "headers": dict(resp.headers),
        "body": body,
        "isBase64Encoded": not is_text,
    }
