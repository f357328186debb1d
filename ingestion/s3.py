"""The S3 adapter: :class:`S3Lake` (the ``Lake`` protocol of ``ingestion.lake`` over an S3
prefix) and streaming access to ``s3://`` source files.

The only module that talks to S3. It uses boto3 alone (no pyarrow S3 filesystem) because the
landing code needs three things pyarrow's S3 streams cannot give:

* ``open_write`` must *abort* the multipart upload when the writer fails; pyarrow completes it
  on close or destruction, which would publish a torn object.
* ``put_if_absent`` is a ``PutObject`` with ``If-None-Match: *`` (S3 conditional writes), the
  claim that makes concurrent deliveries of one event land once.
* ``move`` is a server-side copy (multipart ``UploadPartCopy`` for big objects) and a delete:
  no byte of a published file travels through the Lambda.

Reads of a source file use one streaming ``GetObject`` (one TCP stream, no request per block);
if the connection drops, the read resumes at the current offset with a ranged ``GetObject``
pinned to the object's ETag, so a file replaced mid-read fails loudly instead of mixing two
versions. Writes stream in parts of ``PART_BYTES`` with at most ``MAX_PARTS_IN_FLIGHT`` parts
uploading in the background, so memory stays bounded whatever the object's size.

``AWS_ENDPOINT_URL`` (a moto server in tests) is honoured by boto3 itself.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

#: Size of one multipart-upload part (S3 allows 5 MiB .. 5 GiB, at most 10,000 parts: 160 GiB).
PART_BYTES = 16 * 1024 * 1024
#: Parts uploading at once per writer: bounds a writer's memory to about (this + 1) parts.
MAX_PARTS_IN_FLIGHT = 2
#: When CopyObject refuses an object (over 5 GiB), it is copied with parallel UploadPartCopy
#: of parts this big.
COPY_MULTIPART_THRESHOLD = 256 * 1024 * 1024
COPY_PART_BYTES = 256 * 1024 * 1024
#: Moves running at once in :meth:`S3Lake.move_many`.
MOVE_THREADS = 16
#: Small objects of open_write uploading at once in the background (twice this may be queued).
DEFERRED_UPLOADS = 8
#: Keys per DeleteObjects call (the API's maximum).
_DELETE_BATCH = 1000
#: Bytes asked of the socket per read when streaming a source.
READ_CHUNK_BYTES = 8 * 1024 * 1024
#: Reconnections allowed while streaming one source before giving up.
READ_RESUMES = 5


class S3Error(RuntimeError):
    """S3 refused an operation in a way the caller cannot fix by retrying the same call."""


class SourceChanged(OSError):
    """The source object was replaced while it was being landed (ETag no longer matches)."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; the key is taken verbatim."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key


@lru_cache(maxsize=8)
def _cached_client(endpoint: str | None, region: str | None, access_key: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 8},
        max_pool_connections=max(32, MOVE_THREADS * 2),
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", config=config)


def s3_client() -> Any:
    """A boto3 S3 client for the current environment, shared within the process (Lambda reuse).

    Keyed on the endpoint, region and access key, so a test that points the environment at
    another endpoint gets a matching client.
    """
    return _cached_client(
        os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        os.environ.get("AWS_ACCESS_KEY_ID"),
    )


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_not_found(exc: Exception) -> bool:
    return _code(exc) in {"404", "NoSuchKey", "NotFound"} or _status(exc) == 404


def _raise_if_denied(exc: Exception, uri: str) -> None:
    """Turn a 403 into a readable PermissionError (chained); return for anything else."""
    if _code(exc) in {"AccessDenied", "403", "Forbidden"} or _status(exc) == 403:
        raise PermissionError(
            f"access denied to {uri}. The role needs s3:GetObject/PutObject on the key and "
            "s3:ListBucket on the bucket: without ListBucket, S3 answers 403 instead of 404 "
            "for a key that does not exist"
        ) from exc


# -- reading sources --------------------------------------------------------------------------


