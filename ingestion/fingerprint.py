"""Step 1 of landing: SHA-256, size and whole-file faults of a source, in one streaming read.

The content hash is needed before any row is written because it is part of ``ingest_id``.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from ingestion.lake import open_source

READ_BYTES = 8 * 1024 * 1024
COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
}


@dataclass
class Fingerprint:
    sha256: str
    size: int
    fault: str | None
    etag: str | None = None  # S3 sources: the version hashed, to pin the second read to


def fingerprint(source: str | BinaryIO) -> Fingerprint:
    """SHA-256, size and the first whole-file fault of ``source`` (a source URI, or a stream
    at its first byte), in one streaming pass."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    fault: str | None = None
    # SHA-256 of chunk i (hashlib releases the GIL) runs while chunk i+1 is read and checked.
    opened = open_source(source) if isinstance(source, str) else contextlib.nullcontext(source)
    with opened as f, ThreadPoolExecutor(1) as hasher:
        etag = getattr(getattr(f, "raw", None), "etag", None)
        hashing = None
        while True:
            chunk = f.read(READ_BYTES)
            if not chunk:
                break
            if size == 0:
                for magic, kind in COMPRESSED_MAGIC.items():
                    if chunk.startswith(magic):
                        fault = f"the file is {kind}-compressed; send it uncompressed"
            if hashing is not None:
                hashing.result()
            hashing = hasher.submit(digest.update, chunk)
            # ASCII is valid UTF-8 when no multi-byte character is pending from the chunk
            # before; only other chunks need the (10x slower) decoder.
            if fault is None and not (chunk.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    fault = f"not valid UTF-8: bad byte at offset {size + exc.start}"
            size += len(chunk)
        if hashing is not None:
            hashing.result()
    if fault is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            fault = "not valid UTF-8: the file ends inside a multi-byte character"
    if size == 0:
        fault = "the file is empty"
    return Fingerprint(digest.hexdigest(), size, fault, etag)
