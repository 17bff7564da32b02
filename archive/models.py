"""Plain records the catalog hands out; no behaviour beyond derived values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

PUBLIC = "public"
PROTECTED = "protected"
VISIBILITIES = (PUBLIC, PROTECTED)


def utcnow() -> datetime:
    """Return the current time in UTC, to the second (what HTTP dates can carry)."""
    return datetime.now(UTC).replace(microsecond=0)


def to_text(moment: datetime | None) -> str | None:
    """Format a UTC time as the catalog stores it (sortable ISO 8601)."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_text(text: str | None) -> datetime | None:
    """Parse a time stored by :func:`to_text`."""
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


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
            "content_type": self.content_type,
            "published_at": to_text(self.published_at),
            "retain_until": to_text(self.retain_until),
            "withdrawn_at": to_text(self.withdrawn_at),
        }


@dataclass(frozen=True)
class Credential:
    """A crawler account; the password exists only as a slow hash."""

    id: int
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
