"""The embedded real-time store: one SQLite file under ``$DUFF_LAKE/realtime/store.sqlite``.

WAL mode: the consumer writes while the API reads (readers never block the writer and always
see a whole committed batch). One transaction per applied batch holds the new order versions,
the per-day aggregates and the shard's checkpoint together, so a consumer killed at any point
(SIGKILL included) leaves either all of a batch or none of it, and the next consumer resumes
from the checkpoint: redelivered records compare as "not newer" and change nothing.

Tables
    orders(order_id, pa_date, channel, status, units, liters_milli, revenue_cents,
           received_us, version)        one row: the newest version of each order
    daily(pa_date, channel, status, orders, units, liters_milli, revenue_cents)
    checkpoints(shard, sequence, offset, landed_sequence, landed_offset, landed_at_us)
        sequence/offset: next record to apply; landed_*: next record to land in the lake
    landing(shard, first_sequence, last_sequence, offset, end_offset, ingest_id, landed_at_us)
        a lake batch being published (at most one per shard): finished on restart
    meta(key, value)                     as_of_us; stream: the one stream whose figures and
                                         checkpoints the store holds (bind_stream)

Sums are Python integers stored as decimal text (cents and millilitres can exceed int64).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from realtime.figures import deltas, summary
from realtime.model import Order

_SCHEMA = """
create table if not exists orders (
    order_id integer primary key,
    pa_date text not null,
    channel text not null,
    status text not null,
    units text not null,
    liters_milli text not null,
    revenue_cents text not null,
    received_us integer not null,
    version text not null
);
create index if not exists orders_by_day on orders (pa_date, received_us);
create table if not exists daily (
    pa_date text not null,
    channel text not null,
    status text not null,
    orders integer not null,
    units text not null,
    liters_milli text not null,
    revenue_cents text not null,
    primary key (pa_date, channel, status)
);
create table if not exists checkpoints (
    shard text primary key,
    sequence integer not null,
    "offset" integer not null,
    landed_sequence integer not null,
    landed_offset integer not null,
    landed_at_us integer
);
create table if not exists landing (
    shard text primary key,
    first_sequence integer not null,
    last_sequence integer not null,
    "offset" integer not null,
    end_offset integer not null,
    ingest_id text not null,
    landed_at_us integer not null
);
create table if not exists meta (key text primary key, value text not null);
"""


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Checkpoint:
    shard: str
    sequence: int = 1  # next record to apply
    offset: int = 0
    landed_sequence: int = 1  # next record to land
    landed_offset: int = 0
    landed_at_us: int | None = None


@dataclass(frozen=True)
class Landing:
    shard: str
    first_sequence: int
    last_sequence: int
    offset: int
    end_offset: int
    ingest_id: str
    landed_at_us: int


def store_path(lake: str) -> Path:
    return Path(lake) / "realtime" / "store.sqlite"


def _wal(db: sqlite3.Connection, deadline: float) -> None:
    """Put the database in WAL mode. Processes opening a new store at once (``consume`` starts
    one per shard) contend for it, and SQLite answers the mode change "database is locked"
    without waiting for the connection's busy timeout: try again until ``deadline``."""
    while True:
        try:
            db.execute("pragma journal_mode=wal")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class StoreOfAnotherStream(Exception):
    """The store holds another stream's figures and checkpoints."""


