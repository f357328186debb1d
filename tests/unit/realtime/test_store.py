"""Exactly-once effect: re-sends replace, redeliveries count once, orders move between days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from realtime.events import judge, latest_orders
from realtime.sqlite_store import Checkpoint, SqliteStore, StoreOfAnotherStream
from tests.unit.realtime.helpers import event, records

DAY1, DAY2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "store.sqlite")
    yield s
    s.close()


def apply(store: SqliteStore, recs, shard="shard-0000") -> int:
    last = int(recs[-1].sequence)
    return store.apply(latest_orders(recs, judge(recs)), Checkpoint(shard, last + 1, 0))


def figures(store, day):
    s = store.summary(day)
    return (
        s["orders"],
        s["units"],
        s["revenue"],
        s["liters"],
        [(c["channel"], c["orders"]) for c in s["by_channel"]],
        [(c["status"], c["orders"]) for c in s["by_status"]],
    )


def test_a_resent_order_replaces_its_earlier_version_also_across_days(store):
    # Given order 1 on day 1, then a re-send of order 1 moved to day 2 with other figures
    first = records([event(1, order_date="2024-03-01"), event(2, order_date="2024-03-01")])
    apply(store, first)
    assert figures(store, DAY1)[:3] == (2, 8, Decimal("20.00"))
    moved = records(
        [
            event(
                1,
                order_date="2024-03-02",
                product_ccf=3,
                status="delivered",
                point_of_sale_channel="online",
            )
        ],
        start=3,
    )
    apply(store, moved)
    # Then day 1 keeps only order 2, day 2 holds the new version of order 1
    assert figures(store, DAY1) == (
        1,
        4,
        Decimal("10.00"),
        Decimal("2.000"),
        [("Retail", 1)],
        [("created", 1)],
    )
    assert figures(store, DAY2) == (
        1,
        3,
        Decimal("7.50"),
        Decimal("1.500"),
        [("Online", 1)],
        [("delivered", 1)],
    )
    # and last_event_at of day 1 is order 2's receipt, not the moved order's
    assert store.summary(DAY1)["last_event_at"] == "2024-05-01T12:00:00.002000Z"
    assert store.summary(DAY2)["last_event_at"] == "2024-05-01T12:00:00.003000Z"


def test_a_redelivered_batch_counts_once(store):
    batch = records([event(i, order_date="2024-03-01") for i in range(1, 6)])
    assert apply(store, batch) == 5
    before = store.summary(DAY1)
    # When the same records are delivered again (a retry, a restart from an old checkpoint)
    assert apply(store, batch) == 0
    assert apply(store, batch[2:]) == 0
    after = store.summary(DAY1)
    assert (after["orders"], after["revenue"]) == (5, Decimal("50.00"))
    assert after == before  # as_of did not move either: nothing changed


def test_an_older_version_delivered_late_does_not_override_a_newer_one(store):
    recs = records(
        [
            event(1, order_date="2024-03-01", product_ccf=1),
            event(1, order_date="2024-03-02", product_ccf=2),
        ]
    )
    apply(store, recs[1:])
    apply(store, recs[:1])  # the older one arrives later (another shard's consumer, a replay)
    assert figures(store, DAY1)[0] == 0
    assert figures(store, DAY2)[:2] == (1, 2)


def test_within_one_batch_the_last_valid_version_wins_and_rejects_do_not_count(store):
    recs = records(
        [
            event(1, order_date="2024-03-01", product_ccf=1),
            event(1, order_date="2024-03-01", product_ccf=5),
            event(1, order_date="2024-03-01", product_ccf="bad"),
        ]
    )
    apply(store, recs)
    assert figures(store, DAY1)[:2] == (1, 5)


def test_a_date_with_no_events_answers_zeros(store):
    s = store.summary(dt.date(2030, 1, 1))
    assert s == {
        "pa_date": "2030-01-01",
        "as_of": None,
        "last_event_at": None,
        "orders": 0,
        "units": 0,
        "liters": Decimal("0.000"),
        "revenue": Decimal("0.00"),
        "by_channel": [],
        "by_status": [],
    }


def test_sums_beyond_int64_stay_exact(store):
    big = "9999999999.99"
    recs = records(
        [
            event(i, order_date="2024-03-01", product_price=big, product_ccf=2147483647)
            for i in (1, 2)
        ]
    )
    apply(store, recs)
    expected = Decimal(big) * 2147483647 * 2
    assert store.summary(DAY1)["revenue"] == expected


def _arrivals_backwards(recs):
    """The same records with arrival stamps running backwards as the sequence goes on (Kinesis
    gives no guarantee that ApproximateArrivalTimestamp increases within a shard)."""
    from dataclasses import replace

    last = recs[-1].arrival_us
    return [replace(r, arrival_us=last - 1000 * i) for i, r in enumerate(recs)]


def test_within_a_shard_the_sequence_decides_even_when_arrival_stamps_run_backwards(store):
    # Given order 1 sent created, then delivered, on one shard, stamped in the reverse order
    recs = _arrivals_backwards(
        records(
            [
                event(1, order_date="2024-03-01", status="created"),
                event(1, order_date="2024-03-01", status="delivered"),
            ]
        )
    )
    assert recs[0].arrival_us > recs[1].arrival_us
    # When they come in one batch / Then the later one in the stream (delivered) counts
    apply(store, recs)
    assert figures(store, DAY1)[5] == [("delivered", 1)]


def test_a_later_batch_with_an_earlier_stamp_still_replaces_the_version(store):
    # Given created applied in one batch, then delivered in the next, stamped earlier
    first, second = _arrivals_backwards(
        records(
            [
                event(1, order_date="2024-03-01", status="created"),
                event(1, order_date="2024-03-01", status="delivered"),
            ]
        )
    )
    apply(store, [first])
    apply(store, [second])
    # Then the figures hold the stream's later version, as the lake's batches do
    assert figures(store, DAY1)[5] == [("delivered", 1)]


def test_the_store_holds_one_streams_checkpoints_and_refuses_another(store):
    # Given a store bound to local://orders, with shard-0000 applied up to sequence 7
    store.bind_stream("local://orders")
    store.set_checkpoint(Checkpoint("shard-0000", 7, 700))
    # When the same stream binds again, it is accepted
    store.bind_stream("local://orders")
    # but another stream, whose shards have the same names, is refused with both names
    with pytest.raises(StoreOfAnotherStream) as refused:
        store.bind_stream("local://other")
    assert "local://orders" in str(refused.value) and "local://other" in str(refused.value)
    assert store.checkpoint("shard-0000").sequence == 7
    # And a reset for a stream forgets the checkpoints and binds the store to that stream
    store.reset("local://other")
    assert store.checkpoint("shard-0000").sequence == 1
    store.bind_stream("local://other")
    with pytest.raises(StoreOfAnotherStream):
        store.bind_stream("local://orders")


def test_a_store_made_before_the_binding_is_bound_by_the_next_stream(store):
    # Given a store with a checkpoint and no stream named (as made before the binding)
    store.set_checkpoint(Checkpoint("shard-0001", 3, 30))
    # When a stream binds it, its checkpoints are kept, and another stream is refused after
    store.bind_stream("local://orders")
    assert store.checkpoint("shard-0001").sequence == 3
    with pytest.raises(StoreOfAnotherStream):
        store.bind_stream("local://b")


def _open_at_once(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        store = SqliteStore(path)
        store.bind_stream("local://orders")
        store.close()
        results.put("ok")
    except Exception as exc:  # reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path):
    # Given three processes (consume starts one per shard) opening one new store at the same
    # moment, twenty times: SQLite refused the WAL switch to the losers, "database is locked",
    # in about one try of eight, and that shard's worker died
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for i in range(20):
        barrier, results = ctx.Barrier(3), ctx.Queue()
        path = str(tmp_path / str(i) / "store.db")
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier, results)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        outcomes += [results.get(timeout=5) for _ in procs]
    # Then every one of them opened and bound it
    assert outcomes == ["ok"] * 60