class S3ObjectReader(io.RawIOBase):
    """A sequential, read-only stream over one S3 object (see the module docstring)."""

    def __init__(
        self, bucket: str, key: str, *, client: Any = None, if_match: str | None = None
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.key = key
        self._client = client or s3_client()
        self._pos = 0
        self._resumes = 0
        extra = {"IfMatch": if_match} if if_match else {}
        try:
            response = self._client.get_object(Bucket=bucket, Key=key, **extra)
        except Exception as exc:
            if _is_not_found(exc) or _code(exc) == "NoSuchBucket":
                raise FileNotFoundError(f"no such object: s3://{bucket}/{key}") from exc
            if _code(exc) == "PreconditionFailed" or _status(exc) == 412:
                raise SourceChanged(
                    f"s3://{bucket}/{key} changed since it was first read (ETag {if_match}); "
                    "the new version arrives with its own event"
                ) from exc
            _raise_if_denied(exc, f"s3://{bucket}/{key}")
            raise
        self.size: int = int(response["ContentLength"])
        self.etag: str = response["ETag"]
        self.version_id: str | None = response.get("VersionId")
        self._body = response["Body"]

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view) or self._pos >= self.size:
            return 0
        while True:
            try:
                data = self._body.read(min(len(view), READ_CHUNK_BYTES))
            except Exception as exc:  # connection reset, read timeout, incomplete read
                self._resume(exc)
                continue
            if not data and self._pos < self.size:
                self._resume(EOFError("stream ended early"))
                continue
            n = len(data)
            view[:n] = data
            self._pos += n
            return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        n = self.readinto(buffer)
        return bytes(buffer[:n])

    def _resume(self, cause: BaseException) -> None:
        self._resumes += 1
        if self._resumes > READ_RESUMES:
            raise OSError(
                f"reading s3://{self.bucket}/{self.key} failed at byte {self._pos} after "
                f"{READ_RESUMES} reconnections: {cause}"
            ) from cause
        log.warning(
            "resuming read of s3://%s/%s at byte %d after: %s",
            self.bucket,
            self.key,
            self._pos,
            cause,
        )
        with contextlib.suppress(Exception):
            self._body.close()
        time.sleep(min(0.2 * 2**self._resumes, 5))
        try:
            response = self._client.get_object(
                Bucket=self.bucket,
                Key=self.key,
                Range=f"bytes={self._pos}-",
                IfMatch=self.etag,
            )
        except Exception as exc:
            if _code(exc) == "PreconditionFailed" or _status(exc) == 412:
                raise SourceChanged(
                    f"s3://{self.bucket}/{self.key} changed while it was being read; "
                    "the new version arrives with its own event"
                ) from exc
            raise
        self._body = response["Body"]

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


def open_source(uri: str, *, client: Any = None, if_match: str | None = None) -> BinaryIO:
    """Open ``s3://bucket/key`` (key decoded) for a buffered, streaming, sequential read.

    The object's ETag is ``stream.raw.etag``. A caller that reads a source twice (hash first,
    rows second) passes that ETag as ``if_match`` on the second open: if the object was
    replaced in between, :class:`SourceChanged` is raised instead of reading other bytes than
    the ones hashed.
    """
    bucket, key = split_s3_uri(uri)
    raw = S3ObjectReader(bucket, key, client=client, if_match=if_match)
    return io.BufferedReader(raw, buffer_size=READ_CHUNK_BYTES)  # type: ignore[return-value]


def source_size(uri: str, *, client: Any = None) -> int | None:
    """The size of ``s3://bucket/key`` in bytes, or None when it cannot be known."""
    bucket, key = split_s3_uri(uri)
    try:
        return int((client or s3_client()).head_object(Bucket=bucket, Key=key)["ContentLength"])
    except Exception as exc:
        log.debug("no size for %s: %s", uri, exc)
        return None


def source_exists(uri: str, *, client: Any = None) -> bool:
    """Whether ``s3://bucket/key`` exists. Only "not found" is False: any other error (access
    denied, throttling) raises, so a caller never mistakes a failure for a deleted object.
    """
    bucket, key = split_s3_uri(uri)
    try:
        (client or s3_client()).head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_not_found(exc) or _code(exc) == "NoSuchBucket":
            return False
        _raise_if_denied(exc, uri)
        raise
    return True


# -- writing -----------------------------------------------------------------------------------


