"""Duplicate detection: the order_ids already landed from this file, as a few sorted runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two sorted arrays with no common value, in one output array (no sort buffer)."""
    out = np.empty(len(a) + len(b), dtype=a.dtype)
    pos = np.searchsorted(a, b) + np.arange(len(b))
    rest = np.ones(len(out), dtype=bool)
    rest[pos] = False
    out[pos] = b
    out[rest] = a
    return out


@dataclass
class IdRun:
    """A sorted set of ids as disjoint intervals ``starts[i]..ends[i]`` (inclusive), ``count``
    ids in all. When the ids do not form long intervals, ``ends is starts`` (8 bytes per id)."""

    starts: np.ndarray
    ends: np.ndarray
    count: int

    @classmethod
    def of(cls, starts: np.ndarray, ends: np.ndarray, count: int) -> IdRun:
        """The run of these disjoint sorted intervals, coalesced; as a plain array of ids
        unless that takes more than twice the intervals' memory."""
        if len(starts) > 1:
            gap = starts[1:] != ends[:-1] + 1
            starts = starts[np.concatenate(([True], gap))]
            ends = ends[np.concatenate((gap, [True]))]
        if 2 * len(starts) <= count:
            return cls(starts, ends, count)
        if len(starts) == count:  # all single ids
            return cls(starts, starts, count)
        lengths = ends - starts + 1
        offsets = np.cumsum(lengths) - lengths  # where each interval starts in the array
        ids = np.repeat(starts - offsets, lengths) + np.arange(count)
        return cls(ids, ids, count)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.starts, ids, side="right") - 1
        hit = pos >= 0
        hit[hit] = ids[hit] <= self.ends[pos[hit]]
        return hit

    def merge(self, other: IdRun) -> IdRun:
        """The union of two runs with no id in common."""
        if self.ends is self.starts and other.ends is other.starts:
            ids = _merge_sorted(self.starts, other.starts)
            return IdRun.of(ids, ids, self.count + other.count)
        pos = np.searchsorted(self.starts, other.starts) + np.arange(len(other.starts))
        rest = np.ones(len(self.starts) + len(other.starts), dtype=bool)
        rest[pos] = False
        starts = np.empty(len(rest), dtype=self.starts.dtype)
        ends = np.empty(len(rest), dtype=self.starts.dtype)
        starts[pos], ends[pos] = other.starts, other.ends
        starts[rest], ends[rest] = self.starts, self.ends
        return IdRun.of(starts, ends, self.count + other.count)


DENSE_FILL = 8  # beyond DENSE_FREE_BYTES, a window spends at most 8 slots (bytes) per id
DENSE_FREE_BYTES = 64 << 20  # a window this small is fine however few ids fill it
DENSE_MIN_RUN_BYTES = 256 << 10  # runs smaller than this (ordered ids: intervals) stay runs


