"""The framework-free core: a Request in, a Response out.

Order of checks for every request: route (404), method (405), API key (403), parameters
(400), then data (503 when no build exists yet, 504 when Athena times out). Every error has the
body ``{"error": {"code", "message"}}``; an unexpected exception is logged with its stack
trace on the server and answered with a plain 500 body (never the trace).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from api import jsonenc, routes, service, static_files
from api.cache import TTLCache
from api.cursors import CursorCodec
from api.errors import ApiError, BackendTimeout, BackendUnavailable
from api.metrics import Metrics
from api.openapi import build_document
from api.params import DEFAULT_LIMIT
from api.settings import Settings

log = logging.getLogger("duff.api")
access_log = logging.getLogger("duff.api.access")

ALLOWED_METHODS = ("GET", "HEAD")
_HEALTH_FIELDS = ("status", "data_as_of")  # CONTRACT.md section 4
_BUILD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # safe as a header value
_BASE_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
# The dashboard runs only its own scripts and styles and talks only to this origin.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    query_error: bool = False  # the front end could not decode the query string
    # names of headers the client sent more than once (their values are joined with ", ")
    repeated_headers: frozenset[str] = frozenset()


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> object:  # convenience for tests and tools
        import json

        return json.loads(self.body)


class Backend(Protocol):
    def snapshot(self) -> service.Snapshot | None: ...

    def close(self) -> None: ...


def loggable(text: str, limit: int = 300) -> str:
    """``text`` safe for a log line: control characters (a newline would forge a line, ESC
    drives the terminal), backslashes and non-ASCII escaped as Python does; cut at ``limit``."""
    shown = text[:limit].encode("unicode_escape").decode("ascii")
    return shown + "..." if len(text) > limit else shown


def json_response(status: int, body: bytes, extra: Mapping[str, str] | None = None) -> Response:
    headers = {
        "content-type": "application/json",
        "cache-control": "no-store",
        **_BASE_HEADERS,
    }
    if extra:
        headers.update(extra)
    return Response(status, body, headers)


def error_response(err: ApiError) -> Response:
    body = jsonenc.dumps({"error": {"code": err.code, "message": err.message}})
    return json_response(err.status, body, err.headers)


class App:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        *,
        static_dir: Path = static_files.STATIC_DIR,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.static_dir = static_dir
        self.metrics = metrics or Metrics()
        self.cache = TTLCache(
            settings.cache_ttl_seconds,
            settings.cache_max_entries,
            max_bytes=settings.cache_max_mb * 1024 * 1024,
        )
        self.codec = CursorCodec(settings.cursor_secret)
        self._key = (settings.api_key or "").encode("utf-8")
        self._openapi = jsonenc.dumps(build_document())

    # -- entry point -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        started = time.perf_counter()
        try:
            resp = self._dispatch(req)
        except ApiError as err:
            resp = error_response(err)
        except BackendTimeout as err:
            resp = error_response(ApiError(504, "timeout", str(err) or "the query timed out"))
        except BackendUnavailable as err:
            resp = error_response(
                ApiError(503, "unavailable", str(err) or "no data available yet; try again later")
            )
        except Exception:
            log.exception(
                "unhandled error serving %s %s", loggable(req.method, 20), loggable(req.path)
            )
            resp = error_response(ApiError(500, "internal", "internal error; it has been logged"))
        if req.method.upper() == "HEAD":
            resp.headers["content-length"] = str(len(resp.body))
            resp.body = b""
        self.metrics.count("Requests")
        if 400 <= resp.status < 500:
            self.metrics.count("ClientErrors")
        elif resp.status >= 500:
            self.metrics.count("ServerErrors")
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %d %.2fms",
                loggable(req.method, 20),
                loggable(req.path),
                resp.status,
                (time.perf_counter() - started) * 1000,
            )
        return resp

    # -- dispatch ------------------------------------------------------------------------
    def _authorised(self, req: Request) -> bool:
        given = req.headers.get("x-api-key")
        if not self._key or given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._key)

    def _dispatch(self, req: Request) -> Response:
        method = req.method.upper()
        path = req.path
        if path == "/" or path.startswith("/static/"):
            self._check_method(method)
            return self._static("index.html" if path == "/" else path[len("/static/") :])
        found = routes.match(path)
        if found is None:
            raise ApiError(404, "not_found", "no such route; see /openapi.json")
        route, raw_path_params = found
        self._check_method(method)
        if route.auth and "x-api-key" in req.repeated_headers:
            raise ApiError(403, "forbidden", "x-api-key was sent more than once; send it once")
        if route.auth and not self._authorised(req):
            raise ApiError(403, "forbidden", "a valid x-api-key header is required")
        if req.query_error:
            raise ApiError(400, "invalid_parameter", "the query string is not valid")
        params = self._parse_params(route, raw_path_params, req.query)
        if route.name == "openapi":
            return json_response(200, self._openapi, {"cache-control": "public, max-age=60"})
        if route.name == "health":
            return self._health()
        return self._data(route, params)

    @staticmethod
    def _check_method(method: str) -> None:
        if method not in ALLOWED_METHODS:
            raise ApiError(
                405,
                "method_not_allowed",
                "only GET and HEAD are allowed",
                {"allow": ", ".join(ALLOWED_METHODS)},
            )

    @staticmethod
    def _parse_params(
        route: routes.Route, raw_path: Mapping[str, str], query: tuple[tuple[str, str], ...]
    ) -> dict[str, object]:
        params: dict[str, object] = {}
        for p in route.path_params:
            params[p.name] = p.parse(raw_path[p.name])
        allowed = {p.name: p for p in route.query}
        seen: set[str] = set()
        for name, raw in query:
            spec = allowed.get(name)
            if spec is None:
                shown = name if len(name) <= 40 and name.isprintable() else name[:40] + "..."
                expected = ", ".join(allowed) or "none"
                raise ApiError(
                    400,
                    "unknown_parameter",
                    f"unknown query parameter {shown!r}; this route takes: {expected}",
                )
            if name in seen:
                raise ApiError(400, "invalid_parameter", f"{name}: given more than once")
            seen.add(name)
            if raw == "":
                raise ApiError(400, "invalid_parameter", f"{name}: must not be empty")
            params[name] = spec.parse(raw)
        if route.paged:
            params.setdefault("limit", DEFAULT_LIMIT)
        frm, to = params.get("from"), params.get("to")
        if frm is not None and to is not None and frm > to:  # type: ignore[operator]
            raise ApiError(400, "invalid_parameter", "from: must not be after to")
        return params

    def _health(self) -> Response:
        # Open to anyone, so only what the contract lists: the build id and the cache counters
        # are for key holders (the x-duff-build header of data answers, the metrics log).
        snap = self.backend.snapshot()
        payload = {k: v for k, v in service.health(snap).items() if k in _HEALTH_FIELDS}
        return json_response(200 if snap is not None else 503, jsonenc.dumps(payload))

    def _data(self, route: routes.Route, params: dict[str, object]) -> Response:
        snap = self.backend.snapshot()
        if snap is None:
            raise BackendUnavailable("no complete build of the marts yet; run dbt build")
        key = (route.name, tuple(sorted(params.items())))
        body = self.cache.get(snap.build_id, key)
        if body is not None:
            self.metrics.count("CacheHits")
        else:
            if self.cache.enabled:
                self.metrics.count("CacheMisses")
            assert route.handler is not None
            body = jsonenc.dumps(route.handler(snap, params, self.codec))
            self.cache.put(snap.build_id, key, body)
        extra = {"x-duff-build": snap.build_id} if _BUILD_ID.fullmatch(snap.build_id) else None
        return json_response(200, body, extra)  # type: ignore[arg-type]

    def _static(self, rel: str) -> Response:
        found = static_files.resolve(rel, self.static_dir)
        if found is None:
            raise ApiError(404, "not_found", "no such file")
        body, ctype = found
        headers = {
            "content-type": ctype,
            "cache-control": "no-cache",
            "content-security-policy": _PAGE_POLICY,
            **_BASE_HEADERS,
        }
        return Response(200, body, headers)

    def close(self) -> None:
        self.metrics.flush()
        self.backend.close()
