"""The storage backend contract: write-once objects addressed by key.

Every backend (local files now, S3 later) passes the same contract suite in
``tests/test_storage_contract.py``. Backends take explicit constructor
arguments and never read the service's configuration.
"""

from __future__ import annotations

import base64
import hashlib
import re
from abc import ABC
from abc import abstractmethod
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import BinaryIO
from typing import ClassVar

from pligt.core.errors import InvalidInput
from pligt.core.errors import StorageError

#: Keys are made by the archive, never by users; this shape rules out
#: traversal ("..", absolute paths) and surprises (spaces, control characters).
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")

CHUNK_SIZE = 1024 * 1024

#: How long a leftover must have been silent before it counts as abandoned, where a
#: backend cannot ask the writer (an S3 upload's parts) or the catalog may still be
#: about to list it (an object stored by a publish that has not committed yet).
GRACE_PERIOD = timedelta(hours=1)

#: The kinds of :class:`Debris`.
TEMPORARY_FILE = "temporary file"
EMPTY_FOLDER = "empty folder"
INCOMPLETE_UPLOAD = "incomplete upload"


@dataclass(frozen=True)
class StoredObject:
    """What a completed write produced, measured while streaming."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ObjectInfo:
    """A complete object as the storage lists it."""

    key: str
    size: int
    #: When the storage last wrote it (aware, UTC): a file's mtime, an S3 object's LastModified.
    modified: datetime


@dataclass(frozen=True)
class Debris:
    """What an interrupted write left behind: never an object, never served, only space taken.

    ``abandoned`` says its writer is gone: known to be (a temporary file whose
    lock is free, a folder with nothing in it) or, where the backend cannot ask
    the writer, silent for longer than the grace period it was listed with.
    """

    kind: str
    #: Where it is, below the storage's root or prefix (a path, or the key an upload was for).
    name: str
    size: int
    #: The writer's last sign of life (aware, UTC).
    modified: datetime
    abandoned: bool
    #: The S3 upload to abort (S3 only).
    upload_id: str | None = None

    def describe(self) -> str:
        """The leftover in words, for a report line."""
        if self.kind == EMPTY_FOLDER:
            return f"{self.kind} {self.name}/ (empty since {self.modified:%Y-%m-%d %H:%M:%S} UTC)"
        return f"{self.kind} {self.name} ({self.size:,} bytes, last written {self.modified:%Y-%m-%d %H:%M:%S} UTC)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "size": self.size,
            "modified": self.modified.astimezone(UTC).isoformat(timespec="seconds"),
            "abandoned": self.abandoned,
            **({"upload_id": self.upload_id} if self.upload_id else {}),
        }


@dataclass
class SweepReport:
    """What :meth:`Storage.sweep` removed, left (still being written), and could not remove."""

    removed: list[Debris] = field(default_factory=list)
    in_use: list[Debris] = field(default_factory=list)
    failed: list[tuple[Debris, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(d.size for d in self.removed)


def silent_for(modified: datetime, older_than: timedelta, now: datetime | None = None) -> bool:
    """Tell whether something last written at ``modified`` has been silent for ``older_than``.

    ``older_than`` of zero (or less) means whatever its age, even a time ahead of this clock.
    """
    if older_than <= timedelta(0):
        return True
    return (now or datetime.now(UTC)) - modified >= older_than


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidInput`."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or len(key) > 512:
        raise InvalidInput(f"invalid storage key {key!r}")
    return key


class Hasher:
    """Count and hash bytes as they pass, so no second read is needed."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def payload_digest(sha1: bytes) -> str:
    """Write a SHA-1 digest as Heritrix and warcio write payload digests (WARC, CDX): ``sha1:`` + base32."""
    return "sha1:" + base64.b32encode(sha1).decode("ascii")


class Sha1Tap:
    """Pass chunks on unchanged, taking their SHA-1 on the way (beside a backend's own :class:`Hasher`).

    The deposit institution identifies files by SHA-1 (its crawler's digest); the
    archive takes it from the very chunks the backend stores, so the bytes are read once.
    """

    def __init__(self) -> None:
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = 0

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._sha1.update(chunk)
            self.size += len(chunk)
            yield chunk

    def digest(self) -> str:
        """The SHA-1 of what passed, as :func:`payload_digest` writes it."""
        return payload_digest(self._sha1.digest())


