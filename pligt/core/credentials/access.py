"""The access-request workflow: request, decision, single-use release, rotation, revocation.

A crawler credential exists only as the result of an approved request, and
every step is an audit entry written in the same transaction as the change.
The password is stored as a slow hash; until its single release it also
exists sealed under a one-time pad derived from the release token, which only
the release link (or the owner's one-time display) carries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from pligt.core.catalog import Catalog
from pligt.core.credentials.passwords import hash_password
from pligt.core.credentials.passwords import new_password
from pligt.core.credentials.passwords import new_username
from pligt.core.errors import Conflict
from pligt.core.errors import Gone
from pligt.core.errors import InvalidInput
from pligt.core.errors import InvalidRequest
from pligt.core.errors import NotFound
from pligt.core.errors import TooManyRequests
from pligt.core.errors import keyed
from pligt.core.models import APPROVED
from pligt.core.models import EXPIRED
from pligt.core.models import PENDING
from pligt.core.models import RELEASED
from pligt.core.models import AccessRequest
from pligt.core.models import Credential
from pligt.core.models import Release
from pligt.core.models import to_text
from pligt.core.text import EMAIL
from pligt.core.text import hidden_characters

DEFAULT_LEGAL_BASIS = (
    "Pligtafleveringsloven (lov nr. 1439 af 22. december 2004), § 8 og § 10: "
    "materiale offentliggjort i elektroniske kommunikationsnetværk"
)
DEFAULT_VALID_DAYS = 365
RELEASE_LINK_DAYS = 7
MAX_PENDING = 50
#: Requests on one page of the console, the API and ``pligt requests`` (the newest first come).
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
FIELD_LIMITS = {"institution": 200, "contact_name": 200, "contact_email": 254, "legal_basis": 500, "message": 5000}


@dataclass(frozen=True)
class RequestPage:
    """One page of access requests, in filing order, and where the next (older) page starts."""

    requests: list[AccessRequest]
    #: Pass as ``before`` for the next page (the oldest request shown); None on the last page.
    older: int | None


@dataclass(frozen=True)
class Approval:
    """A fresh credential and its release: the password and token exist only here."""

    request: AccessRequest
    credential: Credential
    password: str
    release_token: str
    release_expires_at: datetime


def clean_request(fields: dict[str, str | None]) -> dict[str, str]:
    """Return the request's fields trimmed and checked, or raise :class:`InvalidRequest`."""
    errors: dict[str, str] = {}
    cleaned: dict[str, str] = {}
    for name, limit in FIELD_LIMITS.items():
        value = unicodedata.normalize("NFC", (fields.get(name) or "").strip())
        if name == "legal_basis" and not value:
            value = DEFAULT_LEGAL_BASIS
        if problem := _text_problem(value, limit, multiline=name == "message"):
            errors[name] = problem
        cleaned[name] = value
    for name in ("institution", "contact_name", "contact_email"):
        if not cleaned[name] and name not in errors:
            errors[name] = "required"
    if cleaned["contact_email"] and "contact_email" not in errors and not EMAIL.fullmatch(cleaned["contact_email"]):
        errors["contact_email"] = "not a valid email address"
    if errors:
        raise InvalidRequest(errors)
    return cleaned


def _text_problem(value: str, limit: int, *, multiline: bool) -> str | None:
    """Say what is wrong with one field's text, if anything: too long, or holding what a reader cannot see.

    Only the message may break lines (and hold tabs).
    """
    allowed_controls = "\n\t\r" if multiline else ""
    if len(value) > limit:
        return f"at most {limit} characters"
    if any(unicodedata.category(c) == "Cc" and c not in allowed_controls for c in value):
        return "contains control characters"
    if invisible := hidden_characters(value, allowed_controls):
        return f"contains invisible characters ({', '.join(dict.fromkeys(invisible))})"
    return None


