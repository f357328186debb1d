"""``python -m ingestion <file or s3://bucket/key> [--json]``: land one file into DUFF_LAKE.

stdout: a one-line summary and the manifest, or with ``--json`` only the manifest object.
stderr: JSON log lines, and a progress bar when stderr is a terminal and the file is large.
Exit code 0 when the file landed or was skipped, 2 when it was quarantined, 1 on an error
(file not found, lake not writable, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, TextIO

from ingestion.lake import canonical_source, source_size
from ingestion.land import default_catalog, land
from ingestion.metrics import configure_json_logging
from ingestion.settings import Settings, SettingsError

PROGRESS_MIN_BYTES = 32 * 1024 * 1024
log = logging.getLogger("ingestion.cli")


class Progress:
    """A one-line progress bar on a terminal: percent, MiB done, throughput."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.done = 0
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self.last < 0.2 and self.done < self.total:
            return
        self.last = now
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        width = 30
        filled = int(share * width)
        rate = self.done / max(now - self.started, 1e-6) / 2**20
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {share:6.1%} "
            f"{self.done / 2**20:,.0f}/{self.total / 2**20:,.0f} MiB {rate:,.0f} MiB/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r" + " " * 78 + "\r")
        self.stream.flush()


def summary(m: dict[str, Any]) -> str:
    """One line: status, rows in, valid, rejected by reason, partitions."""
    if m["status"] == "quarantined":
        return f"quarantined {m['source_file']}: {m['error']} [{m['ingest_id']}]"
    r = m["rejected"]
    parts = m["partitions"]
    span = f"{parts[0]}..{parts[-1]}" if len(parts) > 1 else (parts[0] if parts else "-")
    verb = "skipped (landed before as)" if m["status"] == "skipped" else "landed"
    return (
        f"{verb} {m['ingest_id']}: {m['rows_in']:,} rows in, {m['valid']:,} valid, "
        f"rejected {r['missing']:,} missing / {r['invalid']:,} invalid / "
        f"{r['duplicate']:,} duplicate; {len(parts)} partition(s) {span}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingestion",
        description="Land one Duff orders CSV as validated, pa_date-partitioned Parquet "
        "in the lake at $DUFF_LAKE (default ./lake).",
    )
    parser.add_argument("source", help="a CSV file path or s3://bucket/key")
    parser.add_argument(
        "--json", action="store_true", help="print only the manifest (JSON) on stdout"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    configure_json_logging(settings.log_level, sys.stderr)

    source = canonical_source(args.source)
    progress = None
    size = source_size(source) if sys.stderr.isatty() else None
    if size is not None and size >= PROGRESS_MIN_BYTES:
        progress = Progress(size, sys.stderr)
    try:
        manifest = land(
            source,
            settings=settings,
            catalog=default_catalog(settings),
            progress=progress,
        )
    except FileNotFoundError as exc:
        print(f"error: no such file: {exc.filename or source}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("landing failed", extra={"source_file": source})
        print(f"error: landing {source} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.finish()

    if args.json:
        sys.stdout.write(json.dumps(manifest) + "\n")
    else:
        sys.stdout.write(summary(manifest) + "\n")
        sys.stdout.write(json.dumps(manifest, indent=2) + "\n")
    sys.stdout.flush()
    if manifest["status"] == "quarantined":
        print(
            f"quarantined: {manifest['error']}. Nothing of it landed; the original is kept "
            f"under quarantine/{manifest['ingest_id']}/ in the lake.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
