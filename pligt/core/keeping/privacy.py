"""Keeping the privacy policy's promises: retention schedules and data-subject requests.

The policy promises that inquiries (access requests) are kept 12 months and
other personal data 6 months, and that a person can have their data listed
and deleted (GDPR art. 15-17). Deposited material is another matter: it must
stay online for its minimum retention, so an erasure does not remove it
unless the owner overrides retention explicitly (and says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any

from pligt.core.catalog import Catalog
from pligt.core.credentials.access import clean_request
from pligt.core.errors import InvalidInput
from pligt.core.models import DENIED
from pligt.core.models import EXPIRED
from pligt.core.models import PENDING
from pligt.core.models import PERSONAL_FIELDS
from pligt.core.models import AccessRequest
from pligt.core.models import to_text
from pligt.core.text import EMAIL

#: Inquiries are kept 12 months after they were closed (privacy policy § 5).
REQUEST_RETENTION_DAYS = 365
#: Download records: the general rule of 6 months.
DOWNLOAD_RETENTION_DAYS = 183
#: Why an erased person's pending request no longer waits for a decision.
ERASED_REASON = "withdrawn: the requester's personal data was erased at their request (GDPR art. 17)"


@dataclass
class PurgeReport:
    """What a purge erased (or, in a dry run, would erase)."""

    dry_run: bool
    requests: list[int] = field(default_factory=list)
    download_records: int = 0
    release_links: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "requests_erased": self.requests,
            "download_records_deleted": self.download_records,
            "release_links_deleted": self.release_links,
        }


class Privacy:
    """Apply the retention schedules for personal data, and answer data subjects."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Callable[[], datetime],
        request_days: int = REQUEST_RETENTION_DAYS,
        download_days: int = DOWNLOAD_RETENTION_DAYS,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.request_days = request_days
        self.download_days = download_days

    def closed_at(self, request: AccessRequest) -> datetime | None:
        """Return when a request was closed: decided against, lapsed, or its last credential ended."""
        if request.status == DENIED:
            return request.closed_at or request.decided_at
        credentials = self.catalog.credentials(request.id)
        ends = [c.revoked_at or c.expires_at for c in credentials]
        if request.status == EXPIRED:
            # Expiry is noticed lazily (when someone lists the requests); a request
            # whose credentials ran out before then closed when they did.
            noticed = request.closed_at or request.decided_at
            return min(noticed, max(ends)) if ends and noticed else noticed
        if not credentials:
            return None
        now = self.clock()
        if any(end > now for end in ends):
            return None
        return max(ends)

    def purge(self, *, dry_run: bool = False) -> PurgeReport:
        """Erase what the schedules say must go; with ``dry_run``, only say what."""
        now = self.clock()
        report = PurgeReport(dry_run)
        with self.catalog.transaction():
            for request in self.catalog.requests(personal=False):
                closed = self.closed_at(request)
                if (
                    request.purged_at is None
                    and closed is not None
                    and now >= closed + timedelta(days=self.request_days)
                ):
                    report.requests.append(request.id)
                    if not dry_run:
                        self.catalog.erase_request_personal_data(request.id, now)
            report.download_records = self.catalog.downloads_before(
                now - timedelta(days=self.download_days), delete=not dry_run
            )
            report.release_links = self.catalog.finished_releases(now, delete=not dry_run)
            if not dry_run and (report.requests or report.download_records or report.release_links):
                self.catalog.append_audit("privacy.purged", report.to_dict(), None, now)
        if not dry_run:
            # Counts per client (HMACs of addresses, for the lock-out across app servers) lapse
            # within the hour by the wall clock; those no later check has swept away go here.
            self.catalog.forget_lapsed_counts(time.time())
            self.catalog.checkpoint()  # no copy of erased data left in the write-ahead log
        return report

    # -- data-subject requests ---------------------------------------------------

    def export(self, email: str) -> dict[str, Any]:
        """Return everything the instance holds about the person with ``email``."""
        requests = self._requests(email)
        request_ids = {r.id for r in requests}
        credentials = [c for c in self.catalog.credentials() if c.request_id in request_ids]
        credential_ids = {c.id for c in credentials}
        audit = [
            e.to_dict()
            for e in self.catalog.audit_entries()
            if e.data.get("request") in request_ids
            or e.data.get("credential") in credential_ids
            or (e.personal and str(e.personal.get("contact_email", "")).lower() == email.lower())
        ]
        return {
            "email": email,
            "exported_at": to_text(self.clock()),
            "access_requests": [r.to_dict() for r in requests],
            "credentials": [c.to_dict() for c in credentials],
            "download_records": self.catalog.downloads_of(sorted(credential_ids)),
            "audit_entries": audit,
        }

    def erase(self, email: str, revoke: Callable[[int], object]) -> dict[str, Any]:
        """Erase the person's personal data and revoke their credentials; audited without the email.

        Their pending requests are closed: nobody is left to release a credential to. Each
        request's key is destroyed, so every earlier copy of its fields (backups, dumps) is unreadable.

        :param revoke: revokes one credential (the access desk's, so it is audited).
        """
        return self._erase(self._requests(email), revoke, "privacy.erased", {})

    def carry_over(self, revoke: Callable[[int], object]) -> dict[str, Any] | None:
        """Erase here what was erased after this catalog was copied (its keys were destroyed since).

        A backup restored, or a dump loaded, from before an erasure still holds the sealed
        fields (unreadable: their keys are gone): this finishes the erasure in this catalog,
        revokes the credentials it had revoked, and records it. None when there is none.
        """
        ids = set(self.catalog.requests_erased_elsewhere())
        if not ids:
            return None
        requests = [r for r in self.catalog.requests(personal=False) if r.id in ids]
        return self._erase(requests, revoke, "privacy.erased", {"carried_over": True})

    def _erase(
        self, requests: list[AccessRequest], revoke: Callable[[int], object], action: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.clock()
        revoked = []
        ids = {r.id for r in requests}
        for credential in self.catalog.credentials():
            if credential.request_id in ids and credential.revoked_at is None:
                revoke(credential.id)
                revoked.append(credential.id)
        with self.catalog.transaction():
            closed = []
            for request in requests:
                self.catalog.erase_request_personal_data(request.id, now)
                if request.status == PENDING:
                    self.catalog.set_request_status(request.id, DENIED, now, reason=ERASED_REASON)
                    closed.append(request.id)
            summary = {
                "requests_erased": [r.id for r in requests],
                "credentials_revoked": revoked,
                "pending_requests_closed": closed,
                **extra,
            }
            self.catalog.append_audit(action, summary, None, now)
        self.catalog.checkpoint()  # no copy of erased data left in the write-ahead log
        return summary

    def rectify(self, email: str, changes: dict[str, str]) -> dict[str, Any]:
        """Change a person's fields (GDPR art. 16) in each of their requests; no old value stays readable.

        Each request is sealed anew under a new key and the old key destroyed: every copy
        of the old values made before (backups, dumps) becomes unreadable, as with an erasure.

        :raises InvalidRequest: when a new value is not acceptable (as the request form says).
        """
        requests = self._requests(email)
        if not changes:
            raise InvalidInput("say what to change: --new-email, --name or --institution")
        now = self.clock()
        with self.catalog.transaction():
            for request in requests:
                merged = clean_request({**{f: getattr(request, f) for f in PERSONAL_FIELDS}, **changes})
                new = {f: merged[f] for f in changes}
                self.catalog.rectify_request(request.id, new, now)
                self.catalog.append_audit(
                    "privacy.rectified",
                    {"request": request.id, "requests_rectified": [request.id], "fields": sorted(changes)},
                    merged,
                    now,
                )
        self.catalog.checkpoint()
        return {"requests_rectified": [r.id for r in requests], "fields": sorted(changes)}

    def _requests(self, email: str) -> list[AccessRequest]:
        email = (email or "").strip()
        if not EMAIL.fullmatch(email):
            raise InvalidInput(f"{email!r} is not an email address")
        return self.catalog.requests_by_email(email)