class _MultipartWriter(io.RawIOBase):
    """A write-only stream that becomes one S3 object only when :meth:`commit` is called.

    Small objects (below one part) are written with one ``PutObject`` on commit; larger ones
    with a multipart upload whose parts upload in the background. :meth:`abort` (or any error)
    aborts the upload, so S3 never shows a partial object and keeps no orphaned parts.
    """

    def __init__(self, client: Any, bucket: str, key: str, part_bytes: int = PART_BYTES) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(MAX_PARTS_IN_FLIGHT)
        self._done = False
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        if self._done:
            raise ValueError("write to a finished S3 object stream")
        view = memoryview(data).cast("B")
        self._buffer += view
        self._written += len(view)
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            self._send_part(part)
        return len(view)

    def _send_part(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key
            )["UploadId"]
            self._pool = ThreadPoolExecutor(MAX_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        # Fail fast: a part that already failed makes the rest pointless.
        for future in self._parts:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        number = len(self._parts) + 1
        self._slots.acquire()
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, number, part)
        future.add_done_callback(lambda _f: self._slots.release())
        self._parts.append(future)

    def _upload_part(self, number: int, part: bytes) -> dict[str, Any]:
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def take_small(self) -> bytes | None:
        """The whole content when it fits one ``PutObject`` (no part sent), finishing the
        writer; None when a multipart upload is under way (then :meth:`commit` it)."""
        if self._done or self._upload_id is not None:
            return None
        data = bytes(self._buffer)
        self._finish()
        return data

    def commit(self) -> None:
        if self._done:
            return
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                parts = [future.result() for future in self._parts]
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self.abort()
            raise
        self._finish()

    def abort(self) -> None:
        if self._done:
            return
        if self._upload_id is not None:
            for future in self._parts:
                future.cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            except Exception as exc:  # the bucket's lifecycle rule cleans up what remains
                log.warning(
                    "could not abort upload of s3://%s/%s: %s", self._bucket, self._key, exc
                )
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._buffer = bytearray()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        super().close()

    @property
    def closed(self) -> bool:
        return self._done

    def close(self) -> None:
        # Whether the object is published is decided by open_write's context manager alone
        # (commit on a clean exit, abort on an exception). A writer that closes its sink
        # first (some do, even while unwinding from an error) must not publish a torn object,
        # so close() here neither commits nor aborts.
        return None


# -- the lake ----------------------------------------------------------------------------------