class AccessDesk:
    """Files, decides and releases access requests; owns the crawler credentials."""

    def __init__(self, catalog: Catalog, clock: Callable[[], datetime], max_pending: int = MAX_PENDING) -> None:
        self.catalog = catalog
        self.clock = clock
        self.max_pending = max_pending
        #: Email domains of the deposit institution: its requests are taken even when the queue is full,
        #: so that a few strangers filling the queue cannot keep the institution out.
        self.institution_domains: tuple[str, ...] = ()
        #: Called after each decision, release and revocation is committed (the archive checkpoints the log).
        self.on_change: Callable[[], None] = _nothing

    # -- filing ------------------------------------------------------------------

    def file(self, fields: dict[str, str | None]) -> AccessRequest:
        """File a request from the deposit institution.

        :raises InvalidRequest: naming each bad field.
        :raises TooManyRequests: when too many requests already wait.
        """
        cleaned = clean_request(fields)
        now = self.clock()
        with self.catalog.transaction():
            if self.catalog.count_requests(PENDING) >= self.max_pending and not self._from_institution(cleaned):
                raise keyed(
                    TooManyRequests,
                    "requests.pending",
                    f"{self.max_pending} requests already wait for the owner's decision; please try again later",
                    count=self.max_pending,
                )
            request = self.catalog.add_request(cleaned, now)
            self.catalog.append_audit("request.filed", {"request": request.id}, cleaned, now)
        return request

    def _from_institution(self, cleaned: dict[str, str]) -> bool:
        domain = cleaned["contact_email"].rpartition("@")[2].lower()
        return any(domain == d or domain.endswith("." + d) for d in self.institution_domains)

    # -- reading -----------------------------------------------------------------

    def requests(self, status: str | None = None) -> list[AccessRequest]:
        """Return every request in filing order, each one's personal fields opened (see :meth:`page`)."""
        self.expire_due()
        return self.catalog.requests(status)

    def page(self, status: str | None = None, *, before: int | None = None, limit: int = PAGE_SIZE) -> RequestPage:
        """Return one page of requests: the newest ``limit`` filed before request ``before`` (None: the newest).

        What the console, the API and ``pligt requests`` show: only the requests on the page
        have their sealed fields opened, so a page costs the same with 100 requests or 10,000.

        :raises InvalidInput: for a page size outside 1 to :data:`MAX_PAGE_SIZE`.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"a page holds 1 to {MAX_PAGE_SIZE} requests")
        self.expire_due()
        found, more = self.catalog.requests_page(status, before=before, limit=limit)
        return RequestPage(found, found[0].id if more and found else None)

    def get(self, request_id: int) -> AccessRequest:
        request = self.catalog.get_request(request_id)
        if request is None:
            raise keyed(NotFound, "request.unknown", f"no access request {request_id}", request=request_id)
        return request

    def credentials(self) -> list[Credential]:
        return self.catalog.credentials()

    # -- deciding ----------------------------------------------------------------

    def approve(self, request_id: int, valid_days: int = DEFAULT_VALID_DAYS) -> Approval:
        """Approve a pending request: one new credential, bound to it, with a release link."""
        if not 1 <= valid_days <= 3660:
            raise keyed(InvalidInput, "credential.valid_days", "a credential is valid for 1 to 3660 days")
        now = self.clock()
        with self.catalog.transaction():  # decided under the write lock: one credential per approval
            self._require_pending(request_id)
            self.catalog.set_request_status(request_id, APPROVED, now, decided=True)
            self.catalog.append_audit("request.approved", {"request": request_id, "valid_days": valid_days}, None, now)
            approval = self._issue(request_id, valid_days, now)
        self.on_change()
        return approval

    def deny(self, request_id: int, reason: str) -> AccessRequest:
        reason = (reason or "").strip()
        if not reason or len(reason) > 1000:
            raise keyed(InvalidInput, "denial.reason", "a denial needs a reason of 1 to 1000 characters")
        now = self.clock()
        with self.catalog.transaction():
            self._require_pending(request_id)
            self.catalog.set_request_status(request_id, "denied", now, reason=reason, decided=True)
            self.catalog.append_audit("request.denied", {"request": request_id, "reason": reason}, None, now)
        self.on_change()
        return self.get(request_id)

    def _require_pending(self, request_id: int) -> None:
        """Refuse a decision on a request that is not pending (call inside the write transaction).

        :raises NotFound: no such request. :raises Conflict: it was decided already.
        """
        request = self.get(request_id)
        if request.status != PENDING:
            raise keyed(
                Conflict,
                "request.decided",
                f"request {request_id} is {request.status}, not pending",
                request=request_id,
            )

    def _issue(self, request_id: int, valid_days: int, now: datetime) -> Approval:
        """Create a credential and its sealed release (inside the caller's transaction)."""
        password = new_password()
        credential = self.catalog.add_credential(
            request_id, new_username("crawler"), hash_password(password), now, now + timedelta(days=valid_days)
        )
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(days=RELEASE_LINK_DAYS)
        self.catalog.add_release(request_id, credential.id, _token_hash(token), _seal(password, token), now, expires_at)
        self.catalog.append_audit(
            "credential.issued",
            {
                "request": request_id,
                "credential": credential.id,
                "username": credential.username,
                "expires_at": to_text(credential.expires_at),
                "release_expires_at": to_text(expires_at),
            },
            None,
            now,
        )
        return Approval(self.get(request_id), credential, password, token, expires_at)

    # -- releasing ---------------------------------------------------------------

    def check_release(self, token: str) -> Release:
        """Return the release behind a link if it can still be spent, without spending it.

        :raises NotFound: unknown link. :raises Gone: spent, expired or revoked.
        """
        found = self.catalog.release_by_token_hash(_token_hash(token)) if token else None
        if found is None:
            raise keyed(NotFound, "release.unknown", "this release link is not valid")
        now = self.clock()
        if found.released_at is not None:
            at = f"{found.released_at:%Y-%m-%d %H:%M} UTC"
            raise keyed(Gone, "release.spent", f"these credentials were already released on {at}", at=at)
        if now >= found.expires_at:
            at = f"{found.expires_at:%Y-%m-%d %H:%M} UTC"
            raise keyed(
                Gone, "release.expired", f"this release link expired on {at}; ask the owner for a new one", at=at
            )
        credential = self.catalog.get_credential(found.credential_id)
        if credential is None or not credential.active(now) or found.sealed_password is None:
            raise keyed(Gone, "release.revoked", "these credentials were revoked or replaced; ask the owner")
        return found

    def release(self, token: str) -> tuple[AccessRequest, Credential, str]:
        """Spend a release link: return the request, the credential and its password, once.

        :raises NotFound: unknown link. :raises Gone: spent, expired or revoked.
        """
        found = self.check_release(token)
        credential = self._credential(found.credential_id)
        now = self.clock()
        assert found.sealed_password is not None
        password = _unseal(found.sealed_password, token)
        with self.catalog.transaction():
            if not self.catalog.mark_released(found.id, now):
                raise keyed(Gone, "release.spent_now", "these credentials were already released")
            self.catalog.set_request_status(found.request_id, RELEASED, now)
            self.catalog.append_audit(
                "credential.released",
                {"request": found.request_id, "credential": credential.id, "via": "link"},
                None,
                now,
            )
        self.on_change()
        return self.get(found.request_id), credential, password

    def release_to_owner(self, approval: Approval) -> None:
        """Record that the owner took the password (``pligt approve --show``): the link is spent."""
        now = self.clock()
        release = next(
            r for r in self.catalog.releases(approval.request.id) if r.credential_id == approval.credential.id
        )
        with self.catalog.transaction():
            if not self.catalog.mark_released(release.id, now):
                raise Gone("these credentials were already released")
            self.catalog.set_request_status(approval.request.id, RELEASED, now)
            self.catalog.append_audit(
                "credential.released",
                {"request": approval.request.id, "credential": approval.credential.id, "via": "owner"},
                None,
                now,
            )
        self.on_change()

    # -- replacing and revoking --------------------------------------------------------

    def rotate(self, credential_id: int, valid_days: int = DEFAULT_VALID_DAYS) -> Approval:
        """Replace a credential (same request): the old one is revoked, a new one released."""
        if not 1 <= valid_days <= 3660:
            raise keyed(InvalidInput, "credential.valid_days", "a credential is valid for 1 to 3660 days")
        now = self.clock()
        with self.catalog.transaction():  # one replacement however many rotations run at once
            old = self._credential(credential_id)
            newer = [c for c in self.catalog.credentials(old.request_id) if c.id != old.id and c.active(now)]
            if newer:
                raise Conflict(
                    f"request {old.request_id} already has credential {newer[-1].id} in force; rotate that one instead"
                )
            self._revoke(old, now, "rotated")
            self.catalog.set_request_status(old.request_id, APPROVED, now)
            self.catalog.append_audit(
                "credential.rotated", {"request": old.request_id, "credential": old.id}, None, now
            )
            approval = self._issue(old.request_id, valid_days, now)
        self.on_change()
        return approval

    def revoke(self, credential_id: int) -> Credential:
        """Revoke a credential: refused from the very next request on."""
        with self.catalog.transaction():
            credential = self._credential(credential_id)
            if credential.revoked_at is not None:
                at = f"{credential.revoked_at:%Y-%m-%d}"
                raise keyed(
                    Conflict,
                    "credential.revoked",
                    f"credential {credential_id} was already revoked on {at}",
                    credential=credential_id,
                    at=at,
                )
            self._revoke(credential, self.clock(), "revoked")
        self.on_change()
        return self._credential(credential_id)

    def _revoke(self, credential: Credential, now: datetime, why: str) -> None:
        if credential.revoked_at is None:
            self.catalog.revoke_credential(credential.id, now)
            self.catalog.discard_unreleased(credential.id)
            self.catalog.append_audit(
                "credential.revoked",
                {"request": credential.request_id, "credential": credential.id, "why": why},
                None,
                now,
            )

    def _credential(self, credential_id: int) -> Credential:
        credential = self.catalog.get_credential(credential_id)
        if credential is None:
            raise keyed(NotFound, "credential.unknown", f"no credential {credential_id}", credential=credential_id)
        return credential

    # -- expiry ------------------------------------------------------------------

    def expire_due(self) -> None:
        """Mark requests expired whose release link or credentials ran out unused.

        The request counts as closed when that happened, not when it was noticed:
        the purge schedule runs from that moment.
        """
        now = self.clock()
        for request_id, ends in self.catalog.open_request_ends().items():
            if all(now >= end for end in ends):
                with self.catalog.transaction():
                    self.catalog.set_request_status(request_id, EXPIRED, max(ends))
                    self.catalog.append_audit("request.expired", {"request": request_id}, None, now)


def _nothing() -> None:
    pass


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _pad(token: str, length: int) -> bytes:
    pad = hmac.new(token.encode("utf-8"), b"pligt release pad", hashlib.sha512).digest()
    assert length <= len(pad)
    return pad[:length]


def _seal(password: str, token: str) -> str:
    data = password.encode("ascii")
    return bytes(a ^ b for a, b in zip(data, _pad(token, len(data)), strict=True)).hex()


def _unseal(sealed: str, token: str) -> str:
    data = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(data, _pad(token, len(data)), strict=True)).decode("ascii")
