"""Storage the landing code needs, as a small protocol with a local twin.

Domain code (``ingestion.land``) talks only to a :class:`Lake` and a :class:`Catalog`. The local
filesystem implementation lives here; the S3 one lives in ``ingestion.s3`` (``S3Lake``) and the
Glue one in ``ingestion.glue``. Nothing in this module imports boto3.

Keys
    A *key* is a ``/``-separated path relative to the lake root, never starting with ``/``, e.g.
    ``raw/orders/pa_date=2024-03-01/<ingest_id>-0.parquet``. Prefixes are keys too; a prefix
    that should only match a "directory" ends with ``/``.

Sources
    The file being landed is addressed by a *source URI*: an absolute local path or
    ``s3://bucket/key`` (key already decoded). A source need not live inside the lake.
    :func:`open_source` dispatches on the scheme.

Atomicity the landing code relies on (an implementation must provide all of these)
    * ``open_write(key)``: the object at ``key`` becomes visible only when the context manager
      exits without an exception (local: write to a temporary name in the same directory, then
      ``os.replace``; S3: a multipart/streamed upload completes on close and is aborted on error).
      Its bytes must be durable before the next ``put_atomic`` returns (local: one ``sync``).
      Landing only writes under ``_staging/`` with it.
    * ``put_atomic(key, data)``: small object written all-or-nothing; readers see the old content
      or the new one, never a torn one (local: temp file + fsync + ``os.replace`` + directory
      fsync; S3: one ``PutObject``).
    * ``move(src, dst)``: after it returns, ``dst`` holds what ``src`` held and ``src`` is gone;
      ``dst`` appears whole (local: ``os.replace``; S3: ``CopyObject`` then ``DeleteObject``).
      When ``src`` is already gone and ``dst`` exists (a retried move), it succeeds silently;
      when both are missing it raises ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Lake(Protocol):
    """Where landed data lives: a local directory or an S3 prefix, with the same layout."""

    @property
    def root_uri(self) -> str:
        """The lake root as given in ``DUFF_LAKE``: an absolute path or ``s3://bucket/prefix``."""
        ...

    def uri(self, key: str) -> str:
        """The full URI (absolute path or ``s3://...``) of ``key``, for messages and manifests."""
        ...

    def open_write(
        self, key: str, *, mode: int | None = None
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writable binary stream for ``key``; the object appears only on a clean exit.
        ``mode``: permission bits the object may have at most (a local file gets the lake's
        own mode narrowed by it; S3 objects have none)."""
        ...

    def put_atomic(self, key: str, data: bytes) -> None:
        """Write a small object all-or-nothing (manifests, intents, markers)."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create a small object only if none exists at ``key``, atomically (a claim);
        True when this call created it, False when an object was already there."""
        ...

    def read_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every object key under ``prefix`` (recursive), sorted; [] when there is none."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Publish ``src`` as ``dst`` (see the module docstring for the exact guarantees)."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Delete these objects; keys that do not exist are ignored."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix``; nothing there is not an error."""
        ...

    def modified_at(self, key: str) -> float | None:
        """Last-modified time of ``key`` as a POSIX timestamp, None when it does not exist."""
        ...


@runtime_checkable
class Catalog(Protocol):
    """The table catalog readers query (Glue in AWS, nothing locally)."""

    def register_partitions(self, dates: list[str]) -> None:
        """Make sure ``raw_orders`` exists and has these ``pa_date`` partitions (YYYY-MM-DD)."""
        ...

    def register_ingest(self, reject_dates: list[str]) -> object:
        """Make sure ``ingest_manifests`` and ``ingest_rejects`` exist, the latter with these
        ``ingest_date`` partitions (YYYY-MM-DD)."""
        ...


class NullCatalog:
    """Local twin of the Glue catalog: DuckDB and dbt read the Hive layout directly."""

    def register_partitions(self, dates: list[str]) -> None:
        return None

    def register_ingest(self, reject_dates: list[str]) -> None:
        return None


def _fsync_dir(path: Path) -> None:
    """Persist a directory entry change (rename/create); a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalLake:
    """A lake in a local directory. Renames are atomic because everything is on one filesystem."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).expanduser().resolve()
        self._unsynced = False
        umask = os.umask(0o022)
        os.umask(umask)
        self.file_mode = 0o666 & ~umask  # what files created in the lake get

    def _sync_pending(self) -> None:
        # Staged data files are not fsynced one by one (hundreds of partitions would mean
        # hundreds of journal commits); the next atomic put, which is what makes them
        # reachable (the publish intent), flushes them all first with one sync.
        if self._unsynced:
            os.sync()
            self._unsynced = False

    @property
    def root_uri(self) -> str:
        return str(self._root)

    @property
    def root(self) -> Path:
        return self._root

    def path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"not a lake key: {key!r}")
        return self._root / key

    def uri(self, key: str) -> str:
        return str(self.path(key))

    @contextlib.contextmanager
    def open_write(self, key: str, *, mode: int | None = None) -> Iterator[BinaryIO]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        # A native pyarrow file: Parquet writers write to it without taking the GIL.
        f = pa.OSFile(str(tmp), "wb")
        try:
            yield f  # type: ignore[misc]
            f.close()
            if mode is not None:
                os.chmod(tmp, self.file_mode & mode)
            os.replace(tmp, target)
            self._unsynced = True
        except BaseException:
            f.close()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def _staged_copy(self, key: str, data: bytes) -> tuple[Path, str]:
        """Write ``data`` whole and fsynced under a temporary name beside ``key``'s file."""
        self._sync_pending()
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target, tmp

    def put_atomic(self, key: str, data: bytes) -> None:
        target, tmp = self._staged_copy(key, data)
        try:
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # Written whole under a temporary name, then hard-linked to the key: link() fails when
        # the key exists, so exactly one of several racing callers creates it, with all its bytes.
        target, tmp = self._staged_copy(key, data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(target.parent)
        return True

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix.rstrip("/")) if prefix.strip("/") else self._root
        # A prefix that is not a directory boundary ("raw/ord") matches like S3 does.
        if prefix and not prefix.endswith("/") and not base.is_dir():
            parent = base.parent
            if not parent.is_dir():
                return []
            out: list[str] = []
            for child in parent.iterdir():
                if child.name.startswith(base.name):
                    out.extend(self._walk(child))
            return sorted(out)
        if not base.exists():
            return []
        return sorted(self._walk(base))

    def _walk(self, start: Path) -> list[str]:
        if start.is_file():
            return [start.relative_to(self._root).as_posix()]
        keys: list[str] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # an open_write/put_atomic in progress, not an object yet
                keys.append((Path(dirpath) / name).relative_to(self._root).as_posix())
        return keys

    def move(self, src: str, dst: str) -> None:
        source, target = self.path(src), self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if target.is_file():
                return
            raise
        self._unsynced = True  # made durable by the next put_atomic (the manifest)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self.path(key).unlink()

    def delete_prefix(self, prefix: str) -> None:
        base = self.path(prefix.rstrip("/"))
        if base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        elif base.is_file():
            with contextlib.suppress(FileNotFoundError):
                base.unlink()

    def modified_at(self, key: str) -> float | None:
        try:
            return self.path(key).stat().st_mtime
        except FileNotFoundError:
            return None


