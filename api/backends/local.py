"""Local twin of the Athena backend: the newest complete exported build, in memory.

A build is ``$DUFF_LAKE/marts/builds/<YYYYMMDDTHHMMSSffffffZ>_<invocation_id>/`` holding one
Parquet file per served relation, except mart_orders: one file per day,
``mart_orders/pa_date=YYYY-MM-DD/<file>.parquet`` (an empty lake's build has none), and
``_SUCCESS.parquet`` (mart_build_info's row, written last). Builds of the earlier layout, one
``mart_orders.parquet``, are still read.
The backend loads a complete build whole into memory with pyarrow (never the DuckDB warehouse
file, which dbt locks while it builds), then swaps one reference: every request takes
that reference once, so all routes switch together and no answer mixes two builds. It only ever
moves to a build whose name sorts after the one it serves, checks at most every
``reload_interval`` seconds, keeps serving the last good build when a newer one is incomplete or
unreadable, and prunes builds older than the ``keep_builds`` newest complete ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from api.service import (
    CHANNEL_COLUMNS,
    CLIENT_COLUMNS,
    DAILY_COLUMNS,
    ORDER_COLUMNS,
    PRODUCT_CHANNEL_COLUMNS,
    PRODUCT_COLUMNS,
    STATUS_COLUMNS,
    OrderFilter,
    _client_item,
)

log = logging.getLogger("duff.api.local")

RELATIONS = (
    "mart_client_sales",
    "mart_product_sales",
    "mart_channel_sales",
    "mart_product_channel_sales",
    "mart_status_summary",
    "mart_daily_sales",
    "mart_orders",
)  # mart_build_info's one row is _SUCCESS.parquet itself
SUCCESS = "_SUCCESS.parquet"
BUILD_NAME = re.compile(r"^[0-9]{8}T[0-9]{12}Z_[A-Za-z0-9_-]{1,64}$")


class BuildError(Exception):
    """A build directory cannot be served."""


def _utc(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise BuildError(f"expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def read_success(build_dir: Path) -> dict:
    """mart_build_info's row from ``_SUCCESS.parquet``; BuildError when absent or unreadable."""
    path = build_dir / SUCCESS
    try:
        rows = pq.ParquetFile(path).read().to_pylist()
    except (OSError, ValueError) as err:  # pyarrow errors derive from these
        raise BuildError(f"{path}: {err}") from err
    if len(rows) != 1 or not rows[0].get("build_id"):
        raise BuildError(f"{path}: expected exactly one row with a build_id")
    row = rows[0]
    return {
        "build_id": str(row["build_id"]),
        "built_at": _utc(row.get("built_at")),
        "data_as_of": _utc(row.get("data_as_of")),
    }


def _read(path: Path) -> pa.Table:
    if not path.is_file():
        raise BuildError(f"{path} is missing")
    try:
        return pq.ParquetFile(path).read()
    except (OSError, ValueError, pa.ArrowException) as err:
        raise BuildError(f"{path}: {err}") from err


def _rows(table: pa.Table, columns: Sequence[str], path: Path) -> list[tuple]:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise BuildError(f"{path}: missing columns {missing}")
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


