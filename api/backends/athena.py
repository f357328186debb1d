"""Athena adapter: the marts as tables in ``$DUFF_ATHENA_SCHEMA``.

- Every client value goes in ``ExecutionParameters`` (typed literals made by the server from
  validated values: digits for ints, quoted text for strings cast in SQL); never pasted.
- A dedicated work group (``DUFF_ATHENA_WORK_GROUP``; its bytes-scanned cutoff lives there).
- ``ResultReuseConfiguration`` so repeated queries cost nothing; the build id is part of the
  query text, so a reused result never outlives the build it came from.
- A poll loop with exponential backoff and a deadline; past it the query is stopped and the
  request gets 504.
- Date filters compare ``pa_date`` directly, so mart_orders and mart_daily_sales (partitioned
  on pa_date) are pruned to the asked days.
- One build per request: the dbt build writes each served mart as a table of its build,
  ``<mart>__b<tag>`` (macros/served_builds.sql), and ``mart_build_info`` last, naming the build.
  A snapshot queries the tables of the build mart_build_info named when it was read, so a
  switch is that one pointer change: a request never mixes marts of two builds, during a
  build or after one that failed half-way (the build keeps the previous build's tables too,
  for the requests still on it).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from api.declarations import ServedMart, from_json, from_project
from api.errors import BackendTimeout, BackendUnavailable

log = logging.getLogger("duff.api.athena")
SERVED_JSON = Path(__file__).resolve().parents[1] / "served.json"

_SAFE_BUILD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# a dbt invocation_id; its tag names the build's tables (macros/served_builds.sql)
_INVOCATION_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", re.I)
_RUNNING = ("QUEUED", "RUNNING")
_THROTTLED = ("TooManyRequestsException", "ThrottlingException")


class AthenaQueryError(Exception):
    """Athena refused or failed a query (a server-side fault: 500). ``reason`` is Athena's
    StateChangeReason of a query that ran and failed (logged, never shown to clients)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def table_not_found(self) -> bool:
        return "TABLE_NOT_FOUND" in self.reason


def to_parameter(value: object) -> str:
    """One ExecutionParameters entry: an int as digits, anything else as a quoted literal."""
    if isinstance(value, bool):
        raise TypeError("booleans are not query parameters here")
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def _convert(type_name: str, text: str | None) -> object:
    if text is None:
        return None
    t = type_name.lower()
    if t in ("bigint", "integer", "int", "smallint", "tinyint"):
        return int(text)
    if t.startswith("decimal"):
        return Decimal(text)
    if t == "date":
        return dt.date.fromisoformat(text)
    if t.startswith("timestamp"):
        clean = text.replace(" UTC", "").replace("T", " ").rstrip("Z")
        value = dt.datetime.fromisoformat(clean)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if t in ("double", "float", "real"):
        return Decimal(text)
    return text


class AthenaClient:
    """Runs one statement and returns typed rows."""

    def __init__(
        self,
        client,
        *,
        work_group: str,
        database: str,
        reuse_minutes: int = 60,
        timeout_seconds: float = 20.0,
        first_poll_seconds: float = 0.05,
        max_poll_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.work_group = work_group
        self.database = database
        self.reuse_minutes = reuse_minutes
        self.timeout_seconds = timeout_seconds
        self.first_poll_seconds = first_poll_seconds
        self.max_poll_seconds = max_poll_seconds
        self._sleep = sleep
        self._clock = clock

    def _call(self, name: str, **kwargs):
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, name)(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in _THROTTLED:
                raise BackendUnavailable("Athena is busy; try again shortly") from err
            raise AthenaQueryError(f"Athena {name} failed: {code}") from err

    def deadline(self) -> float:
        """A request's time budget: every query of one request shares it (below API
        Gateway's 29 s integration timeout)."""
        return self._clock() + self.timeout_seconds

    def run(
        self,
        sql: str,
        params: Sequence[object],
        *,
        reuse: bool = True,
        deadline: float | None = None,
    ) -> list[tuple]:
        if deadline is None:
            deadline = self.deadline()
        request: dict = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.work_group,
        }
        if params:
            request["ExecutionParameters"] = [to_parameter(p) for p in params]
        # No ResultConfiguration: the work group's output location applies, and overriding
        # a query's result configuration turns result reuse off (Athena user guide,
        # "Reuse query results": "if you override the result configuration ... disabled").
        if reuse:
            request["ResultReuseConfiguration"] = {
                "ResultReuseByAgeConfiguration": {
                    "Enabled": True,
                    "MaxAgeInMinutes": self.reuse_minutes,
                }
            }
        qid = self._call("start_query_execution", **request)["QueryExecutionId"]
        delay = self.first_poll_seconds
        while True:
            execution = self._call("get_query_execution", QueryExecutionId=qid)["QueryExecution"]
            status = execution["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                break
            if state not in _RUNNING:
                reason = status.get("StateChangeReason", "no reason given")
                log.error("Athena query %s ended %s: %s", qid, state, reason)
                raise AthenaQueryError(f"Athena query {qid} ended {state}", reason=reason)
            remaining = deadline - self._clock()
            if remaining <= 0:
                try:
                    self.client.stop_query_execution(QueryExecutionId=qid)
                except Exception:  # best effort; the timeout is what matters
                    log.warning("could not stop Athena query %s", qid)
                raise BackendTimeout(
                    f"the query did not finish within {self.timeout_seconds:g} s; try again "
                    "(a repeated query is usually answered from Athena's result reuse)"
                )
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, self.max_poll_seconds)
        return self._results(qid)

    def _results(self, qid: str) -> list[tuple]:
        rows: list[tuple] = []
        types: list[str] | None = None
        token = None
        first_page = True
        while True:
            kwargs = {"QueryExecutionId": qid, "MaxResults": 1000}
            if token:
                kwargs["NextToken"] = token
            page = self._call("get_query_results", **kwargs)
            result = page["ResultSet"]
            if types is None:
                types = [c["Type"] for c in result["ResultSetMetadata"]["ColumnInfo"]]
            data = result.get("Rows", [])
            if first_page and data:  # a SELECT's first row holds the column names
                data = data[1:]
            first_page = False
            for row in data:
                cells = row.get("Data", [])
                rows.append(
                    tuple(
                        _convert(types[i], cells[i].get("VarCharValue") if i < len(cells) else None)
                        for i in range(len(types))
                    )
                )
            token = page.get("NextToken")
            if not token:
                return rows