def is_s3_uri(uri: str) -> bool:
    return uri.startswith("s3://")


def lake_from_uri(uri: str) -> Lake:
    """The lake for ``DUFF_LAKE``: :class:`LocalLake` for a path, ``S3Lake`` for ``s3://``."""
    if is_s3_uri(uri):
        from ingestion.s3 import S3Lake  # boto3/pyarrow S3 only when the lake is on S3

        return S3Lake(uri)
    return LocalLake(uri)


def open_source(uri: str, *, if_match: str | None = None) -> BinaryIO:
    """Open a file to land (absolute/relative path or ``s3://bucket/key``) for streaming read.

    The returned object supports ``read(n)`` and ``close()``; it need not be seekable. Landing
    reads a source twice (SHA-256 first, then the rows), opening it once per pass. For S3,
    ``ingestion.s3`` provides ``open_source(uri)`` and ``source_size(uri)``; the stream's
    ``raw.etag`` is the object's ETag, and ``if_match`` pins a later pass to it (an object
    replaced in between raises ``ingestion.s3.SourceChanged``). Local files ignore it.
    """
    if is_s3_uri(uri):
        from ingestion.s3 import open_source as open_s3_source

        return open_s3_source(uri, if_match=if_match)
    return open(uri, "rb")


def source_size(uri: str) -> int | None:
    """The size of a source in bytes, when cheaply known (for the progress bar)."""
    if is_s3_uri(uri):
        from ingestion.s3 import source_size as s3_source_size

        return s3_source_size(uri)
    try:
        return os.stat(uri).st_size
    except OSError:
        return None


def canonical_source(uri: str) -> str:
    """The ``source_file`` written to manifests and rows: an absolute path or ``s3://b/k``.

    A local path names the file the file system finds there, as ``cat`` would: its folder is
    resolved as the kernel resolves it (symlinked folders, then ``..``; resolving ``..`` as
    text would name another file behind a symlinked folder), and its last part is kept as
    given. A symlink there is not followed (landing refuses it rather than land what it points
    to), a trailing ``/`` stays (a file is then refused as not a folder), and ``~`` is a name
    like any other (the shell expands it, not this). One file reached through two folder
    paths is one source."""
    if is_s3_uri(uri):
        return uri
    path = uri if os.path.isabs(uri) else os.path.join(os.getcwd(), uri)
    folder, name = os.path.split(path)
    if not name:  # a trailing "/": kept, so that a file there is refused as not a folder
        real = os.path.realpath(folder)
        return real if real.endswith("/") else real + "/"
    if name in (".", ".."):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(folder), name)
