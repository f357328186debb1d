"""The landing's domain exceptions: each becomes a manifest or an exit code in one place."""

from __future__ import annotations


class Quarantine(Exception):
    """The whole file is refused; ``str(exc)`` is the manifest's ``error``."""


class LandingBusy(RuntimeError):
    """Another run is landing this very object (same name, same SHA-256) right now and did not
    finish within ``claim_wait_seconds``. Retryable: the retry reports ``skipped`` once that
    run has landed, or lands the file itself if that run died."""


class Unreadable(Exception):
    """The source cannot be read at all (missing, a directory, a symlink or another
    non-regular file, no access): nothing is landed or quarantined; ``str(exc)`` says why in
    one line. The CLI exits 1."""
