"""``python -m ingestion <file or s3://bucket/key> [--json]``: land one file into DUFF_LAKE.

For people (no ``--json``): a progress bar on a terminal and a short summary on stdout (counts
by reason, partitions as a first..last range, where it landed). For programs (``--json``):
stdout holds only the manifest. JSON log lines go to stderr when stderr is not a terminal or
with ``--log-json``; on a terminal only warnings show, as plain text. No traceback without
``--verbose``.

Exit codes (CONTRACT.md section 2): 0 landed or skipped; 2 quarantined, also when a re-sent
file that was quarantined before is skipped; 1 when the file could not be read at all, the
command line is wrong, or landing failed (lake not writable, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, NoReturn, TextIO

from ingestion.errors import Unreadable
from ingestion.lake import Lake, canonical_source, lake_from_uri, source_size
from ingestion.land import LandingBusy, default_catalog, land
from ingestion.metrics import configure_json_logging
from ingestion.settings import Settings, SettingsError

log = logging.getLogger("ingestion.cli")
EXIT_OK, EXIT_ERROR, EXIT_QUARANTINED = 0, 1, 2


class Progress:
    """A one-line progress bar on a terminal: percent, MiB done, throughput. Drawn only once
    the landing has taken half a second, so small files print nothing."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.done = 0
        self.started = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self.started < 0.5 or (now - self.last < 0.2 and self.done < self.total):
            return
        self.last = now
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        width = 30
        filled = int(share * width)
        rate = self.done / max(now - self.started, 1e-6) / 2**20
        tail = "  writing Parquet..." if share >= 1.0 else ""
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {share:6.1%} "
            f"{self.done / 2**20:,.0f}/{self.total / 2**20:,.0f} MiB {rate:,.0f} MiB/s{tail}"
        )
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def summary(m: dict[str, Any], lake: Lake) -> str:
    """A few lines for people: what happened, counts by reason, partitions, where it went."""
    source = m["source_file"]
    if m["status"] == "skipped":
        if m.get("previous_status") == "quarantined":
            return (
                f"skipped {source}: quarantined before as {m['ingest_id']} (same name and "
                f"content): {m['error']}\n"
                f"  the original is kept at {lake.uri(_quarantine_key(m))}"
            )
        return (
            f"skipped {source}: landed before as {m['ingest_id']} (same name and content); "
            "nothing written"
        )
    if m["status"] == "quarantined":
        return (
            f"quarantined {source}: {m['error']}\n"
            f"  nothing of it landed; the original is kept at {lake.uri(_quarantine_key(m))}"
        )
    r = m["rejected"]
    rejected = sum(r.values())
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in r.items() if n)
    parts = m["partitions"]
    if not parts:
        span = "no partitions (no valid rows)"
    elif len(parts) == 1:
        span = f"1 partition: pa_date={parts[0]}"
    else:
        span = f"{len(parts):,} partitions: pa_date={parts[0]}..{parts[-1]}"
    lines = [
        f"landed {source} as {m['ingest_id']} in {m.get('seconds', 0):.1f} s",
        f"  rows      {m['rows_in']:,} in: {m['valid']:,} valid, {rejected:,} rejected"
        + (f" ({reasons})" if reasons else ""),
        f"  {span}",
        f"  lake      {lake.uri('raw/orders/')}",
    ]
    if rejected:
        lines.append(f"  rejects   {lake.uri('rejects/orders/')} (ingest_id {m['ingest_id']})")
    lines.append(f"  manifest  {lake.uri('manifests/' + m['ingest_id'] + '.json')}")
    if m["ignored_columns"]:
        lines.append(
            f"  ignored   {_count(len(m['ignored_columns']), 'column')}: "
            + ", ".join(m["ignored_columns"][:10])
            + (", ..." if len(m["ignored_columns"]) > 10 else "")
        )
    return "\n".join(lines)


def _quarantine_key(m: dict[str, Any]) -> str:
    from ingestion.layout import QUARANTINE, source_name

    return f"{QUARANTINE}{m['ingest_id']}/{source_name(m['source_file'])}"


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 means "quarantined" here, so usage errors exit 1."""

    argv: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        hint = ""
        known = {"-h", "--help", "--json", "--log-json", "--verbose", "--"}
        if any(a.startswith("-") and a not in known for a in self.argv):
            hint = " (a file name starting with '-' goes after '--': python -m ingestion -- -f.csv)"
        self.exit(EXIT_ERROR, f"error: {message}{hint}\n")


def _configure_logging(settings: Settings, log_json: bool) -> None:
    if log_json or not sys.stderr.isatty():
        configure_json_logging(settings.log_level, sys.stderr)
        return
    # A person at a terminal: warnings only, as plain text, but not the landing's outcome line
    # (a quarantine's warning): the summary printed after it says the same, with the reason.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(lambda record: not hasattr(record, "outcome"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m ingestion",
        description="Land one Duff orders CSV as validated, pa_date-partitioned Parquet "
        "in the lake at $DUFF_LAKE (default ./lake).",
        epilog="Exit codes: 0 landed or skipped, 2 quarantined (also a skipped re-send of a "
        "quarantined file), 1 unreadable input, usage error or failure.",
    )
    parser.add_argument("source", help="a CSV file path or s3://bucket/key")
    parser.add_argument(
        "--json", action="store_true", help="print only the manifest (JSON) on stdout"
    )
    parser.add_argument(
        "--log-json", action="store_true", help="JSON log lines on stderr even on a terminal"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the traceback when landing fails"
    )
    parser.argv = tuple(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(list(parser.argv))
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _configure_logging(settings, args.log_json)

    source = canonical_source(args.source)
    progress = None
    if sys.stderr.isatty() and not args.json:
        size = source_size(source)
        if size:
            progress = Progress(size, sys.stderr)
    try:
        lake = lake_from_uri(settings.lake)
        manifest = land(
            source,
            settings=settings,
            lake=lake,
            catalog=default_catalog(settings),
            progress=progress,
        )
    except Unreadable as exc:
        print(f"error: cannot land {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (Exception, KeyboardInterrupt) as exc:
        if progress is not None:
            progress.finish()
        if args.verbose:
            log.exception("landing failed", extra={"source_file": source})
        reason = str(exc) if isinstance(exc, LandingBusy) else f"{type(exc).__name__}: {exc}"
        print(f"error: landing {source} failed: {reason}", file=sys.stderr)
        if not args.verbose:
            print("(run again with --verbose for the traceback)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if progress is not None:
            progress.finish()

    if args.json:
        sys.stdout.write(json.dumps(manifest) + "\n")
    else:
        sys.stdout.write(summary(manifest, lake) + "\n")
    sys.stdout.flush()
    quarantined = manifest["status"] == "quarantined" or (
        manifest["status"] == "skipped" and manifest.get("previous_status") == "quarantined"
    )
    if quarantined and args.json:
        print(f"quarantined: {manifest['error']}", file=sys.stderr)
    return EXIT_QUARANTINED if quarantined else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