def build_tag(build_id: str) -> str | None:
    """The suffix of a build's tables, ``<mart>__b<tag>``: the first 12 hex digits of the
    build's dbt invocation_id, as macros/served_builds.sql (served_build_tag) names them; None
    for a build id that is not an invocation id."""
    if not _INVOCATION_ID.match(build_id):
        return None
    return build_id.replace("-", "").lower()[:12]


def load_marts(path: Path = SERVED_JSON) -> list[ServedMart]:
    """The served-mart declarations the Lambda zip carries (``make package`` writes them from
    the models' yml); from the dbt project itself when run from a checkout."""
    if path.is_file():
        return from_json(path.read_text(encoding="utf-8"))
    return from_project(Path(__file__).resolve().parents[2])


class AthenaSnapshot:
    """One build on Athena: the statements of api/service.py, run by ``AthenaClient``."""

    def __init__(
        self,
        runner: AthenaClient,
        schema: str,
        build_id: str,
        data_as_of,
        built_at=None,
        marts: Sequence[ServedMart] = (),
        deadline: float | None = None,
        per_build: bool = True,
    ) -> None:
        self.marts = {m.name: m for m in marts}
        self.deadline = deadline
        self._runner = runner
        self._schema = schema
        self.build_id = build_id
        self.data_as_of = data_as_of
        self.built_at = built_at
        self.per_build = per_build
        self.build_tag = build_tag(build_id) if per_build else None
        tag = build_id if _SAFE_BUILD_ID.match(build_id) else "unknown"
        self._tag = f"/* duff build {tag} */ "

    def table(self, name: str, key: Sequence[str] = ()) -> str:
        """A served mart of this build: its table ``<mart>__b<tag>``; the view ``<mart>``
        (the current build) only for a build id that names no tables."""
        if self.build_tag is not None and name in self.marts:
            return f'"{self._schema}"."{name}__b{self.build_tag}"'
        return f'"{self._schema}"."{name}"'

    def windows(
        self,
        mart: str,
        order: Sequence[tuple[str, bool]],
        equal: Mapping[str, object],
        after: object,
        need: int,
    ) -> Iterator[tuple[str, bool]]:
        """The whole table, once: Athena prunes by partition, and a second statement would
        cost a second query's latency."""
        yield self.table(mart, tuple(equal)), True

    def for_request(self) -> AthenaSnapshot:
        """This build with a fresh time budget shared by the request's queries."""
        return AthenaSnapshot(
            self._runner,
            self._schema,
            self.build_id,
            self.data_as_of,
            self.built_at,
            tuple(self.marts.values()),
            self._runner.deadline(),
            self.per_build,
        )

    def query(self, sql: str, params: Sequence[object]) -> list[tuple]:
        return self._runner.run(self._tag + sql, params, deadline=self.deadline)


