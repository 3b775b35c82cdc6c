"""File storage backends (blocking; callers run them in worker threads).

Keys are server-generated ids (`validate_key`); nothing here ever sees a client-supplied file name.
`LocalStorage` keeps files under a directory and signs its own direct-upload URLs; `S3Storage` talks to any
S3-compatible store through boto3 and hands out presigned URLs for both directions.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol, TypeVar
from urllib.parse import urlencode

from botocore import exceptions as bce

from core.errors import ServiceUnavailable
from core.files import PRIVATE_DIR, private_dir

_T = TypeVar("_T")

_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    url: str
    method: str
    headers: dict[str, str]
    expires_in: int


class StoredObjectMissing(Exception):
    """The key names no stored object."""


class Storage(Protocol):
    def save(self, key: str, chunks: Iterable[bytes], content_type: str) -> int: ...

    def open(self, key: str, chunk_size: int = 65536) -> Iterator[bytes]: ...

    def size(self, key: str) -> int | None: ...

    def delete(self, key: str) -> None: ...

    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedUpload: ...

    def download_url(self, key: str, expires_in: int) -> str | None: ...


def validate_key(key: str) -> str:
    """Return `key` if it is 1-128 chars of [A-Za-z0-9_-], else raise ValueError (no '/', '.', NUL...)."""
    if not isinstance(key, str) or _KEY_RE.fullmatch(key) is None:
        raise ValueError(f"invalid storage key: {key!r:.80}")
    return key


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")


def _check_expires_in(expires_in: int) -> None:
    if expires_in <= 0:
        raise ValueError("expires_in must be positive")


class _ChunkReader(Iterator[bytes]):
    """Iterator over an already-opened stream; closes it when exhausted, on error, or on close()."""

    __slots__ = ("_chunk_size", "_close", "_closed", "_read", "_translate")

    def __init__(
        self,
        read: Callable[[int], bytes],
        close: Callable[[], object],
        chunk_size: int,
        translate: Callable[[Exception], BaseException] | None = None,
    ) -> None:
        self._read = read
        self._close = close
        self._chunk_size = chunk_size
        self._translate = translate
        self._closed = False

    def __iter__(self) -> _ChunkReader:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            data = self._read(self._chunk_size)
        except Exception as exc:
            self.close()
            if self._translate is None:
                raise
            raise self._translate(exc) from exc
        if not data:
            self.close()
            raise StopIteration
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


# --------------------------------------------------------------------------------------------- local disk


class LocalStorage:
    """Files under `root / key[:2] / key`; saves are atomic (temp file in the same dir + os.replace)."""

    def __init__(self, root: Path, signing_key: bytes, public_base_url: str = "") -> None:
        if not signing_key:
            raise ValueError("signing_key must not be empty")
        private_dir(root)  # uploads are private until their owner shares them: 0700, files 0600 (mkstemp)
        self._root = root.resolve(strict=True)
        self._signing_key = signing_key
        self._public_base_url = public_base_url.rstrip("/")

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = (self._root / key[:2] / key).resolve()
        # Defence in depth: even a valid key must not land outside root (e.g. via a planted symlink).
        if not path.is_relative_to(self._root) or path == self._root:
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path

    def save(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        path = self._path(key)
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        # The temp name starts with '.', which no valid key can, so it can never be mistaken for an object.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".part", dir=path.parent)
        written = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    if chunk:
                        fh.write(chunk)
                        written += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        return written

    def open(self, key: str, chunk_size: int = 65536) -> Iterator[bytes]:
        _check_chunk_size(chunk_size)
        path = self._path(key)
        try:
            fh: IO[bytes] = path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            raise StoredObjectMissing(key) from None
        return _ChunkReader(fh.read, fh.close, chunk_size)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    # ---- direct uploads signed by us (the route that accepts them belongs to edge/)

    def _signature(self, key: str, content_type: str, size: int, expires: int) -> str:
        message = f"{key}|{content_type}|{size}|{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedUpload:
        validate_key(key)
        _check_expires_in(expires_in)
        if size < 0:
            raise ValueError("size must not be negative")
        expires = int(time.time()) + expires_in
        query = urlencode({"expires": expires, "sig": self._signature(key, content_type, size, expires)})
        return PresignedUpload(
            url=f"{self._public_base_url}/api/uploads/direct/{key}?{query}",
            method="PUT",
            headers={"Content-Type": content_type},
            expires_in=expires_in,
        )

    def verify_presigned(self, key: str, content_type: str, size: int, expires: int, sig: str, now: float) -> bool:
        """True iff `sig` is ours for exactly these values and `now` is before `expires`. Never raises."""
        if _KEY_RE.fullmatch(key) is None or size < 0 or now >= expires:
            return False
        expected = self._signature(key, content_type, size, expires).encode("ascii")
        return hmac.compare_digest(expected, sig.encode("utf-8", "surrogateescape"))

    def download_url(self, key: str, expires_in: int) -> str | None:
        validate_key(key)
        return None  # the app streams the bytes itself


# --------------------------------------------------------------------------------------------- S3


# S3's minimum part size (every part but the last). Memory held by a save is about one part.
S3_PART_SIZE = 5 * 1024 * 1024

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_PART_CHECKSUMS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256")


class S3Storage:
    """Any S3-compatible store. Pass `client` to choose credentials/config; else boto3's default chain."""

    def __init__(self, bucket: str, region: str, endpoint_url: str | None = None, client: Any | None = None) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        self._bucket = bucket
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                signature_version="s3v4",
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Custom endpoints (MinIO, moto, R2...) rarely have wildcard DNS for virtual-hosted buckets.
                s3={"addressing_style": "path" if endpoint_url else "auto"},
            )
            client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)
        self._client: Any = client

    @property
    def bucket(self) -> str:
        return self._bucket

    def _call(self, fn: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            _raise_translated(exc)

    def save(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        validate_key(key)
        buffer = bytearray()
        written = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                buffer += chunk
                written += len(chunk)
                while len(buffer) >= S3_PART_SIZE:
                    if upload_id is None:
                        created = self._call(
                            self._client.create_multipart_upload,
                            Bucket=self._bucket,
                            Key=key,
                            ContentType=content_type,
                        )
                        upload_id = str(created["UploadId"])
                    body = bytes(buffer[:S3_PART_SIZE])
                    del buffer[:S3_PART_SIZE]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, body))
            if upload_id is None:
                # Everything fit in one part: a single PUT, issued only after the iterator finished cleanly.
                self._call(
                    self._client.put_object,
                    Bucket=self._bucket,
                    Key=key,
                    Body=bytes(buffer),
                    ContentType=content_type,
                )
                return written
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                buffer.clear()
            self._call(
                self._client.complete_multipart_upload,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            upload_id = None
            return written
        finally:
            if upload_id is not None:
                # Failed or aborted midway (including GeneratorExit/KeyboardInterrupt): drop the parts so
                # nothing becomes visible and nothing lingers billed.
                with contextlib.suppress(Exception):
                    self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        resp = self._call(
            self._client.upload_part,
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        part: dict[str, Any] = {"PartNumber": number, "ETag": resp["ETag"]}
        # Echo whatever part checksum the store computed (botocore sends CRC32 by default since 1.36).
        for name in _PART_CHECKSUMS:
            if resp.get(name):
                part[name] = resp[name]
        return part

    def open(self, key: str, chunk_size: int = 65536) -> Iterator[bytes]:
        validate_key(key)
        _check_chunk_size(chunk_size)
        resp = self._call(self._client.get_object, Bucket=self._bucket, Key=key)
        body = resp["Body"]
        return _ChunkReader(body.read, body.close, chunk_size, translate=_translate)

    def size(self, key: str) -> int | None:
        validate_key(key)
        try:
            resp = self._call(self._client.head_object, Bucket=self._bucket, Key=key)
        except StoredObjectMissing:
            return None
        return int(resp["ContentLength"])

    def delete(self, key: str) -> None:
        validate_key(key)
        self._call(self._client.delete_object, Bucket=self._bucket, Key=key)

    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedUpload:
        # `size` is not signed into the URL; the caller checks size() once the client reports completion.
        validate_key(key)
        _check_expires_in(expires_in)
        if size < 0:
            raise ValueError("size must not be negative")
        url = self._call(
            self._client.generate_presigned_url,
            ClientMethod="put_object",
            Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return PresignedUpload(
            url=str(url), method="PUT", headers={"Content-Type": content_type}, expires_in=expires_in
        )

    def download_url(self, key: str, expires_in: int) -> str | None:
        validate_key(key)
        _check_expires_in(expires_in)
        url = self._call(
            self._client.generate_presigned_url,
            ClientMethod="get_object",
            Params={"Bucket": self._bucket, "Key": key},
            ExpiresIn=expires_in,
            HttpMethod="GET",
        )
        return str(url)


def _translate(exc: Exception) -> BaseException:
    """Map a botocore error to ours; anything unrecognised is returned unchanged."""
    if isinstance(exc, bce.ClientError):
        response: dict[str, Any] = exc.response
        code = str(response.get("Error", {}).get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _MISSING_CODES:
            return StoredObjectMissing(str(response.get("Error", {}).get("Message") or "object not found"))
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return ServiceUnavailable("storage service is unavailable", "storage_unavailable")
    if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError, bce.ResponseStreamingError, bce.IncompleteReadError)):
        return ServiceUnavailable("storage service is unreachable", "storage_unavailable")
    return exc  # including other ClientErrors (AccessDenied, NoSuchBucket...): configuration problems


def _raise_translated(exc: Exception) -> NoReturn:  # called from an except block
    translated = _translate(exc)
    if translated is exc:
        raise exc
    raise translated from exc


def make_storage(
    backend: str,
    *,
    data_dir: Path,
    signing_key: bytes,
    bucket: str | None,
    region: str,
    endpoint_url: str | None,
    public_base_url: str = "",
) -> Storage:
    if backend == "local":
        return LocalStorage(data_dir / "uploads", signing_key, public_base_url)
    if backend == "s3":
        if not bucket:
            raise ValueError("the s3 storage backend needs a bucket")
        return S3Storage(bucket, region, endpoint_url or None)
    raise ValueError(f"unknown storage backend: {backend!r}")