class SeenIds:
    """The set of order_ids already landed from this file.

    Ids live in a few sorted runs, merged like a log-structured merge tree (adding n ids
    costs O(n log n), a lookup is a binary search per run). A run stores its ids as intervals
    of consecutive ids when that is smaller, so an export numbered in order costs a few bytes
    per gap whatever its size. Ids in no order would cost 8 bytes each in runs and a binary
    search per run for every id; once they take 256 KiB they move to a *dense window*, one
    flag byte per id of their range, when that range is at most 64 MiB or filled at least one
    slot in eight (an export of ids 1..50,000,000 shuffled over a 5 GB file: 56 MB instead of
    400 MB plus the merges, and one lookup per id). Ids outside the window (outliers, or a
    range too sparse for one) stay in runs.
    """

    def __init__(self) -> None:
        self.runs: list[IdRun] = []
        self.top: int | None = None  # the largest id in the runs
        self.bottom: int | None = None  # the smallest id in the runs
        self.window: np.ndarray | None = None  # one flag per id lo..lo+len-1
        self.lo = 0
        self.in_window = 0
        self.window_top = 0  # the largest id in the window

    def __len__(self) -> int:
        return sum(r.count for r in self.runs) + self.in_window

    @property
    def nbytes(self) -> int:
        runs = sum(r.starts.nbytes + (r.ends is not r.starts) * r.ends.nbytes for r in self.runs)
        return runs + (self.window.nbytes if self.window is not None else 0)

    def first_seen(self, ids: np.ndarray) -> np.ndarray:
        """For each id (in order), True when neither an earlier id of ``ids`` nor an id added
        before has the same value; the ids marked True are added."""
        n = len(ids)
        if n == 0:
            return np.zeros(0, dtype=bool)
        order = np.argsort(ids, kind="stable")
        s = ids[order]
        first = np.ones(n, dtype=bool)
        first[order[1:][s[1:] == s[:-1]]] = False
        # Only ids up to the largest one in a run can be in it (exports mostly come in
        # order_id order, so this is usually a few re-sent ids, not the whole batch).
        old = np.flatnonzero(first & (ids <= self.top)) if self.top is not None else []
        if len(old):
            probe = ids[old]
            for run in self.runs:
                first[old[run.contains(probe)]] = False
        to_runs = first
        if self.window is not None:
            self._grow(s[0], s[-1])
            assert self.window is not None
            inside = first & (ids >= self.lo) & (ids < self.lo + len(self.window))
            where = np.flatnonzero(inside)
            slots = ids[where] - self.lo
            hit = self.window[slots]
            first[where[hit]] = False
            added = slots[~hit]
            self.window[added] = True
            self.in_window += len(added)
            if len(added):
                self.window_top = max(self.window_top, self.lo + int(added.max()))
            to_runs = first & ~inside
        new = s[to_runs[order]]  # the ids for the runs, sorted (s is ids in sorted order)
        if len(new):
            self.top = int(new[-1]) if self.top is None else max(self.top, int(new[-1]))
            self.bottom = int(new[0]) if self.bottom is None else min(self.bottom, int(new[0]))
            self.runs.append(IdRun.of(new, new, len(new)))
            while len(self.runs) > 1 and self.runs[-2].count <= 2 * self.runs[-1].count:
                b = self.runs.pop()
                a = self.runs.pop()
                self.runs.append(a.merge(b))
            if self.window is None:
                self._open_window()
        return first

    def _open_window(self) -> None:
        """Move the runs into a dense window when they are big and fill their range enough."""
        count = sum(r.count for r in self.runs)
        runs_bytes = sum(
            r.starts.nbytes + (r.ends is not r.starts) * r.ends.nbytes for r in self.runs
        )
        if runs_bytes < DENSE_MIN_RUN_BYTES or self.top is None or self.bottom is None:
            return
        span = self.top - self.bottom + 1
        if not _window_ok(span, count):
            return
        self.lo = self.bottom
        self.window = np.zeros(span + span // 8, dtype=bool)  # room for ids a little higher
        for run in self.runs:
            if run.ends is run.starts:
                self.window[run.starts - self.lo] = True
            else:
                for a, b in zip(run.starts.tolist(), run.ends.tolist(), strict=True):
                    self.window[a - self.lo : b - self.lo + 1] = True
        self.in_window = count
        self.window_top = self.top
        self.runs, self.top, self.bottom = [], None, None

    def _grow(self, low: int, high: int) -> None:
        """Widen the window to ``low..high`` when it stays small or full enough."""
        assert self.window is not None
        lo, hi = self.lo, self.lo + len(self.window) - 1
        if lo <= low and high <= hi:
            return
        new_lo, new_hi = min(lo, int(low)), max(self.window_top, int(high))
        span = new_hi - new_lo + 1
        if not _window_ok(span, self.in_window):
            return  # too sparse: the ids outside go to the runs
        grown = np.zeros(span + span // 8, dtype=bool)
        kept = self.window[: self.window_top - lo + 1]
        grown[lo - new_lo : lo - new_lo + len(kept)] = kept
        self.window, self.lo = grown, new_lo


def _window_ok(span: int, count: int) -> bool:
    """Whether a window of ``span`` slots is worth it for ``count`` ids."""
    return span + span // 8 <= DENSE_FREE_BYTES or span <= DENSE_FILL * count