class Storage(ABC):
    """Write-once object storage.

    Objects MUST never be visible half-written, MUST NOT be overwritten, and
    MUST be read back byte-identical. Missing keys raise
    :class:`FileNotFoundError`; an existing key on save raises
    :class:`FileExistsError`; any other backend failure raises
    :class:`pligt.core.errors.StorageError`.
    """

    scheme: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: object) -> Storage:
        """Build the backend from its URL (e.g. ``file:///srv/pligt/files``)."""

    @abstractmethod
    def save(self, key: str, chunks: Iterable[bytes], *, retain_until: datetime | None = None) -> StoredObject:
        """Store the stream under ``key`` atomically and return its size and SHA-256.

        If ``chunks`` raises, nothing MUST remain stored and the error MUST propagate.

        :param retain_until: the catalog's retention date for the version. A
            backend that can enforce retention itself (S3 Object Lock) MUST
            refuse to delete the object before then; one that cannot (local
            files, where the archive core enforces it) ignores it.
        """

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open the object for reading; the stream SHOULD be seekable."""

    def read_range(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Yield ``length`` bytes (or up to the end) from ``start``, in chunks."""
        with self.open(key) as stream:
            if start:
                stream.seek(start)
            remaining = length
            while remaining is None or remaining > 0:
                want = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = stream.read(want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    @abstractmethod
    def delete(self, key: str, *, bypass_retention: bool = False) -> None:
        """Remove the object; a missing key MUST NOT raise.

        :param bypass_retention: ask storage-side retention (S3 GOVERNANCE) to
            step aside; storage that cannot (COMPLIANCE) MUST refuse with
            :class:`StorageError`.
        """

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Tell whether a complete object is stored under ``key``."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Return the stored object's size in bytes."""

    @abstractmethod
    def iter_objects(self) -> Iterator[ObjectInfo]:
        """Yield every complete object, with its size and when it was written (never a temporary one)."""

    def iter_keys(self) -> Iterator[str]:
        """Yield every complete object's key (never a temporary one)."""
        for info in self.iter_objects():
            yield info.key

    @abstractmethod
    def retained_until(self, key: str) -> datetime | None:
        """Return the date before which the storage itself refuses to delete the object, if any.

        Storage without retention of its own (local files) MUST return ``None``;
        S3 returns an Object Lock's date while it is in the future.

        :raises FileNotFoundError: if there is no such object.
        """

    @abstractmethod
    def debris(self, older_than: timedelta = GRACE_PERIOD) -> list[Debris]:
        """List what interrupted writes left behind (temporary files, empty folders, incomplete uploads).

        A backend that can tell whether the writer still lives (a lock) MUST
        mark debris abandoned only when it does not, whatever its age; one
        that cannot MUST mark it abandoned only once silent for ``older_than``.
        Leftovers that are no longer debris (stored objects) MUST NOT be listed.
        """

    @abstractmethod
    def remove_debris(self, item: Debris) -> bool:
        """Remove one leftover :meth:`debris` listed as abandoned; return whether it went.

        It MUST NOT be removed if its writer has taken it up again meanwhile (a
        held lock: ``False``); one already gone is ``False`` too. A removal the
        storage refuses raises :class:`StorageError`.
        """

    def sweep(self, older_than: timedelta = GRACE_PERIOD) -> SweepReport:
        """Remove every abandoned leftover of interrupted writes; never a live writer's, never an object.

        Safe while the archive is serving: a local writer holds its temporary
        file locked, and an S3 upload is left until silent for ``older_than``.
        """
        report = SweepReport()
        for item in self.debris(older_than):
            if not item.abandoned:
                report.in_use.append(item)
                continue
            try:
                if self.remove_debris(item):
                    report.removed.append(item)
                else:
                    report.in_use.append(item)
            except StorageError as e:
                report.failed.append((item, e.message))
        return report

    @abstractmethod
    def check(self) -> dict[str, object]:
        """Raise :class:`StorageError` unless the backend is usable now; return what was checked.

        The facts returned (the URL, and e.g. a bucket's region) are for
        ``pligt check`` to show; callers that only want the verdict ignore them.
        """

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL this backend was opened with (without secrets)."""
