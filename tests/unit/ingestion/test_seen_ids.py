"""Duplicate detection across batches: SeenIds against a plain Python set."""

from __future__ import annotations

import numpy as np

from ingestion import seen_ids
from ingestion.seen_ids import IdRun, SeenIds, _merge_sorted


def reference_first_seen(ids: np.ndarray, reference: set[int]) -> list[bool]:
    """What first_seen must answer, from a plain set (updated with ``ids``)."""
    expected = []
    for x in ids.tolist():
        expected.append(x not in reference)
        reference.add(x)
    return expected


def test_first_seen_matches_a_python_set_across_many_batches() -> None:
    # Given batches of ids with repeats inside and across batches
    rng = np.random.default_rng(7)
    seen = SeenIds()
    reference: set[int] = set()
    for _ in range(60):
        ids = rng.integers(-3, 4000, rng.integers(0, 400)).astype(np.int64)
        # When each batch is checked
        first = seen.first_seen(ids)
        # Then exactly the ids never seen before are marked first (the earliest occurrence)
        assert first.tolist() == reference_first_seen(ids, reference)
    # And the state is a few sorted runs holding each id once
    assert len(seen) == len(reference)
    assert len(seen.runs) <= 12
    assert all(np.all(r.starts[1:] > r.ends[:-1]) for r in seen.runs)


def test_merge_sorted_keeps_order() -> None:
    a = np.array([1, 5, 9], dtype=np.int64)
    b = np.array([0, 2, 3, 10], dtype=np.int64)
    assert _merge_sorted(a, b).tolist() == [0, 1, 2, 3, 5, 9, 10]
    assert _merge_sorted(a, b[:0]).tolist() == [1, 5, 9]


def test_mostly_increasing_ids_with_resent_ones_match_a_python_set() -> None:
    # Given batches in order_id order (only ids above everything seen are new without a
    # lookup) with some ids re-sent from earlier batches and some repeated inside a batch
    rng = np.random.default_rng(11)
    seen = SeenIds()
    reference: set[int] = set()
    next_id = 1
    for _ in range(40):
        fresh = np.arange(next_id, next_id + 300, dtype=np.int64)
        next_id += 300
        resent = rng.integers(1, next_id, 12).astype(np.int64)
        ids = np.concatenate([fresh, resent, fresh[:3]])
        rng.shuffle(ids[250:])  # the tail of the batch out of order
        first = seen.first_seen(ids)
        assert first.tolist() == reference_first_seen(ids, reference)
    assert seen.top == max(reference)
    assert len(seen) == len(reference)


def test_numbered_ids_are_kept_as_intervals() -> None:
    # Given 200 batches of 1000 ids numbered in order, with every 100th id missing (an invalid
    # row) and one id re-sent per batch
    seen = SeenIds()
    reference: set[int] = set()
    for b in range(200):
        ids = np.array(
            [i for i in range(b * 1000 + 1, b * 1000 + 1001) if i % 100] + [b * 7 + 1],
            dtype=np.int64,
        )
        first = seen.first_seen(ids)
        assert first.tolist() == reference_first_seen(ids, reference)
    # Then the ~198,000 ids take memory per gap, not per id
    assert len(seen) == len(reference) > 198_000
    assert seen.nbytes <= 2 * 16 * 2_000
    missing = np.array([200, 5_000, 199_900, 200_001], dtype=np.int64)
    assert seen.first_seen(missing).tolist() == [True, True, True, True]


def test_runs_merge_exactly_in_every_form() -> None:
    # Given runs as intervals, as plain arrays and mixed, merged in both orders
    rng = np.random.default_rng(5)
    for _ in range(50):
        universe = rng.permutation(np.arange(0, 400, dtype=np.int64))
        cut = rng.integers(0, 400)
        a_ids = np.sort(universe[:cut])
        b_ids = np.sort(universe[cut : cut + rng.integers(0, 400 - cut + 1)])
        if rng.random() < 0.5:  # dense ranges: interval form
            a_ids = np.arange(0, cut, dtype=np.int64)
            b_ids = np.arange(cut + 5, cut + 5 + rng.integers(0, 50), dtype=np.int64)
        a = IdRun.of(a_ids, a_ids, len(a_ids))
        b = IdRun.of(b_ids, b_ids, len(b_ids))
        for merged in (a.merge(b), b.merge(a)):
            assert merged.count == len(a_ids) + len(b_ids)
            probe = np.arange(-2, 460, dtype=np.int64)
            want = np.isin(probe, np.concatenate([a_ids, b_ids]))
            assert merged.contains(probe).tolist() == want.tolist()


def test_shuffled_ids_move_to_a_dense_window_and_still_match_a_set(monkeypatch) -> None:
    # Given ids 1..60,000 shuffled, re-sent ones, and outliers far outside their range, with
    # the window allowed from 64 KiB of runs
    monkeypatch.setattr(seen_ids, "DENSE_MIN_RUN_BYTES", 64 * 1024)
    rng = np.random.default_rng(3)
    ids = rng.permutation(60_000).astype(np.int64) + 1
    resent = rng.choice(ids, 3_000)
    outliers = np.array([10**15, 10**15, 7 * 10**17, -5], dtype=np.int64)
    stream = np.concatenate([ids[:30_000], resent, outliers, ids[30_000:], resent, outliers])
    seen = SeenIds()
    reference: set[int] = set()
    for batch in np.array_split(stream, 40):
        # When each batch is checked
        first = seen.first_seen(batch)
        # Then the answers are a set's
        assert first.tolist() == reference_first_seen(batch, reference)
    # And the ids sit in a window of about one byte per id, the outliers in runs
    assert seen.window is not None
    assert len(seen) == len(reference) == 60_003
    assert seen.nbytes < 2 * 60_000


def test_over_a_million_shuffled_ids_move_to_a_window() -> None:
    # Given 1,300,000 distinct ids from 1..4,000,000 in random order (too scattered for
    # intervals; past the 256 KiB of runs that open a window), checked in blocks as landing does
    rng = np.random.default_rng(5)
    ids = rng.choice(4_000_000, 1_300_000, replace=False).astype(np.int64) + 1
    seen = SeenIds()
    firsts = 0
    for batch in np.array_split(ids, 18):
        firsts += int(seen.first_seen(batch).sum())
    # Then every id is new once, and they sit in a window of ~1 byte per id of their range
    # and some headroom (~5 MB) rather than runs of 8 bytes per id (10.4 MB)
    assert firsts == len(seen) == 1_300_000
    assert seen.window is not None and seen.nbytes < 6_000_000
