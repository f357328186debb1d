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
from api import realtime as realtime_route
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


class NeedsQuery(Exception):
    """Raised by ``App.handle(req, may_query=False)`` where the answer needs a backend query
    (a data route whose answer is not cached); nothing has been counted or logged yet."""


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
        self._routers: dict[str, tuple[routes.Router, bytes]] = {}  # build id -> routes, doc
        self._realtime: realtime_route.Reader | None = None

    # -- entry point -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        started = time.perf_counter()
        return self._finish(req, self._answer(req, True), started)

    def handle_cached(self, req: Request) -> Response | None:
        """The response when it needs no backend query (cache hits, errors, the app's own
        routes), else None: the ASGI front end answers those on its event loop and sends only
        the rest to its threads, so that a cache hit never queues behind running queries."""
        started = time.perf_counter()
        try:
            resp = self._answer(req, False)
        except NeedsQuery:
            return None
        return self._finish(req, resp, started)

    def _answer(self, req: Request, may_query: bool) -> Response:
        try:
            return self._dispatch(req, may_query)
        except NeedsQuery:
            raise
        except ApiError as err:
            return error_response(err)
        except BackendTimeout as err:
            return error_response(ApiError(504, "timeout", str(err) or "the query timed out"))
        except BackendUnavailable as err:
            return error_response(
                ApiError(503, "unavailable", str(err) or "no data available yet; try again later")
            )
        except Exception:
            log.exception(
                "unhandled error serving %s %s", loggable(req.method, 20), loggable(req.path)
            )
            return error_response(ApiError(500, "internal", "internal error; it has been logged"))

    def _finish(self, req: Request, resp: Response, started: float) -> Response:
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
        # Whitespace around a field value is not part of it (RFC 9110, section 5.5)
        given = given.strip(" \t")
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._key)

    def _dispatch(self, req: Request, may_query: bool = True) -> Response:
        method = req.method.upper()
        path = req.path
        if path == "/" or path.startswith("/static/"):
            self._check_method(method)
            return self._static("index.html" if path == "/" else path[len("/static/") :])
        snap = None
        builtin = routes.match_builtin(path)
        if builtin is not None:
            found: tuple[routes.Endpoint, dict[str, str]] | None = (builtin, {})
        else:  # data routes are the served marts' of the build this request reads
            snap = self.backend.snapshot()
            if snap is None:
                self._check_method(method)
                if not self._authorised(req):
                    raise ApiError(403, "forbidden", "a valid x-api-key header is required")
                raise BackendUnavailable("no complete build of the marts yet; run dbt build")
            found = self._router(snap)[0].match(path)
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
            doc = self._router(self.backend.snapshot())[1]
            return json_response(200, doc, {"cache-control": "public, max-age=60"})
        if route.name == "health":
            return self._health()
        if route.name == "realtime_summary":
            if not may_query:  # reads the real-time store's files
                raise NeedsQuery
            if self._realtime is None:
                self._realtime = realtime_route.make_reader(self.settings.lake)
            return json_response(200, jsonenc.dumps(realtime_route.summary(self._realtime, params)))
        assert snap is not None
        return self._data(snap, route, params, may_query)

    def _router(self, snap: service.Snapshot | None) -> tuple[routes.Router, bytes]:
        """The routes and OpenAPI document of a build (only the app's own before one)."""
        key = snap.build_id if snap is not None else ""
        found = self._routers.get(key)
        if found is None:
            router = routes.Router(snap.marts.values() if snap is not None else ())
            found = (router, jsonenc.dumps(build_document(router)))
            self._routers = {key: found}  # one build at a time: the old one goes
        return found

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
        route: routes.Endpoint, raw_path: Mapping[str, str], query: tuple[tuple[str, str], ...]
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
        for low, high in route.ranges:
            frm, to = params.get(low), params.get(high)
            if frm is not None and to is not None and frm > to:  # type: ignore[operator]
                raise ApiError(400, "invalid_parameter", f"{low}: must not be after {high}")
        return params

    def _health(self) -> Response:
        # Open to anyone, so only what the contract lists: the build id and the cache counters
        # are for key holders (the x-duff-build header of data answers, the metrics log).
        snap = self.backend.snapshot()
        payload = {k: v for k, v in service.health(snap).items() if k in _HEALTH_FIELDS}
        return json_response(200 if snap is not None else 503, jsonenc.dumps(payload))

    def _data(
        self,
        snap: service.Snapshot,
        route: routes.Endpoint,
        params: dict[str, object],
        may_query: bool = True,
    ) -> Response:
        key = (route.name, tuple(sorted(params.items())))
        body = self.cache.get(snap.build_id, key, count_miss=may_query)
        if body is None and not may_query:
            raise NeedsQuery
        if body is not None:
            self.metrics.count("CacheHits")
        else:
            if self.cache.enabled:
                self.metrics.count("CacheMisses")
            assert route.route is not None
            body = jsonenc.dumps(service.answer(snap, route.route, params, self.codec))
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
        if self._realtime is not None:
            self._realtime.close()
