"""The file being landed, opened once: only regular files, read through one handle.

A local source is opened once, without following a symlink and without blocking on a FIFO,
and refused unless it is a regular file. Every pass (the fingerprint, the rows, the copy of a
refused file) reads that same open file from its start, so the bytes landed are the bytes
hashed even when the path is replaced meanwhile; a file changed in place (its size or
modification time moves) fails with :class:`SourceChanged` rather than landing a mix. An S3
source is read once per pass, each later pass pinned to the ETag of the first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from ingestion.errors import Unreadable
from ingestion.lake import is_s3_uri, open_source

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class SourceChanged(OSError):
    """The local file changed while it was being landed."""


class _Pass:
    """A sequential reader over an open descriptor from offset 0 (positioned reads: passes
    never disturb each other); closing it leaves the descriptor open."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = max(os.fstat(self.fd).st_size - self.pos, 0) + 1
        data = os.pread(self.fd, n, self.pos)
        self.pos += len(data)
        return data

    def close(self) -> None:
        return None

    def __enter__(self) -> _Pass:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Source:
    """An opened source: ``uri`` as in the manifest, ``mode`` its permission bits (None on S3)."""

    def __init__(self, uri: str, fd: int | None, mode: int | None) -> None:
        self.uri = uri
        self.fd = fd
        self.mode = mode
        self.etag: str | None = None
        self._stamp = self._stat() if fd is not None else None

    def _stat(self) -> tuple[int, int]:
        assert self.fd is not None
        st = os.fstat(self.fd)
        return st.st_size, st.st_mtime_ns

    def read(self) -> contextlib.AbstractContextManager[BinaryIO]:
        """A new pass over the content from its first byte."""
        if self.fd is not None:
            return _Pass(self.fd)  # type: ignore[return-value]
        return open_source(self.uri, if_match=self.etag)

    def check_unchanged(self) -> None:
        """Raise :class:`SourceChanged` when the local file was written to since it was opened."""
        if self.fd is not None and self._stat() != self._stamp:
            raise SourceChanged(
                f"{self.uri} changed while it was being landed; nothing of it landed. "
                "Land it again once it is complete"
            )


@contextlib.contextmanager
def opened(uri: str) -> Iterator[Source]:
    """Open ``uri`` (an absolute path or ``s3://bucket/key``) for landing; raises
    :class:`Unreadable` when it cannot be read at all."""
    if is_s3_uri(uri):
        yield Source(uri, None, None)
        return
    fd = _open_regular(uri)
    try:
        yield Source(uri, fd, stat.S_IMODE(os.fstat(fd).st_mode))
    finally:
        os.close(fd)


def _open_regular(path: str) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise Unreadable(f"{path}: no such file") from None
    except PermissionError:
        raise Unreadable(f"{path}: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise Unreadable(
                f"{path}: is a symbolic link; give the path of the file itself"
            ) from None
        raise Unreadable(f"{path}: cannot be opened ({exc.strerror})") from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        what = _KINDS.get(kind, "not a regular file")
        raise Unreadable(f"{path}: is {what}, not a regular file")
    os.set_blocking(fd, True)
    return fd
