"""``python -m realtime send <file.jsonl | ->`` and ``python -m realtime consume``.

``send`` appends one event per line (empty lines are not events) to the stream named by
``DUFF_STREAM`` (default the durable local stream under ``$DUFF_LAKE``; ``kinesis://<name>``
for Kinesis) and prints how many the stream accepted. Reading ``-`` (stdin), each burst of
lines is put as soon as no more input is waiting, so a slow producer's events are not held.

``consume`` applies the local stream to the embedded store and lands it in the lake until
SIGTERM or Ctrl-C, then lands what it holds and exits 0.

Exit codes: 0 done, 1 the input cannot be read or the stream refused events, 2 bad usage
(a bad DUFF_STREAM, or consume/replay of a local stream other than the one the lake's store
holds; reset rebuilds the store for the stream it is run for).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from realtime.kinesis import PutFailed
from realtime.localstream import MAX_RECORD_BYTES
from realtime.settings import Settings, SettingsError

log = logging.getLogger("realtime.cli")
BATCH = 2000


def open_stream(settings: Settings):
    if settings.stream_kind == "kinesis":
        from realtime.kinesis import KinesisStream

        return KinesisStream(settings.stream_name)
    from realtime.localstream import LocalStream

    return LocalStream(Path(settings.lake) / "stream", settings.stream_name, settings.shards)


def _batches(fd: int) -> Iterator[list[bytes]]:
    """Batches of events read from ``fd`` (line ends removed, empty lines dropped); a batch is
    handed on when it is full or when no more input is waiting (a pipe from a slow producer)."""
    batch: list[bytes] = []
    rest = b""
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            event = line.removesuffix(b"\r")
            if event:
                batch.append(event)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch and not select.select([fd], [], [], 0)[0]:
            yield batch
            batch = []
    event = rest.removesuffix(b"\r")
    if event:
        batch.append(event)
    if batch:
        yield batch


def send(settings: Settings, source: str) -> int:
    stream = open_stream(settings)
    accepted = offered = 0
    try:
        fd = sys.stdin.fileno() if source == "-" else os.open(source, os.O_RDONLY)
    except OSError as exc:  # nothing was read, so nothing was sent (said on stdout as always)
        print(f"error: cannot read {source}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        print(f"accepted 0 events on {stream.uri}")
        return 1
    try:
        try:
            for batch in _batches(fd):
                # A stream record holds at most 1 MiB (Kinesis' limit, the local stream's
                # too): such an event is refused alone, never the events around it.
                # Kinesis counts the partition key in that limit.
                fits = []
                for event in batch:
                    offered += 1
                    size = stream.record_bytes(event)
                    if size > MAX_RECORD_BYTES:
                        key = " with its partition key" if size != len(event) else ""
                        print(
                            f"error: event {offered} ({size} bytes{key}) is over the "
                            f"stream's record limit of {MAX_RECORD_BYTES} bytes; not sent",
                            file=sys.stderr,
                        )
                    else:
                        fits.append(event)
                if fits:
                    accepted += stream.put(fits)
        finally:
            if source != "-":
                os.close(fd)
    except PutFailed as exc:  # the stream refused a whole call: say how far it got
        accepted += exc.accepted
        print(f"error: {exc}; the events after the first {accepted} were not sent", file=sys.stderr)
        print(f"accepted {accepted} events on {stream.uri}")
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"accepted {accepted} events on {stream.uri}")
        return 1
    print(f"accepted {accepted} events on {stream.uri}")
    return 0 if accepted == offered else 1


def _die_with_parent() -> None:
    """In a worker: be killed when the parent consumer dies (SIGKILL included), as one would."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG, Linux
    except (OSError, AttributeError):
        pass


def _consume_in_workers(shards: list[str]) -> int:
    """One process per shard (the figures of one shard never wait for another's, and both
    cores work); SIGTERM/Ctrl-C is passed on, and each lands what it holds."""
    workers = [
        subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "realtime", "consume", "--shard", shard],
            preexec_fn=_die_with_parent,
        )
        for shard in shards
    ]

    def forward(signum: int, _frame: object) -> None:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    stopping = False
    while any(w.poll() is None for w in workers):
        failed = [w for w in workers if w.returncode not in (None, 0)]
        if failed and not stopping:  # one shard's worker died: stop (and land) the others
            print(
                f"error: a consumer worker exited with {failed[0].returncode}; stopping",
                file=sys.stderr,
            )
            forward(signal.SIGTERM, None)
            stopping = True
        time.sleep(0.2)
    # a worker killed by a signal (returncode -N) fails the consumer too, as 128 + N
    codes = [128 - w.returncode if w.returncode < 0 else w.returncode for w in workers]
    return next((code for code in codes if code != 0), 0)


