"""Plain records the catalog hands out; no behaviour beyond derived values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

PUBLIC = "public"
PROTECTED = "protected"
VISIBILITIES = (PUBLIC, PROTECTED)


#: Where the archive gets the current time (tests pass their own to move through retention).
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Return the current time in UTC, to the second (what HTTP dates can carry)."""
    return datetime.now(UTC).replace(microsecond=0)


def to_text(moment: datetime | None) -> str | None:
    """Format a UTC time as the catalog stores it (sortable ISO 8601)."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_text(text: str | None) -> datetime | None:
    """Parse a time stored by :func:`to_text`."""
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class Item:
    """A published thing under a stable slug; its bytes live in versions."""

    id: int
    slug: str
    title: str
    visibility: str
    created_at: datetime


@dataclass(frozen=True)
class Version:
    """One published, immutable file of an item."""

    id: int
    slug: str
    title: str
    visibility: str
    number: int
    filename: str
    size: int
    sha256: str
    content_type: str
    storage_key: str
    published_at: datetime
    retain_until: datetime
    withdrawn_at: datetime | None
    #: ``sha1:`` and the base32 SHA-1, as Heritrix and warcio write a payload digest (WARC, CDX);
    #: None for a version published before it was kept, until ``pligt fixity`` reads its bytes.
    sha1: str | None = None

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    def withdrawable(self, now: datetime) -> bool:
        """Tell whether the minimum retention has run out."""
        return now >= self.retain_until

    def to_dict(self) -> dict[str, object]:
        return {
            "slug": self.slug,
            "title": self.title,
            "visibility": self.visibility,
            "version": self.number,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "sha1": self.sha1,
            "content_type": self.content_type,
            "published_at": to_text(self.published_at),
            "retain_until": to_text(self.retain_until),
            "withdrawn_at": to_text(self.withdrawn_at),
        }


@dataclass(frozen=True)
class Credential:
    """A crawler account; the password exists only as a slow hash."""

    id: int
    request_id: int
    username: str
    password_hash: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "username": self.username,
            "created_at": to_text(self.created_at),
            "expires_at": to_text(self.expires_at),
            "revoked_at": to_text(self.revoked_at),
        }


@dataclass(frozen=True)
class Download:
    """A version looked up for download, with the requester's credential state."""

    version: Version
    #: None when no credential was presented; else whether it is still valid.
    credential_active: bool | None


PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
RELEASED = "released"
EXPIRED = "expired"
REQUEST_STATUSES = (PENDING, APPROVED, DENIED, RELEASED, EXPIRED)
#: The personal fields of an access request: erased by the purge.
PERSONAL_FIELDS = ("institution", "contact_name", "contact_email", "legal_basis", "message")


@dataclass(frozen=True)
class AccessRequest:
    """The deposit institution's formal request for the crawler's credentials."""

    id: int
    status: str
    institution: str | None
    contact_name: str | None
    contact_email: str | None
    legal_basis: str | None
    message: str | None
    created_at: datetime
    decided_at: datetime | None
    decision_reason: str | None
    closed_at: datetime | None
    purged_at: datetime | None
    #: True when the personal fields are there, sealed, but their key is not in the key store:
    #: erased after this copy of the catalog was made, or the key store is lost.
    unreadable: bool = False

    @property
    def personal_data(self) -> str:
        """Say what became of the personal fields: ``readable``, ``erased`` or ``unreadable`` (no key)."""
        if self.purged_at is not None:
            return "erased"
        return "unreadable" if self.unreadable else "readable"

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "personal_data": self.personal_data,
            "institution": self.institution,
            "contact_name": self.contact_name,
            "contact_email": self.contact_email,
            "legal_basis": self.legal_basis,
            "message": self.message,
            "created_at": to_text(self.created_at),
            "decided_at": to_text(self.decided_at),
            "decision_reason": self.decision_reason,
            "closed_at": to_text(self.closed_at),
        }


@dataclass(frozen=True)
class Release:
    """A single-use release of a credential's password."""

    id: int
    request_id: int
    credential_id: int
    sealed_password: str | None
    created_at: datetime
    expires_at: datetime
    released_at: datetime | None


#: How a download record is tied to the deposit institution, strongest first (see the README):
#: the request carried a crawler credential; an anonymous request came on a connection that had
#: carried one; an anonymous client named itself, in its User-Agent, as a crawler the owner listed.
BY_CREDENTIAL = "credential"
BY_CONNECTION = "connection"
BY_USER_AGENT = "user-agent"
ATTRIBUTIONS = (BY_CREDENTIAL, BY_CONNECTION, BY_USER_AGENT)

