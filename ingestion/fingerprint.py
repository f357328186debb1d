"""Step 1 of landing: SHA-256, size and whole-file faults of a source, in one streaming read.

The content hash is needed before any row is written because it is part of ``ingest_id``.
"""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

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
    utf8 = Utf8Check()
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
            if fault is None:
                fault = utf8.feed(chunk)
            size += len(chunk)
        if hashing is not None:
            hashing.result()
    if fault is None:
        fault = utf8.finish()
    if size == 0:
        fault = "the file is empty"
    return Fingerprint(digest.hexdigest(), size, fault, etag)


class Utf8Check:
    """Whether a stream fed in chunks cut anywhere is UTF-8, and the offset of its first bad
    byte. Each chunk's whole characters go to Arrow's validator (about 10x Python's decoder,
    which mattered for exports with accented names: 2.4 s of a 1 GB landing); a character cut
    by the chunk's end waits for the next chunk. Python's decoder runs only on a chunk that
    fails, to name the offset, which is the one a decoder of the whole file reports."""

    def __init__(self) -> None:
        self.pending = b""  # the start of a character cut by the last chunk's end
        self.offset = 0  # the offset in the stream of ``pending``'s first byte

    def feed(self, chunk: bytes) -> str | None:
        data = self.pending + chunk if self.pending else chunk
        base = self.offset
        if data.isascii():
            self.pending, self.offset = b"", base + len(data)
            return None
        whole = _whole_characters(data)
        self.pending, self.offset = data[whole:], base + whole
        if whole and not _is_utf8(memoryview(data)[:whole]):
            try:
                data[:whole].decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"not valid UTF-8: bad byte at offset {base + exc.start}"
        return None

    def finish(self) -> str | None:
        """The fault of the stream's last bytes, once it has ended."""
        try:
            self.pending.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":
                return "not valid UTF-8: the file ends inside a multi-byte character"
            return f"not valid UTF-8: bad byte at offset {self.offset + exc.start}"
        return None


def _whole_characters(data: bytes) -> int:
    """How many of ``data``'s bytes precede a multi-byte character its end cuts (all of them
    when none is cut). Bytes that cannot start a character are left to the validator."""
    end = len(data)
    i = end - 1
    while i >= 0 and end - i <= 4 and 0x80 <= data[i] <= 0xBF:  # continuation bytes
        i -= 1
    if i < 0 or end - i > 4:
        return end
    lead = data[i]
    if 0xC2 <= lead <= 0xDF:
        length = 2
    elif 0xE0 <= lead <= 0xEF:
        length = 3
    elif 0xF0 <= lead <= 0xF4:
        length = 4
    else:
        length = 1  # ASCII, or a byte no character starts with
    return i if i + length > end else end


def _is_utf8(data: memoryview) -> bool:
    """Arrow's UTF-8 validation of one string made of ``data``."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    array = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True