class SqliteStore:
    """Read/write access for the consumer; :func:`read_summary` is the API's read-only path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        _wal(self.db, deadline=time.monotonic() + 30)
        # A commit survives the process being killed (the OS has it); a power cut may lose the
        # last batches together with their checkpoint, which the stream then redelivers.
        self.db.execute("pragma synchronous=normal")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def bind_stream(self, uri: str) -> None:
        """Bind the store to the stream ``uri``, or refuse if it holds another's.

        Checkpoints are keyed by shard name, which every local stream shares (``shard-0000``
        ...): a consumer of a second stream would start from the first's positions and skip
        its records. So the first stream to use the store names it, and another stream is
        refused (one store per lake: a second stream needs its own ``DUFF_LAKE``; ``reset``
        rebuilds the store for the stream it is run for, and binds it to that one). A store
        made before the binding is bound by the next stream that uses it."""
        with self._tx() as db:
            row = db.execute("select value from meta where key = 'stream'").fetchone()
            if row is None:
                db.execute("insert into meta values ('stream', ?)", (uri,))
            elif row[0] != uri:
                raise StoreOfAnotherStream(
                    f"{self.path} holds the figures and checkpoints of {row[0]}, not {uri}: "
                    f"one store per lake, so give {uri} its own DUFF_LAKE, set DUFF_STREAM "
                    f"back, or rebuild this store for {uri} from the lake "
                    "(python -m realtime reset, consumer stopped)"
                )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("begin immediate")
        try:
            yield self.db
        except BaseException:
            self.db.execute("rollback")
            raise
        self.db.execute("commit")

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, shard: str) -> Checkpoint:
        row = self.db.execute(
            'select sequence, "offset", landed_sequence, landed_offset, landed_at_us '
            "from checkpoints where shard = ?",
            (shard,),
        ).fetchone()
        return Checkpoint(shard, *row) if row else Checkpoint(shard)

    def _put_checkpoint(self, db: sqlite3.Connection, cp: Checkpoint) -> None:
        db.execute(
            'insert or replace into checkpoints (shard, sequence, "offset", landed_sequence, '
            "landed_offset, landed_at_us) values (?, ?, ?, ?, ?, ?)",
            (
                cp.shard,
                cp.sequence,
                cp.offset,
                cp.landed_sequence,
                cp.landed_offset,
                cp.landed_at_us,
            ),
        )

    def set_checkpoint(self, cp: Checkpoint) -> None:
        with self._tx() as db:
            self._put_checkpoint(db, cp)

    # -- applying a batch ------------------------------------------------------------------

    def _stored(self, db: sqlite3.Connection, ids: list[int]) -> dict[int, Order]:
        out: dict[int, Order] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in db.execute(
                "select order_id, pa_date, channel, status, units, liters_milli, revenue_cents, "
                f"received_us, version from orders where order_id in ({marks})",
                chunk,
            ):
                out[r[0]] = Order(
                    r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), r[7], r[8]
                )
        return out

    def apply(self, incoming: dict[int, Order], cp: Checkpoint) -> int:
        """Apply the newest versions of a batch and move the checkpoint, in one transaction;
        returns how many orders changed (a redelivered batch changes none)."""
        with self._tx() as db:
            changed, delta = deltas(incoming, self._stored(db, list(incoming)))
            db.executemany(
                "insert or replace into orders values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        o.order_id,
                        o.pa_date,
                        o.channel,
                        o.status,
                        str(o.units),
                        str(o.liters_milli),
                        str(o.revenue_cents),
                        o.received_us,
                        o.version,
                    )
                    for o in changed
                ],
            )
            for (day, channel, status), d in delta.items():
                row = db.execute(
                    "select orders, units, liters_milli, revenue_cents from daily "
                    "where pa_date = ? and channel = ? and status = ?",
                    (day, channel, status),
                ).fetchone()
                cur = [int(x) for x in row] if row else [0, 0, 0, 0]
                new = [a + b for a, b in zip(cur, d, strict=True)]
                if new[0] == 0:
                    db.execute(
                        "delete from daily where pa_date = ? and channel = ? and status = ?",
                        (day, channel, status),
                    )
                else:
                    db.execute(
                        "insert or replace into daily values (?, ?, ?, ?, ?, ?, ?)",
                        (day, channel, status, new[0], str(new[1]), str(new[2]), str(new[3])),
                    )
            self._put_checkpoint(db, cp)
            if changed:
                db.execute("insert or replace into meta values ('as_of_us', ?)", (str(now_us()),))
        return len(changed)

    # -- lake landings ---------------------------------------------------------------------

    def begin_landing(self, landing: Landing) -> None:
        with self._tx() as db:
            db.execute(
                "insert or replace into landing values (?, ?, ?, ?, ?, ?, ?)",
                (
                    landing.shard,
                    landing.first_sequence,
                    landing.last_sequence,
                    landing.offset,
                    landing.end_offset,
                    landing.ingest_id,
                    landing.landed_at_us,
                ),
            )

    def pending_landing(self, shard: str) -> Landing | None:
        row = self.db.execute(
            'select shard, first_sequence, last_sequence, "offset", end_offset, ingest_id, '
            "landed_at_us from landing where shard = ?",
            (shard,),
        ).fetchone()
        return Landing(*row) if row else None

    def finish_landing(self, landing: Landing) -> None:
        with self._tx() as db:
            cp = self.checkpoint(landing.shard)
            self._put_checkpoint(
                db,
                Checkpoint(
                    landing.shard,
                    cp.sequence,
                    cp.offset,
                    landing.last_sequence + 1,
                    landing.end_offset,
                    landing.landed_at_us,
                ),
            )
            db.execute("delete from landing where shard = ?", (landing.shard,))

    # -- reading ---------------------------------------------------------------------------

    def summary(self, day: dt.date) -> dict:
        return _summary(self.db, day)

    def reset(self, stream_uri: str | None = None) -> None:
        """Forget every figure and checkpoint (the runbook's reset; the lake is untouched), and
        bind the store to ``stream_uri`` (the stream whose lake batches it is rebuilt from;
        None: unbound)."""
        with self._tx() as db:
            for table in ("orders", "daily", "checkpoints", "landing", "meta"):
                db.execute(f"delete from {table}")
            if stream_uri is not None:
                db.execute("insert into meta values ('stream', ?)", (stream_uri,))


def _summary(db: sqlite3.Connection, day: dt.date) -> dict:
    text = day.isoformat()
    # One read transaction: the aggregates, as_of and last_event_at of the same commit.
    db.execute("begin")
    try:
        rows = [
            (c, s, int(o), int(u), int(li), int(r))
            for c, s, o, u, li, r in db.execute(
                "select channel, status, orders, units, liters_milli, revenue_cents from daily "
                "where pa_date = ?",
                (text,),
            )
        ]
        last = db.execute(
            "select max(received_us) from orders where pa_date = ?", (text,)
        ).fetchone()[0]
        meta = db.execute("select value from meta where key = 'as_of_us'").fetchone()
    finally:
        db.execute("commit")
    return summary(day, rows, int(meta[0]) if meta else None, last)


class SummaryReader:
    """The API's read-only view: opens the store lazily (it may not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used by one request at a time

    def summary(self, day: dt.date) -> dict:
        with self._lock:
            if self._db is None:
                if not self.path.exists():
                    return summary(day, [], None, None)
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=10,
                )
            try:
                return _summary(self._db, day)
            except sqlite3.OperationalError as exc:
                self._db.close()  # reopen next time: the file may have been replaced
                self._db = None
                if "no such table" in str(exc):  # a consumer is creating the store right now
                    return summary(day, [], None, None)
                raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