#: What the proof of deposit says of one version for one access request (see :attr:`HarvestRow.state`).
#: Only a whole download shows that the institution holds a version: a 304 answers a client that
#: named the version (by an ETag it may have from a HEAD or an aborted GET, or by any date at or
#: after Last-Modified, one in the future included), and it sends no byte.
FETCHED = "fetched"  # a whole download: every byte handed to the network; the institution holds it
PARTIAL = "partial"  # some bytes only (a range, or a fetch cut off)
NAMED = "named"  # conditional requests answered 304 only: the client named the version, it did not take it
NOT_FETCHED = "not fetched"


@dataclass(frozen=True)
class Evidence:
    """One download record (or the best of several) that ties a version to the deposit crawler."""

    at: datetime
    #: One of :data:`ATTRIBUTIONS`.
    via: str
    #: The crawler credential (None when only the User-Agent tells).
    credential_id: int | None
    #: The listed User-Agent pattern the client matched, if any (never the User-Agent itself).
    crawler: str | None = None


@dataclass(frozen=True)
class HarvestRow:
    """What one access request's crawler (across all its credentials) did with one retained version.

    The strongest attribution wins; among equals, the first fetch and the latest 304.
    """

    request_id: int
    institution: str | None
    #: The request's credentials (id, username), oldest first: a rotation adds one.
    credentials: tuple[tuple[int, str], ...]
    version: Version
    #: The first fetch of any of its bytes (whole or in part).
    fetched: Evidence | None
    #: The first whole download: a 200, or a 206 of the whole file, with every byte handed to the network.
    complete: Evidence | None
    #: The latest conditional request answered 304: the client named this version. On its own it
    #: proves nothing held (see :data:`NAMED`).
    not_modified: Evidence | None
    #: For public versions: when anyone fetched it whole without credentials (it may
    #: have been the crawler before it authenticated; nothing tells who it was).
    anonymous_complete_at: datetime | None

    @property
    def revisit(self) -> Evidence | None:
        """The latest 304 at or after the first whole download: a revisit of a version the institution holds.

        At or after, because records are kept to the second.
        """
        if self.complete is None or self.not_modified is None or self.not_modified.at < self.complete.at:
            return None
        return self.not_modified

    @property
    def state(self) -> str:
        """:data:`FETCHED` (held), :data:`PARTIAL`, :data:`NAMED` or :data:`NOT_FETCHED`."""
        if self.complete is not None:
            return FETCHED
        if self.fetched is not None:
            return PARTIAL
        return NAMED if self.not_modified is not None else NOT_FETCHED

    @property
    def evidence(self) -> Evidence | None:
        """The record the state rests on."""
        return self.complete or self.fetched or self.not_modified

    @property
    def credential_id(self) -> int | None:
        """The credential behind :attr:`evidence` (None: not fetched, or known by User-Agent only)."""
        return self.evidence.credential_id if self.evidence else None

    @property
    def username(self) -> str | None:
        return dict(self.credentials).get(self.credential_id) if self.credential_id is not None else None

    @property
    def fetched_at(self) -> datetime | None:
        return self.fetched.at if self.fetched else None

    @property
    def complete_at(self) -> datetime | None:
        return self.complete.at if self.complete else None

    @property
    def revisit_confirmed_at(self) -> datetime | None:
        return self.revisit.at if self.revisit else None

    def to_dict(self) -> dict[str, object]:
        evidence = self.evidence
        return {
            "request": self.request_id,
            "institution": self.institution,
            "credentials": [credential_id for credential_id, _ in self.credentials],
            "credential": self.credential_id,
            "username": self.username,
            "slug": self.version.slug,
            "version": self.version.number,
            "filename": self.version.filename,
            "visibility": self.version.visibility,
            "size": self.version.size,
            "sha256": self.version.sha256,
            "sha1": self.version.sha1,
            "state": self.state,
            "attributed_by": evidence.via if evidence else None,
            "crawler": evidence.crawler if evidence else None,
            "fetched_at": to_text(self.fetched_at),
            "complete_at": to_text(self.complete_at),
            "revisit_confirmed_at": to_text(self.revisit_confirmed_at),
            "revisit_credential": self.revisit.credential_id if self.revisit else None,
            "not_modified_at": to_text(self.not_modified.at if self.not_modified else None),
            "not_modified_credential": self.not_modified.credential_id if self.not_modified else None,
            "anonymous_complete_at": to_text(self.anonymous_complete_at),
        }


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint of the audit log as the catalog keeps it, with its time stamp once it has one.

    ``stamp`` is the TSA's answer (DER), ``stamp_chain`` the certificates (PEM) to check
    it with; ``stamp_error`` why the last attempt to have it stamped failed.
    """

    id: int
    size: int
    root: str
    note: str
    created_at: datetime
    stamp: bytes | None
    stamp_chain: str | None
    stamped_at: datetime | None
    stamp_error: str | None