class S3Lake:
    """A lake under ``s3://bucket/prefix`` with the same keys as ``LocalLake``.

    Guarantees of ``ingestion.lake`` on S3: ``open_write`` publishes on a clean exit and aborts
    the upload otherwise; ``put_atomic`` is one ``PutObject``; ``put_if_absent`` a conditional
    ``PutObject`` (``If-None-Match: *``); ``move`` a server-side copy then a delete.
    """

    def __init__(self, uri: str, *, client: Any = None) -> None:
        bucket, prefix = split_s3_uri(uri.rstrip("/"))
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        # Small objects written with open_write upload in the background (see flush()).
        self._pending: list[Future[Any]] = []
        self._pending_lock = threading.Lock()
        self._uploader: ThreadPoolExecutor | None = None

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else s3_client()

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        """The S3 object key of lake key ``key``."""
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"not a lake key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _lake_key(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    @contextlib.contextmanager
    def open_write(self, key: str, *, mode: int | None = None) -> Iterator[BinaryIO]:
        """Stream an object; it is published only if the block exits cleanly (S3 objects have
        no permission bits: ``mode`` is ignored).

        Objects of at least one part are a multipart upload, completed before the block
        returns. Smaller ones (most staged Parquet files: one per ``pa_date``) are uploaded in
        the background, up to ``DEFERRED_UPLOADS`` at once, so a landing touching hundreds of
        partitions does not pay one round trip each in turn. Every other method of the lake
        first waits for them (:meth:`flush`) and raises if one failed, so no caller ever
        observes the lake without them, and the publish intent (a ``put_atomic``) is never
        written while one is missing.
        """
        object_key = self.object_key(key)
        writer = _MultipartWriter(self.client, self.bucket, object_key, part_bytes=PART_BYTES)
        try:
            yield writer  # type: ignore[misc]
        except BaseException:
            writer.abort()
            raise
        small = writer.take_small()
        if small is None:
            writer.commit()
        else:
            self._defer_put(object_key, small)

    def _defer_put(self, object_key: str, data: bytes) -> None:
        client = self.client
        with self._pending_lock:
            if self._uploader is None:
                self._uploader = ThreadPoolExecutor(DEFERRED_UPLOADS, thread_name_prefix="s3-put")
            # Bound the bytes held: past the limit, wait for the oldest upload first.
            while len(self._pending) >= DEFERRED_UPLOADS * 2:
                oldest = self._pending.pop(0)
                oldest.result()
            self._pending.append(
                self._uploader.submit(
                    client.put_object, Bucket=self.bucket, Key=object_key, Body=data
                )
            )

    def flush(self) -> None:
        """Wait for background uploads; raise the first failure (each failure is raised once)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def put_atomic(self, key: str, data: bytes) -> None:
        self.flush()
        self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self.flush()
        object_key = self.object_key(key)
        for attempt in range(5):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=object_key, Body=data, IfNoneMatch="*"
                )
                return True
            except Exception as exc:
                code = _code(exc)
                if code == "PreconditionFailed" or _status(exc) == 412:
                    return False
                if code == "ConditionalRequestConflict" or _status(exc) == 409:
                    # Another conditional write on this key is in flight: ask again shortly;
                    # the answer will be 412 once it has completed.
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise
        raise S3Error(f"{self.uri(key)}: conditional write kept conflicting; try again later")

    def read_bytes(self, key: str) -> bytes | None:
        self.flush()
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            _raise_if_denied(exc, self.uri(key))
            raise
        return response["Body"].read()

    def _head(self, key: str) -> dict[str, Any] | None:
        self.flush()
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            _raise_if_denied(exc, self.uri(key))
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def modified_at(self, key: str) -> float | None:
        head = self._head(key)
        return None if head is None else head["LastModified"].timestamp()

    def list(self, prefix: str) -> list[str]:
        self.flush()
        return self._list(prefix)

    def _list(self, prefix: str) -> list[str]:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise ValueError(f"not a lake prefix: {prefix!r}")
        base = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # folder placeholders are not objects
                    keys.append(self._lake_key(item["Key"]))
        return sorted(keys)

    def move(self, src: str, dst: str) -> None:
        self.flush()
        source_key, target_key = self.object_key(src), self.object_key(dst)
        try:
            self._copy(self.bucket, source_key, target_key)
        except Exception as exc:
            if _is_not_found(exc):
                if self.exists(dst):
                    return  # a retried move whose copy already happened
                raise FileNotFoundError(f"cannot move {self.uri(src)}: it does not exist") from exc
            raise
        self.client.delete_object(Bucket=self.bucket, Key=source_key)

    def move_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        """:meth:`move` every ``(src, dst)`` pair, ``MOVE_THREADS`` at a time.

        A landing that touches hundreds of ``pa_date`` partitions publishes hundreds of files;
        one after the other that is two requests each (~50 ms apiece on S3), in parallel a few
        seconds in all. Every move is attempted; the first error is raised after all finished.
        """
        self.flush()
        if len(pairs) <= 1:
            for src, dst in pairs:
                self.move(src, dst)
            return
        with ThreadPoolExecutor(
            min(MOVE_THREADS, len(pairs)), thread_name_prefix="s3-move"
        ) as pool:
            futures = [pool.submit(self.move, src, dst) for src, dst in pairs]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]

    def _copy(self, source_bucket: str, source_key: str, target_key: str) -> None:
        """Server-side copy: one CopyObject, or parallel UploadPartCopy above its 5 GiB limit."""
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target_key,
                CopySource={"Bucket": source_bucket, "Key": source_key},
            )
            return
        except Exception as exc:
            if _code(exc) not in {"InvalidRequest", "EntityTooLarge"}:
                raise
            log.info("copying s3://%s/%s in parts: %s", source_bucket, source_key, exc)
        from boto3.s3.transfer import TransferConfig

        self.client.copy(
            {"Bucket": source_bucket, "Key": source_key},
            self.bucket,
            target_key,
            Config=TransferConfig(
                multipart_threshold=COPY_MULTIPART_THRESHOLD,
                multipart_chunksize=COPY_PART_BYTES,
                max_concurrency=4,
            ),
        )

    def delete(self, keys: list[str]) -> None:
        # Deleting is what cleanup does after a failure: a failed background upload must not
        # stop it, so the deletion happens first and that failure is raised after it.
        try:
            self.flush()
        finally:
            self._delete(keys)

    def _delete(self, keys: list[str]) -> None:
        object_keys = [self.object_key(k) for k in keys]
        for start in range(0, len(object_keys), _DELETE_BATCH):
            batch = object_keys[start : start + _DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                detail = "; ".join(f"{e.get('Key')}: {e.get('Code')}" for e in errors[:5])
                raise S3Error(
                    f"could not delete {len(errors)} object(s) in {self.root_uri}: {detail}"
                )

    def delete_prefix(self, prefix: str) -> None:
        # Same meaning as LocalLake: the object named ``prefix`` and everything "inside" it,
        # never a sibling that merely starts with the same letters. Like delete(), it runs
        # even when a background upload failed, and raises that failure afterwards.
        try:
            self.flush()
        finally:
            stem = prefix.rstrip("/")
            keys = [k for k in self._list(stem) if k == stem or k.startswith(stem + "/")]
            self._delete(keys)

    def copy_from(self, source_uri: str, key: str) -> None:
        """Server-side copy of any ``s3://`` object into the lake at ``key`` (for quarantine)."""
        self.flush()
        bucket, source_key = split_s3_uri(source_uri)
        self._copy(bucket, source_key, self.object_key(key))

    def __repr__(self) -> str:
        return f"S3Lake({self.root_uri!r})"