def bound(store, uri: str) -> bool:
    """Bind ``store`` to the stream ``uri`` (SqliteStore.bind_stream); False, with the reason
    on stderr, if it holds another stream."""
    from realtime.sqlite_store import StoreOfAnotherStream

    try:
        store.bind_stream(uri)
    except StoreOfAnotherStream as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def consume(settings: Settings, shard: str | None = None) -> int:
    if settings.stream_kind != "local":
        print(
            "error: consume reads the local stream; on Kinesis the Lambda "
            "realtime.handler.handler consumes",
            file=sys.stderr,
        )
        return 2
    from ingestion.lake import lake_from_uri
    from realtime.localstream import local_stream_uri
    from realtime.sqlite_store import SqliteStore, store_path

    # The store's binding first: a refused stream leaves nothing behind (no stream directory)
    store = SqliteStore(store_path(settings.lake))
    if not bound(store, local_stream_uri(settings.stream_name)):
        store.close()
        return 2
    stream = open_stream(settings)
    if shard is None and settings.workers > 1 and len(stream.shards) > 1:
        store.close()
        # before the heavy imports: the workers do their own
        print(f"consuming {stream.uri} with one process per shard", flush=True)
        return _consume_in_workers(stream.shards)
    from ingestion.land import default_catalog
    from ingestion.settings import Settings as IngestSettings
    from realtime.consumer import Consumer, install_signal_handlers

    ingest = IngestSettings.from_env()
    if shard is not None and shard not in stream.shards:
        store.close()
        print(f"error: {stream.uri} has no shard {shard!r}", file=sys.stderr)
        return 2
    consumer = Consumer(
        stream,
        store,
        lake_from_uri(settings.lake),
        default_catalog(ingest),
        settings,
        ingest,
        [shard] if shard else None,
    )
    install_signal_handlers(consumer)
    print(
        f"consuming {stream.uri} into {store.path} (Ctrl-C lands what is held and stops)",
        flush=True,
    )
    try:
        consumer.run()
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_send = sub.add_parser("send", help="put order events (JSON lines) on the stream")
    p_send.add_argument("source", help="a .jsonl file, or - for stdin")
    p_consume = sub.add_parser("consume", help="apply the local stream to the store and the lake")
    p_consume.add_argument("--shard", help=argparse.SUPPRESS)  # a worker of one shard
    p_replay = sub.add_parser(
        "replay", help="apply a shard again from a sequence (consumer stopped; idempotent)"
    )
    p_replay.add_argument("--shard", required=True)
    p_replay.add_argument("--from-sequence", type=int, required=True, dest="sequence")
    sub.add_parser(
        "reset", help="rebuild the local store from the lake's stream batches (consumer stopped)"
    )
    args = parser.parse_args(argv)
    from ingestion.metrics import configure_json_logging

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_json_logging(os.environ.get("DUFF_LOG_LEVEL", "INFO"), stream=sys.stderr)
    if args.command == "send":
        return send(settings, args.source)
    if args.command in ("replay", "reset"):
        return operate(settings, args)
    return consume(settings, args.shard)


def operate(settings: Settings, args: argparse.Namespace) -> int:
    from realtime.operate import replay, reset_from_lake
    from realtime.sqlite_store import SqliteStore, store_path

    if settings.stream_kind != "local":
        print(
            "error: replay and reset act on the local store; see docs/operations.md for AWS",
            file=sys.stderr,
        )
        return 2
    from realtime.localstream import local_stream_uri

    store = SqliteStore(store_path(settings.lake))
    try:
        # (reset rebuilds the store for this stream, and binds it; a refused replay leaves
        # nothing behind, no stream directory included)
        if args.command == "replay" and not bound(store, local_stream_uri(settings.stream_name)):
            return 2
        stream = open_stream(settings)
        if args.command == "replay":
            try:
                cp = replay(stream, store, args.shard, args.sequence)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"{args.shard}: the consumer applies again from sequence {cp.sequence}")
        else:
            starts = reset_from_lake(stream, store, Path(settings.lake))
            print(
                "store rebuilt from the lake; the consumer resumes at "
                + ", ".join(f"{k} sequence {v}" for k, v in starts.items())
            )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
