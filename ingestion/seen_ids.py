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


class SeenIds:
    """The set of order_ids already landed from this file, as a few sorted runs.

    Runs of similar size are merged (like a log-structured merge tree), so adding n ids costs
    O(n log n) in total and a lookup is a binary search per run. A run stores its ids as
    intervals of consecutive ids when that is smaller: exports numbered 1, 2, 3, ... take a few
    bytes per gap, so a 5 GB file's ids do not grow the memory; ids in no order take 8 bytes
    each.
    """

    def __init__(self) -> None:
        self.runs: list[IdRun] = []
        self.top: int | None = None  # the largest id added

    def __len__(self) -> int:
        return sum(r.count for r in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(r.starts.nbytes + (r.ends is not r.starts) * r.ends.nbytes for r in self.runs)

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
        # Only ids up to the largest one added can be in a run (exports mostly come in
        # order_id order, so this is usually a few re-sent ids, not the whole batch).
        old = np.flatnonzero(first & (ids <= self.top)) if self.top is not None else []
        if len(old):
            probe = ids[old]
            for run in self.runs:
                first[old[run.contains(probe)]] = False
        new = s[first[order]]  # the first ids, sorted (s is ids in sorted order)
        if len(new):
            self.top = int(new[-1]) if self.top is None else max(self.top, int(new[-1]))
            self.runs.append(IdRun.of(new, new, len(new)))
            while len(self.runs) > 1 and self.runs[-2].count <= 2 * self.runs[-1].count:
                b = self.runs.pop()
                a = self.runs.pop()
                self.runs.append(a.merge(b))
        return first
