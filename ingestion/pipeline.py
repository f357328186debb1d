"""The threads of a landing: blocks scanned in the background, row rules on a small pool,
results handed back in file order. Scanning (numpy, pyarrow's parser) and the rules (pyarrow
compute) release the GIL, so both cores work."""

from __future__ import annotations

import collections
import datetime as dt
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ingestion import rules
from ingestion.csvscan import Block

CHECK_THREADS = 2  # row rules of up to two blocks at once
CHECK_AHEAD = 2  # blocks handed to the rules pool beyond the one being consumed


def _check_block(
    block: Block, positions: dict[str, int], landing_date: dt.date
) -> tuple[Block, rules.Checked]:
    """The row rules on one block (independent of other blocks: runs in the scan thread)."""
    table = block.table
    raw = {name: table.column(i).combine_chunks() for name, i in positions.items()}
    return block, rules.check(raw, landing_date)


def checked_in_order(
    blocks: Iterator[Block],
    positions: dict[str, int],
    landing_date: dt.date,
    pool: ThreadPoolExecutor,
) -> Iterator[tuple[Block, rules.Checked]]:
    """``_check_block`` of each block on ``pool``, at most CHECK_AHEAD blocks ahead; in order."""
    pending: collections.deque[Future[tuple[Block, rules.Checked]]] = collections.deque()
    try:
        for block in blocks:
            pending.append(pool.submit(_check_block, block, positions, landing_date))
            if len(pending) > CHECK_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    Scanning a block (numpy, pyarrow's parser) and checking the previous one (pyarrow compute)
    both release the GIL, so the two overlap on two cores. Exceptions of the producer are
    raised in the consumer; a consumer that stops early stops the producer.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer
            put(_Raised(exc))

    thread = threading.Thread(target=produce, name="ingest-scan", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class _Raised:
    exc: BaseException


def peak_rss_mb() -> int | None:
    """The process's peak resident set so far, in MiB (for the logs)."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except (ImportError, OSError):
        return None