class AthenaBackend:
    """Snapshots over Athena; the build id is re-read at most every ``build_check_seconds``,
    off the request path once a build is known (a thread; a request never waits for it, and a
    failed check, e.g. TABLE_NOT_FOUND while a build replaces the table, keeps the current one).

    Two cases read it on the request path instead:

    * no build known yet: the request waits for the check. A stack no build has reached has no
      ``mart_build_info``; that failure is "no data yet" (None: 503), and the next check waits
      ``build_check_seconds``, so probes of a fresh stack do not each start a query.
    * a build last checked ``stale_after_seconds`` ago or more (an execution environment left
      idle): each build drops the tables of the build before the one it replaces
      (macros/served_builds.sql), so the tables of a build this old may be gone and a request
      answered from it would fail. The default, 60 s, is well under the time between two
      builds (a dbt build on Athena takes minutes).

    A build whose ``built_at`` is older than the one already served is ignored (never older),
    within this execution environment.
    """

    def __init__(
        self,
        runner: AthenaClient,
        schema: str,
        *,
        build_check_seconds: float = 10.0,
        stale_after_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        marts: Sequence[ServedMart] | None = None,
        check_in_background: bool = True,
    ) -> None:
        self.runner = runner
        self.schema = schema
        self.marts = list(load_marts() if marts is None else marts)
        self.build_check_seconds = build_check_seconds
        self.stale_after_seconds = max(stale_after_seconds, build_check_seconds)
        self.check_in_background = check_in_background
        self._clock = clock
        self._snap: AthenaSnapshot | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._checking: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings) -> AthenaBackend:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "athena",
            region_name=settings.athena_region,
            config=Config(retries={"mode": "adaptive", "max_attempts": 5}),
        )
        runner = AthenaClient(
            client,
            work_group=settings.athena_work_group,
            database=settings.athena_schema,
            reuse_minutes=settings.athena_reuse_minutes,
            timeout_seconds=settings.athena_timeout_seconds,
        )
        return cls(
            runner, settings.athena_schema, build_check_seconds=settings.athena_build_check_seconds
        )

    def snapshot(self) -> AthenaSnapshot | None:
        """The build to answer from, with a fresh per-request time budget."""
        with self._lock:
            since = self._clock() - self._checked
            due = since >= self.build_check_seconds
            if self._snap is None:
                if due:  # nothing to serve yet: the request waits for the check
                    self._check_first()
            elif since >= self.stale_after_seconds:
                self._check_quietly()  # its tables may be gone: not answered from it unchecked
            elif due and self.check_in_background:
                if self._checking is None or not self._checking.is_alive():
                    self._checked = self._clock()
                    self._checking = threading.Thread(
                        target=self._check_quietly, name="duff-athena-build-check", daemon=True
                    )
                    self._checking.start()
            elif due:
                self._check_quietly()
            snap = self._snap
        return snap.for_request() if snap is not None else None

    def _check_first(self) -> None:
        try:
            self._check()
        except AthenaQueryError as exc:
            if not exc.table_not_found:
                raise  # no access, a wrong work group...: a fault (500), not "no data yet"
            self._checked = self._clock()  # no mart_build_info: no build has reached the stack
            log.warning("no build to serve yet (%s: %s)", exc, exc.reason)

    def _check_quietly(self) -> None:
        try:
            self._check()
        except Exception:  # keep serving the build we have
            self._checked = self._clock()  # and try again after the interval, not at once
            log.exception("could not re-read mart_build_info; serving the current build")

    def _check(self) -> None:
        rows = self.runner.run(
            f'select build_id, built_at, data_as_of from "{self.schema}"."mart_build_info"',
            [],
            reuse=False,
        )
        self._checked = self._clock()
        if not rows:
            return
        build_id, built_at, data_as_of = str(rows[0][0]), rows[0][1], rows[0][2]
        current = self._snap
        newer = (
            current is None
            or current.built_at is None
            or built_at is None
            or built_at >= current.built_at
        )
        if (current is None or current.build_id != build_id) and newer:
            self._snap = AthenaSnapshot(
                self.runner,
                self.schema,
                build_id,
                data_as_of,
                built_at,
                self.marts,
                per_build=self._has_build_tables(build_id),
            )

    def _has_build_tables(self, build_id: str) -> bool:
        """Whether the build's tables exist (one query when a new build is seen). A build made
        before per-build tables (the first after this code is deployed names none yet) is
        served from the views ``<mart>``, which are its tables then."""
        tag = build_tag(build_id)
        if tag is None or not self.marts:
            return False
        probe = f'"{self.schema}"."{self.marts[0].name}__b{tag}"'
        try:
            self.runner.run(f"select * from {probe} limit 0", [], reuse=False)
        except AthenaQueryError:
            log.warning("build %s has no table %s; serving the views", build_id, probe)
            return False
        return True

    def close(self) -> None:
        pass
