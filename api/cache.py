"""In-process response cache (level 1; Athena result reuse is level 2).

Entries are keyed by build id, route and canonical (validated) parameters, expire after a TTL,
and are dropped all at once when a new build is seen, so the cache can never serve an answer
from a build older than the one the backend is on. Bounded in size (least recently used out).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


def _size(value: object) -> int:
    return len(value) if isinstance(value, bytes | str) else 64


class TTLCache:
    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()
        self._build: str | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def _check_build(self, build_id: str) -> None:
        if build_id != self._build:
            if self._data:
                self.invalidations += 1
            self._data.clear()
            self._bytes = 0
            self._build = build_id

    def get(self, build_id: str, key: Hashable, *, count_miss: bool = True) -> object | None:
        """The cached value, or None. ``count_miss=False``: a look that, when it misses, is
        not counted (the caller looks again before it computes the value)."""
        if not self.enabled:
            return None
        with self._lock:
            self._check_build(build_id)
            entry = self._data.get(key)
            if entry is None or entry[0] <= self._clock():
                if entry is not None:
                    self._drop(key)
                if count_miss:
                    self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, build_id: str, key: Hashable, value: object) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._check_build(build_id)
            size = _size(value)
            if size > self.max_bytes // 8:  # one huge answer must not flush everything else
                return
            if key in self._data:
                self._drop(key)
            self._data[key] = (self._clock() + self.ttl, value)
            self._bytes += size
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._data)))

    def _drop(self, key: Hashable) -> None:
        _expires, value = self._data.pop(key)
        self._bytes -= _size(value)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "entries": len(self._data),
                "bytes": self._bytes,
                "invalidations": self.invalidations,
            }
