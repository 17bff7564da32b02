"""S3 storage: write-once objects in a versioned bucket, retained by Object Lock.

Why S3 at all: a publisher who outgrows one disk, or who wants retention that
no one with shell access on the server can defeat. With Object Lock the
bucket itself refuses to delete a version before the catalog's
``retain_until`` (non-negotiable 1 of the mission), and ``check`` refuses a
bucket outside the allowed regions (personal data stays in Scandinavia).

Design notes, each for a reason:

* Credentials come only from boto3's default chain (environment, shared
  config, instance roles), never from the URL or the service's settings, so
  they never land in ``pligt.toml`` or a log line.
* One client per endpoint and options in a process, built lazily under a
  lock: boto3 *clients* are thread-safe once built (resources are not), so
  gunicorn's threads share it, and so do the backends of a deployment's
  publishers (one bucket, a prefix each): a client of its own per publisher
  cost about 12 MiB and 0.2 s of CPU each (measured: 2 GiB, and one harvest at
  1 % of its rate, with 50 publishers harvested in two workers).
* Short timeouts and few retries: a request must fail (503 + Retry-After)
  rather than hang a worker thread when the endpoint is down or slow.
* Uploads stream in parts of :data:`PART_SIZE` so memory stays flat whatever
  the size; SHA-256 is computed on the way and sent as the object's checksum
  (per part and composite for multipart uploads, since S3 has no full-object
  SHA-256 for those), and the full SHA-256 goes to the catalog.
* Downloads are lazy ranged GETs, so a crawler's range request fetches only
  (about) the bytes it asked for, and no file descriptor is offered, so the
  WSGI server iterates instead of trying sendfile.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import BinaryIO

from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError

from pligt.core.errors import InvalidInput
from pligt.core.errors import StorageError
from pligt.core.storage.base import GRACE_PERIOD
from pligt.core.storage.base import INCOMPLETE_UPLOAD
from pligt.core.storage.base import Debris
from pligt.core.storage.base import Hasher
from pligt.core.storage.base import ObjectInfo
from pligt.core.storage.base import Storage
from pligt.core.storage.base import StoredObject
from pligt.core.storage.base import check_key
from pligt.core.storage.base import silent_for
from pligt.core.storage.s3_options import DEFAULT_ALLOWED_REGIONS
from pligt.core.storage.s3_options import S3Options
from pligt.core.storage.s3_options import check_bucket
from pligt.core.storage.s3_options import check_prefix
from pligt.core.storage.s3_options import parse_url

log = logging.getLogger("pligt")

#: Parts of a multipart upload. S3 wants at least 5 MiB per part (but the last)
#: and at most 10,000 parts, so objects up to about 78 GiB; memory holds one part.
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000
#: Ranged GETs start this small after a seek, so a short range costs little ...
MIN_WINDOW = 64 * 1024
#: ... and double while reading goes on, up to this, so a long download needs few requests.
MAX_WINDOW = 64 * 1024 * 1024


class S3Storage(Storage):
    """Objects in ``bucket`` under ``prefix``, one version each, Object-Locked when asked.

    :param endpoint_url: an S3-compatible endpoint (MinIO, Ceph, a Nordic
        provider); ``None`` means AWS.
    :param region: the region to sign requests for; ``None``: boto3's default chain.
    :param addressing_style: ``auto``, ``path`` (``endpoint/bucket/key``, for most
        self-hosted endpoints) or ``virtual`` (``bucket.endpoint/key``).
    :param object_lock_mode: ``GOVERNANCE`` (accounts with the bypass permission
        can still delete) or ``COMPLIANCE`` (no one can, not even the root account).
    :param allowed_regions: where the bucket may be; ``check`` refuses any other.
    :param require_object_lock: refuse a bucket without Object Lock.
    :raises ConfigurationError: for any value the backend cannot run with.
    """

    scheme = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        object_lock_mode: str = "GOVERNANCE",
        allowed_regions: Sequence[str] | str = DEFAULT_ALLOWED_REGIONS,
        require_object_lock: bool = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = check_bucket(bucket)
        self.prefix = check_prefix(prefix)
        checked = S3Options.of(
            endpoint_url=endpoint_url,
            region=region,
            addressing_style=addressing_style,
            object_lock_mode=object_lock_mode,
            allowed_regions=allowed_regions,
            require_object_lock=require_object_lock,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )
        self.endpoint_url = checked.endpoint_url
        self.region = checked.region
        self.addressing_style = checked.addressing_style
        self.object_lock_mode = checked.object_lock_mode
        self.allowed_regions = checked.allowed_regions
        self.require_object_lock = checked.require_object_lock
        self.connect_timeout = checked.connect_timeout
        self.read_timeout = checked.read_timeout
        self.max_attempts = checked.max_attempts
        self._client: Any = None
        self._client_lock = threading.Lock()
        #: Whether the bucket has Object Lock, asked once when it is not required.
        self._bucket_locks: bool | None = True if require_object_lock else None

    @classmethod
    def from_url(cls, url: str, **options: object) -> S3Storage:
        """Build the backend from ``s3://bucket/prefix`` and explicit options.

        :raises ConfigurationError: for a malformed URL or an unknown option.
        """
        bucket, prefix, _ = parse_url(url, options)
        return cls(bucket, prefix, **options)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def endpoint(self) -> str:
        """The endpoint in words, for messages."""
        return self.endpoint_url or f"AWS S3 ({self.region or 'default region'})"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, built on first use and shared by all threads (and backends of its options)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _shared_client(
                        self.endpoint_url,
                        self.region,
                        self.addressing_style,
                        self.connect_timeout,
                        self.read_timeout,
                        self.max_attempts,
                    )
        return self._client

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- writing ---------------------------------------------------------------------

    def save(self, key: str, chunks: Iterable[bytes], *, retain_until: datetime | None = None) -> StoredObject:
        """Stream ``chunks`` into one new object, Object-Locked until ``retain_until``.

        Small objects go up in one PUT; larger ones as a multipart upload whose
        parts are sent as they fill, so at most one part is in memory. The
        object becomes visible only when the last request succeeds; if the
        stream or S3 fails first, the multipart upload is aborted.
        """
        name = self._key(key)
        if self.exists(key):  # fail before reading a large stream; the PUT checks again
            raise FileExistsError(f"object {key!r} already exists")
        lock = self._lock_arguments(retain_until)
        hasher = Hasher()
        buffer = bytearray()
        upload: _Multipart | None = None
        try:
            for chunk in chunks:  # errors of the source propagate as they are
                hasher.update(chunk)
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    if upload is None:
                        upload = self._start_multipart(name, key, lock)
                    upload.send(buffer)
                    buffer.clear()
            if upload is None:
                self._put(name, key, buffer, hasher, lock)
            else:
                if buffer:
                    upload.send(buffer)
                    buffer.clear()
                version_id = upload.complete()
                upload = None
                if lock:
                    self._ensure_retention(name, key, version_id, lock)
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return StoredObject(key=key, size=hasher.size, sha256=hasher.hexdigest())

    def _put(self, name: str, key: str, data: bytes | bytearray, hasher: Hasher, lock: dict[str, Any]) -> None:
        with self._errors("store", key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(hasher.hexdigest())).decode(),
                **lock,
            )

    def _start_multipart(self, name: str, key: str, lock: dict[str, Any]) -> _Multipart:
        with self._errors("store", key):
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=name, ChecksumAlgorithm="SHA256", **lock
            )
        return _Multipart(self, name, key, created["UploadId"])

    def _ensure_retention(self, name: str, key: str, version_id: str | None, lock: dict[str, Any]) -> None:
        """Make sure the new version carries its retention.

        AWS applies the lock given when the multipart upload started; some
        S3-compatible endpoints (moto 5.2, for one) ignore it there, so it is
        read back and, if missing, set on the version. If that fails, the
        unlocked version is removed again, so nothing stays that S3 would not
        protect.
        """
        version = {"VersionId": version_id} if version_id else {}
        wanted: datetime = lock["ObjectLockRetainUntilDate"]
        try:
            with self._errors("lock", key):
                head = self.client.head_object(Bucket=self.bucket, Key=name, **version)
                until = head.get("ObjectLockRetainUntilDate")
                if head.get("ObjectLockMode") != lock["ObjectLockMode"] or until is None or until < wanted:
                    self.client.put_object_retention(
                        Bucket=self.bucket,
                        Key=name,
                        Retention={"Mode": lock["ObjectLockMode"], "RetainUntilDate": wanted},
                        **version,
                    )
        except (StorageError, FileNotFoundError):
            with contextlib.suppress(StorageError):
                self.delete(key)
            raise

    def _lock_arguments(self, retain_until: datetime | None) -> dict[str, Any]:
        """The Object Lock headers for a new object, or none.

        A date already past is not sent: S3 refuses one, and there is nothing
        left to enforce (a migration carries over old versions this way).
        """
        if retain_until is None:
            return {}
        until = retain_until if retain_until.tzinfo else retain_until.replace(tzinfo=UTC)
        if until <= datetime.now(UTC) or not self._bucket_has_object_lock():
            return {}
        return {"ObjectLockMode": self.object_lock_mode, "ObjectLockRetainUntilDate": until.astimezone(UTC)}

    def _bucket_has_object_lock(self) -> bool:
        if self._bucket_locks is None:
            self._bucket_locks = self._object_lock_status() == "Enabled"
        return self._bucket_locks

    # -- reading -----------------------------------------------------------------------

    def open(self, key: str) -> BinaryIO:
        """Open the object lazily: nothing is fetched until the first read."""
        name = self._key(key)
        with self._errors("open", key):
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        return _S3Reader(self, name, key, int(head["ContentLength"]))  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        name = self._key(key)
        with self._errors("look up", key):
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        return int(head["ContentLength"])

    def iter_objects(self) -> Iterator[ObjectInfo]:
        start = self._start
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list", None):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for entry in page.get("Contents", []):
                    try:
                        key = check_key(entry["Key"][len(start) :])
                    except InvalidInput:  # not ours (a folder marker, say): skip
                        continue
                    yield ObjectInfo(key, int(entry["Size"]), _utc(entry["LastModified"]))

    def retained_until(self, key: str) -> datetime | None:
        """Return the Object Lock date of the object's current version while it lies ahead."""
        name = self._key(key)
        with self._errors("look up", key):
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        until = head.get("ObjectLockRetainUntilDate")
        if not head.get("ObjectLockMode") or until is None or _utc(until) <= datetime.now(UTC):
            return None
        return _utc(until)

    @property
    def _start(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    # -- debris of interrupted writes ----------------------------------------------------

    def debris(self, older_than: timedelta = GRACE_PERIOD) -> list[Debris]:
        """List the incomplete multipart uploads under the prefix, abandoned once silent for ``older_than``.

        S3 cannot say whether the writer still lives, so its last sign of life
        decides: the newest part it sent, or when it began (a writer sends a part
        at least every :data:`PART_SIZE` bytes). Each upload's parts are listed
        for their size and times.
        """
        start = self._start
        found: list[Debris] = []
        now = datetime.now(UTC)
        with self._errors("list uploads in", None):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=start):
                for upload in page.get("Uploads", []):
                    name, upload_id = upload["Key"], upload["UploadId"]
                    size, last = 0, _utc(upload["Initiated"])
                    try:
                        for parts in self.client.get_paginator("list_parts").paginate(
                            Bucket=self.bucket, Key=name, UploadId=upload_id
                        ):
                            for part in parts.get("Parts", []):
                                size += int(part["Size"])
                                last = max(last, _utc(part["LastModified"]))
                    except ClientError as e:
                        if _status(e) == 404:  # completed or aborted meanwhile
                            continue
                        raise
                    abandoned = silent_for(last, older_than, now)
                    found.append(Debris(INCOMPLETE_UPLOAD, name[len(start) :], size, last, abandoned, upload_id))
        return found

    def remove_debris(self, item: Debris) -> bool:
        """Abort the upload, so S3 drops its parts (the object never appears)."""
        if item.kind != INCOMPLETE_UPLOAD or not item.upload_id:
            raise InvalidInput(f"not a leftover of this storage: {item.kind} {item.name!r}")
        name = f"{self._start}{item.name}"
        with self._errors("abort upload in", None):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=item.upload_id)
            except ClientError as e:
                if _status(e) == 404:  # NoSuchUpload: completed or aborted meanwhile
                    return False
                raise
        return True

    # -- deleting ----------------------------------------------------------------------

    def delete(self, key: str, *, bypass_retention: bool = False) -> None:
        """Delete every version of the object; S3 refuses while Object Lock retains one.

        With ``bypass_retention`` a GOVERNANCE lock is bypassed (the credentials
        need s3:BypassGovernanceRetention); a COMPLIANCE lock cannot be.
        """
        name = self._key(key)
        paginator = self.client.get_paginator("list_object_versions")
        with self._errors("delete", key):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=name):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if entry["Key"] != name:
                        continue
                    try:
                        self.client.delete_object(
                            Bucket=self.bucket,
                            Key=name,
                            VersionId=entry["VersionId"],
                            **({"BypassGovernanceRetention": True} if bypass_retention else {}),
                        )
                    except ClientError as e:
                        if _status(e) == 403:
                            raise StorageError(
                                f"S3 refused to delete {key!r} ({_code(e)}): Object Lock retains the version "
                                "(or the credentials may not delete it)"
                            ) from e
                        raise

    # -- the bucket --------------------------------------------------------------------

    def check(self) -> dict[str, object]:
        """Verify the bucket: reachable, in an allowed region, versioned, Object-Locked if required.

        It does not write a probe object: that would leave versions behind in
        a bucket that is meant to keep everything.

        :raises StorageError: naming what is wrong (and where the bucket is).
        """
        with self._errors("reach bucket", None):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                status = _status(e)
                if status == 404:
                    raise StorageError(f"bucket {self.bucket!r} does not exist at {self.endpoint}") from e
                if status == 403:
                    raise StorageError(f"access to bucket {self.bucket!r} at {self.endpoint} is denied") from e
                if status == 301:
                    region = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
                    raise StorageError(
                        f"bucket {self.bucket!r} is in region {region or 'another region'}; set s3_region to match"
                    ) from e
                raise
            location = self.client.get_bucket_location(Bucket=self.bucket).get("LocationConstraint")
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") or "never enabled"
        # S3's historical spellings: no constraint is us-east-1, "EU" is eu-west-1.
        region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
        if region not in self.allowed_regions:
            raise StorageError(
                f"bucket {self.bucket!r} is in {region}, outside the allowed regions "
                f"({', '.join(self.allowed_regions)}): personal data must stay in Scandinavia; "
                "use a bucket there (or change allowed_regions if your provider names regions its own way)"
            )
        if versioning != "Enabled":
            raise StorageError(
                f"versioning is {versioning.lower()} on bucket {self.bucket!r}; Pligt needs it enabled "
                "(and Object Lock with it)"
            )
        lock_status = self._object_lock_status()
        if self.require_object_lock and lock_status != "Enabled":
            raise StorageError(
                f"Object Lock is not enabled on bucket {self.bucket!r}, so the storage cannot enforce retention; "
                "enable it on the bucket, or set s3_require_object_lock = false"
            )
        self._bucket_locks = lock_status == "Enabled"
        with self._errors("list uploads", None):
            pending = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self._start).get("Uploads", [])
        return {
            "url": self.url,
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "region": region,
            "allowed_regions": list(self.allowed_regions),
            "versioning": versioning,
            "object_lock": lock_status,
            "object_lock_mode": self.object_lock_mode if lock_status == "Enabled" else None,
            "incomplete_uploads": len(pending),
        }

    def _object_lock_status(self) -> str:
        with self._errors("read Object Lock of", None):
            try:
                config = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except ClientError as e:
                if _status(e) == 404:  # ObjectLockConfigurationNotFoundError
                    return "Disabled"
                raise
        return str(config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") or "Disabled")

    # -- errors --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None) -> Iterator[None]:
        """Turn boto's errors into the contract's: 404 → FileNotFoundError, 412 on write →
        FileExistsError, anything else (including an endpoint that is down or slow) →
        :class:`StorageError` with a message that says which."""
        what = f"{action} {key!r}" if key else f"{action} {self.bucket!r}"
        try:
            yield
        except ClientError as e:
            status = _status(e)
            if status == 404 and key is not None and _code(e) != "NoSuchBucket":
                raise FileNotFoundError(f"no object {key!r} in {self.url}") from e
            if status == 412 and key is not None:
                raise FileExistsError(f"object {key!r} already exists") from e
            message = e.response.get("Error", {}).get("Message") or ""
            raise StorageError(f"S3 could not {what}: {_code(e)} (HTTP {status}) {message}".rstrip()) from e
        except BotoCoreError as e:
            raise StorageError(f"S3 endpoint {self.endpoint} is down or too slow ({what}): {e}") from e


class _Multipart:
    """One multipart upload in progress: parts with SHA-256 checksums, then complete or abort."""

    def __init__(self, storage: S3Storage, name: str, key: str, upload_id: str) -> None:
        self.storage = storage
        self.name = name
        self.key = key
        self.upload_id = upload_id
        self.parts: list[dict[str, Any]] = []

    def send(self, data: bytes | bytearray) -> None:
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.key!r} is larger than S3 allows in {MAX_PARTS:,} parts of {PART_SIZE:,} bytes")
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        s = self.storage
        with s._errors("store", self.key):
            answer = s.client.upload_part(
                Bucket=s.bucket,
                Key=self.name,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})

    def complete(self) -> str | None:
        """Make the object visible (refused if the key appeared meanwhile); return its version."""
        s = self.storage
        with s._errors("store", self.key):
            done = s.client.complete_multipart_upload(
                Bucket=s.bucket,
                Key=self.name,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
                IfNoneMatch="*",
            )
        version: str | None = done.get("VersionId")
        return version

    def abort(self) -> None:
        """Drop the parts; if S3 cannot be told now, say so (a lifecycle rule cleans up)."""
        s = self.storage
        try:
            with s._errors("abort upload of", self.key):
                s.client.abort_multipart_upload(Bucket=s.bucket, Key=self.name, UploadId=self.upload_id)
        except (StorageError, FileNotFoundError) as e:
            log.warning(
                "could not abort the incomplete upload %s of %s (its parts are invisible, but stored "
                "until aborted or removed by the bucket's AbortIncompleteMultipartUpload rule): %s",
                self.upload_id,
                self.key,
                e,
            )