# mart_orders' columns as the export writes them (docs/architecture.md section 2); a build with
# no order file at all (an empty lake) serves zero orders of these types.
ORDERS_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("client_id", pa.int64()),
        ("product_id", pa.int64()),
        ("product_description", pa.string()),
        ("units", pa.int64()),
        ("unit_price", pa.decimal128(12, 2)),
        ("total_amount", pa.decimal128(22, 2)),
        ("liters", pa.decimal128(20, 3)),
        ("channel", pa.string()),
        ("status", pa.string()),
        ("pa_date", pa.date32()),
    ]
)
DAY_DIR = re.compile(r"^pa_date=[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _read_orders(build_dir: Path) -> pa.Table:
    """mart_orders of a build with ORDER_COLUMNS, in no particular order: every file under
    ``mart_orders/pa_date=*/`` (none is zero orders), or the earlier ``mart_orders.parquet``."""
    single = build_dir / "mart_orders.parquet"
    folder = build_dir / "mart_orders"
    if folder.is_dir():
        paths = sorted(
            f
            for day in folder.iterdir()
            if DAY_DIR.match(day.name) and day.is_dir()
            for f in day.iterdir()
            if f.name.endswith(".parquet")
        )
    elif single.exists():
        paths = [single]
    else:
        raise BuildError(f"{folder} is missing")
    tables = []
    for path in paths:
        table = _read(path)
        missing = [c for c in ORDER_COLUMNS if c not in table.column_names]
        if missing:
            raise BuildError(f"{path}: missing columns {missing}")
        tables.append(table.select(list(ORDER_COLUMNS)))
    if not tables:
        return ORDERS_SCHEMA.empty_table().select(list(ORDER_COLUMNS))
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as err:  # the days disagree on a column's type
        raise BuildError(f"{folder}: {err}") from err


class LocalSnapshot:
    """One build held in memory: small marts as Python rows, mart_orders as an Arrow table.

    Immutable once loaded, so any number of request threads read it without locks. Lookups
    are binary searches over sorted keys (exact Decimal compare for the clients' spend) and
    Arrow compute over slices for order filters, so a page costs microseconds to a few
    milliseconds at a million orders.
    """

    def __init__(self, name: str, build_dir: Path) -> None:
        info = read_success(build_dir)
        self.name = name
        self.build_id = info["build_id"]
        self.built_at = info["built_at"]
        self.data_as_of = info["data_as_of"]

        def rows(rel: str, columns: Sequence[str]) -> list[tuple]:
            path = build_dir / f"{rel}.parquet"
            return _rows(_read(path), columns, path)

        clients = rows("mart_client_sales", CLIENT_COLUMNS)
        clients.sort(key=lambda r: (-r[5], r[0]))  # total_spend desc (exact Decimal), client_id
        self._clients = clients
        self._client_keys = [(-r[5], r[0]) for r in clients]
        self._client_by_id = {r[0]: r for r in clients}
        self._client_json = [_client_item(r).text for r in clients]  # rendered once per build
        self._products = sorted(rows("mart_product_sales", PRODUCT_COLUMNS), key=lambda r: r[0])
        self._channels = sorted(rows("mart_channel_sales", CHANNEL_COLUMNS), key=lambda r: r[0])
        self._product_channels = sorted(
            rows("mart_product_channel_sales", PRODUCT_CHANNEL_COLUMNS),
            key=lambda r: (r[0], r[2]),
        )
        self._statuses = sorted(rows("mart_status_summary", STATUS_COLUMNS), key=lambda r: r[0])
        self._daily = sorted(rows("mart_daily_sales", DAILY_COLUMNS), key=lambda r: r[0])
        self._daily_dates = [r[0] for r in self._daily]

        orders = _read_orders(build_dir)
        ids = orders.column("order_id")
        if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            orders = orders.sort_by("order_id")  # the days interleave: sort once per build
        self._orders = orders.combine_chunks()
        self._order_ids = array("q", self._orders.column("order_id").to_pylist())
        by_client = pc.sort_indices(
            self._orders, sort_keys=[("client_id", "ascending"), ("order_id", "ascending")]
        )
        self._by_client = by_client
        self._client_sorted = array("q", pc.take(self._orders["client_id"], by_client).to_pylist())
        self._ids_by_client = array("q", pc.take(self._orders["order_id"], by_client).to_pylist())
        self._order_json = self._prepare_json()

    # -- the snapshot interface ------------------------------------------------------------
    def clients_page(self, after: tuple[Decimal, int] | None, limit: int) -> list[tuple]:
        start = 0 if after is None else bisect_right(self._client_keys, (-after[0], after[1]))
        return self._clients[start : start + limit]

    def clients_json_page(self, after: tuple[Decimal, int] | None, limit: int) -> list[tuple]:
        """``(total_spend, client_id, item JSON text)`` of the page, rendered at load time."""
        start = 0 if after is None else bisect_right(self._client_keys, (-after[0], after[1]))
        return [
            (r[5], r[0], text)
            for r, text in zip(
                self._clients[start : start + limit],
                self._client_json[start : start + limit],
                strict=True,
            )
        ]

    def client(self, client_id: int) -> tuple | None:
        return self._client_by_id.get(client_id)

    def products(self) -> list[tuple]:
        return list(self._products)

    def channel_sales(self) -> list[tuple]:
        return list(self._channels)

    def product_channel_sales(self) -> list[tuple]:
        return list(self._product_channels)

    def status_summary(self) -> list[tuple]:
        return list(self._statuses)

    def daily_sales(self, date_from: dt.date | None, date_to: dt.date | None) -> list[tuple]:
        lo = 0 if date_from is None else bisect_left(self._daily_dates, date_from)
        hi = len(self._daily) if date_to is None else bisect_right(self._daily_dates, date_to)
        return self._daily[lo:hi]

    def _mask(self, cols: pa.Table, f: OrderFilter):
        conds = []
        if f.product_id is not None:
            conds.append(pc.equal(cols["product_id"], pa.scalar(f.product_id, pa.int64())))
        if f.status is not None:
            conds.append(pc.equal(cols["status"], f.status))
        if f.channel is not None:
            conds.append(pc.equal(cols["channel"], f.channel))
        if f.date_from is not None:
            conds.append(pc.greater_equal(cols["pa_date"], pa.scalar(f.date_from, pa.date32())))
        if f.date_to is not None:
            conds.append(pc.less_equal(cols["pa_date"], pa.scalar(f.date_to, pa.date32())))
        if not conds:
            return None
        mask = conds[0]
        for cond in conds[1:]:
            mask = pc.and_(mask, cond)
        return mask

    def _order_positions(self, f: OrderFilter, after: int | None, limit: int) -> pa.Array | None:
        """Row positions in ``self._orders`` of the page: matching ``f``, order_id > after."""
        t = self._orders
        if f.client_id is not None:  # the client's rows are contiguous in the by-client index
            lo = bisect_left(self._client_sorted, f.client_id)
            hi = bisect_right(self._client_sorted, f.client_id, lo)
            if after is not None:
                lo = bisect_right(self._ids_by_client, after, lo, hi)
            source = self._by_client
        else:
            lo = 0 if after is None else bisect_right(self._order_ids, after)
            hi = len(self._order_ids)
            source = None
        filter_cols = [
            column
            for column, value in (
                ("product_id", f.product_id),
                ("status", f.status),
                ("channel", f.channel),
                ("pa_date", f.date_from if f.date_from is not None else f.date_to),
            )
            if value is not None
        ]
        picked: list[pa.Array] = []
        need, pos, chunk = limit, lo, max(4 * limit, 2048)
        while pos < hi and need > 0:
            end = min(hi, pos + (chunk if filter_cols else need))
            positions = source.slice(pos, end - pos) if source is not None else None
            if not filter_cols:
                hits = positions if positions is not None else pa.array(range(pos, end), _U64)
            else:
                if positions is None:
                    cols = t.select(filter_cols).slice(pos, end - pos)
                else:
                    cols = t.select(filter_cols).take(positions)
                rel = pc.indices_nonzero(self._mask(cols, f)).slice(0, need)
                if positions is None:
                    hits = pc.add(rel, pa.scalar(pos, _U64))
                else:
                    hits = pc.take(positions, rel)
            picked.append(hits)
            need -= len(hits)
            pos = end
            chunk *= 4
        if not picked:
            return None
        return picked[0] if len(picked) == 1 else pa.concat_arrays(picked)

    def orders_page(self, f: OrderFilter, after: int | None, limit: int) -> list[tuple]:
        idx = self._order_positions(f, after, limit)
        if idx is None:
            return []
        out = self._orders.take(idx)
        columns = []
        for name in ORDER_COLUMNS:
            col = out.column(name)
            if name in _AS_TEXT:  # exact decimal / ISO date text: much cheaper than objects
                col = pc.cast(col, pa.string())
            columns.append(col.to_pylist())
        return list(zip(*columns, strict=True))

    def orders_json_page(self, f: OrderFilter, after: int | None, limit: int):
        """Like orders_page, but ``(order_id, item JSON text)`` pairs, rendered at load time.

        None when this build's column types do not allow it (the caller then renders rows).
        """
        if self._order_json is None:
            return None
        idx = self._order_positions(f, after, limit)
        if idx is None:
            return []
        ids = pc.take(self._orders.column("order_id"), idx).to_pylist()
        return list(zip(ids, pc.take(self._order_json, idx).to_pylist(), strict=True))

    def _prepare_json(self) -> pa.Array | None:
        """Every order's item as JSON text (one Arrow string array, rendered in C++ once per
        build: about 260 bytes an order, as large_string so 10 M orders fit), when the column types
        make that exact."""
        schema = self._orders.schema

        def is_decimal(name: str, scale: int) -> bool:
            typ = schema.field(name).type
            return pa.types.is_decimal(typ) and typ.scale == scale

        if not (
            all(pa.types.is_integer(schema.field(c).type) for c in _INT_COLUMNS)
            and is_decimal("unit_price", 2)
            and is_decimal("total_amount", 2)
            and is_decimal("liters", 3)
            and pa.types.is_date32(schema.field("pa_date").type)
            and all(pa.types.is_string(schema.field(c).type) for c in _TEXT_COLUMNS)
        ):
            log.warning("mart_orders has unexpected types; rendering orders in Python")
            return None
        t = self._orders
        cols: dict[str, pa.Array] = {"order_id": t.column("order_id")}
        for name in (*_INT_COLUMNS, "unit_price", "total_amount", "liters"):
            cols[name + "_json"] = pc.fill_null(pc.cast(t.column(name), pa.string()), "null")
        for name in _TEXT_COLUMNS:  # JSON-escape each distinct value once
            enc = pc.dictionary_encode(t.column(name)).combine_chunks()
            escaped = pa.array(
                [encode_basestring_ascii(v) for v in enc.dictionary.to_pylist()], pa.string()
            )
            cols[name + "_json"] = pc.fill_null(pc.take(escaped, enc.indices), "null")
        day = pc.cast(t.column("pa_date"), pa.string())
        cols["pa_date_json"] = pc.fill_null(pc.binary_join_element_wise('"', day, '"', ""), "null")
        # large_string (64-bit offsets): at ~260 bytes an order, 10 M orders are ~2.6 GB of
        # text, past the 2 GB a plain string array can hold (ArrowCapacityError).
        text = pa.large_string()
        pieces: list[object] = []
        for label, column in _JSON_LAYOUT:
            pieces.append(pa.scalar(label, text))
            pieces.append(pc.cast(cols[column], text))
        pieces.append(pa.scalar("}", text))
        return pc.binary_join_element_wise(*pieces, pa.scalar("", text)).combine_chunks()

    def close(self) -> None:
        """Nothing to release: memory goes when the last request holding it finishes."""


_U64 = pa.uint64()  # the index type of sort_indices and indices_nonzero
_INT_COLUMNS = ("order_id", "client_id", "product_id", "units")
_TEXT_COLUMNS = ("product_description", "channel", "status")
_JSON_LAYOUT = tuple(
    ((',"' if i else '{"') + name + '":', name + "_json") for i, name in enumerate(ORDER_COLUMNS)
)


_AS_TEXT = frozenset({"unit_price", "total_amount", "liters", "pa_date"})


class LocalBackend:
    def __init__(
        self,
        lake: str | Path,
        *,
        reload_interval: float = 2.0,
        keep_builds: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        lake_text = str(lake)
        if "://" in lake_text:
            raise ValueError(
                f"the local backend reads a local lake directory, not {lake_text!r}; "
                "use DUFF_API_BACKEND=athena in AWS"
            )
        self.builds_dir = Path(lake_text).resolve() / "marts" / "builds"
        self.reload_interval = reload_interval
        self.keep_builds = keep_builds
        self._clock = clock
        self._current: LocalSnapshot | None = None
        self._bad: set[str] = set()
        self._refresh_lock = threading.Lock()
        self._last_check = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what requests use --------------------------------------------------------------
    def snapshot(self) -> LocalSnapshot | None:
        """The build being served. Without a watcher thread, checks lazily (rate-limited)."""
        if self._thread is None and self._clock() - self._last_check >= self.reload_interval:
            self.refresh()
        return self._current

    # -- build discovery -------------------------------------------------------------------
    def _build_names(self) -> list[str]:
        try:
            names = [
                e.name for e in self.builds_dir.iterdir() if BUILD_NAME.match(e.name) and e.is_dir()
            ]
        except FileNotFoundError:
            return []
        return sorted(names)

    def refresh(self) -> bool:
        """Serve the newest complete build if it is newer than the current one.

        Returns True when it switched. Never moves to an older build; a build that fails to
        load is remembered and skipped (the current one stays in service).
        """
        if not self._refresh_lock.acquire(blocking=False):
            return False  # another thread is already loading
        try:
            self._last_check = self._clock()
            current = self._current.name if self._current else ""
            names = self._build_names()
            for name in reversed(names):
                if name <= current:
                    break
                if name in self._bad or not (self.builds_dir / name / SUCCESS).is_file():
                    continue
                started = time.perf_counter()
                try:
                    snap = LocalSnapshot(name, self.builds_dir / name)
                except BuildError as err:
                    log.error("cannot serve build %s: %s", name, err)
                    self._bad.add(name)
                    continue
                except Exception:  # unexpected data (e.g. nulls where none belong): skip it too
                    log.exception("cannot serve build %s", name)
                    self._bad.add(name)
                    continue
                self._current = snap  # the one swap: every later request sees the new build
                log.info(
                    "serving build %s (build_id %s), loaded in %.2fs",
                    name,
                    snap.build_id,
                    time.perf_counter() - started,
                )
                self._prune(names)
                return True
            return False
        finally:
            self._refresh_lock.release()

    def _prune(self, names: list[str]) -> None:
        """Remove builds older than the ``keep_builds`` newest complete ones."""
        complete = [
            n for n in names if n not in self._bad and (self.builds_dir / n / SUCCESS).is_file()
        ]
        if len(complete) <= self.keep_builds:
            return
        oldest_kept = complete[-self.keep_builds]
        serving = self._current.name if self._current else ""
        for name in names:
            if name < oldest_kept and name != serving:
                shutil.rmtree(self.builds_dir / name, ignore_errors=True)
                log.info("pruned old build %s", name)

    # -- background watcher --------------------------------------------------------------
    def start_watcher(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="duff-build-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval):
            try:
                self.refresh()
            except Exception:  # keep watching whatever happens
                log.exception("build watcher failed; will retry")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