class _S3Reader(io.RawIOBase):
    """A read-only, seekable view of one object that fetches bytes only when read.

    Each read is served from a ranged GET (``Range: bytes=start-end``) that
    is streamed, never held whole. After a seek the first GET covers just the
    read asked for (at least :data:`MIN_WINDOW`); while reading continues the
    window doubles up to :data:`MAX_WINDOW`. So a range request of a few bytes
    fetches a few kilobytes, and a 1 GiB download takes a few dozen GETs with
    the memory of one socket buffer. ``fileno`` raises
    :class:`io.UnsupportedOperation`, so gunicorn streams by iteration.
    """

    def __init__(self, storage: S3Storage, name: str, key: str, size: int) -> None:
        super().__init__()
        self._storage = storage
        self._name = name
        self._key = key
        self._size = size
        self._pos = 0
        self._body: Any = None
        self._body_end = 0
        self._window = 0

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        if position != self._pos:
            self._drop_body()
            self._window = 0
            self._pos = position
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        wanted = size
        try:
            while wanted > 0 and self._pos < self._size:
                if self._body is None or self._pos >= self._body_end:
                    self._fetch(wanted)
                with self._storage._errors("read", self._key):
                    data = self._body.read(min(wanted, self._body_end - self._pos))
                if not data:
                    self._drop_body()
                    raise StorageError(f"S3 ended the response for {self._key!r} early, at byte {self._pos:,}")
                parts.append(data)
                self._pos += len(data)
                wanted -= len(data)
        except StorageError as e:
            # Once a response has begun there is no 503 to send: the client sees
            # the body cut short, and this line says why.
            log.error("reading %s from S3 stopped at byte %s of %s: %s", self._key, self._pos, self._size, e.message)
            raise
        return b"".join(parts)

    def readall(self) -> bytes:
        """Read the rest in one GET (the caller asked for all of it)."""
        self._window = MAX_WINDOW
        chunks = []
        while self._pos < self._size:
            chunks.append(self.read(self._size - self._pos))
        return b"".join(chunks)

    def _fetch(self, wanted: int) -> None:
        self._drop_body()
        self._window = max(wanted, MIN_WINDOW, min(self._window * 2, MAX_WINDOW))
        end = min(self._size, self._pos + self._window)
        s = self._storage
        with s._errors("read", self._key):
            answer = s.client.get_object(Bucket=s.bucket, Key=self._name, Range=f"bytes={self._pos}-{end - 1}")
        self._body = answer["Body"]
        self._body_end = end

    def _drop_body(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing to save
                body.close()

    def close(self) -> None:
        self._drop_body()
        super().close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("an S3 object has no file descriptor; iterate over it instead")


#: The S3 clients of this process, by everything a client is made from (see _shared_client).
_clients: dict[tuple[object, ...], Any] = {}
_clients_lock = threading.Lock()
#: What boto3's default chain finds credentials and settings by: a client made under one set is not another's.
_CLIENT_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
)


def _shared_client(
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> Any:
    """The process's client for these options and the credentials the environment names now.

    A client made before a fork (its connections the parent's) is not the child's.
    """
    key = (
        os.getpid(),
        endpoint_url,
        region,
        addressing_style,
        connect_timeout,
        read_timeout,
        max_attempts,
        tuple(os.environ.get(name) for name in _CLIENT_ENV),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(
                endpoint_url, region, addressing_style, connect_timeout, read_timeout, max_attempts
            )
        return client


def _make_client(
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        s3={"addressing_style": addressing_style},
        # We send our own SHA-256 where it matters; no CRC32 on top, and no
        # whole-object validation of GETs we read only in ranges.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # One connection per concurrent download (gunicorn's threads, of every publisher).
        max_pool_connections=64,
    )
    # A session of our own: boto3's default session is not safe to share
    # between threads while a client is being made.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _utc(moment: datetime) -> datetime:
    """An S3 timestamp (boto3 gives them in the local zone, or naive from some endpoints) in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code") or "")
