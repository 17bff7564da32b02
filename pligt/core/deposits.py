"""The archive: publishing, retaining, withdrawing and finding deposited files.

This is the API the service and the CLI share; every rule that protects the
deposit (retention, content checks, atomic publication) is enforced here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import IO
from typing import BinaryIO

from pligt.core.catalog import Catalog
from pligt.core.content import SNIFF_BYTES
from pligt.core.content import check_content
from pligt.core.crawl_budget import FILE_BUDGET_BYTES
from pligt.core.crawl_budget import SITE_BUDGET_BYTES
from pligt.core.crawl_budget import BudgetWarning
from pligt.core.crawl_budget import CrawlBudget
from pligt.core.crawl_budget import budget_warnings
from pligt.core.credentials.access import AccessDesk
from pligt.core.credentials.passwords import check_chosen_password
from pligt.core.credentials.passwords import hash_password
from pligt.core.credentials.passwords import new_password
from pligt.core.downloads.lookups import DownloadLookups
from pligt.core.downloads.recorder import DownloadRecorder
from pligt.core.downloads.small_files import SmallFiles
from pligt.core.errors import ConfigurationError
from pligt.core.errors import Conflict
from pligt.core.errors import Gone
from pligt.core.errors import InvalidInput
from pligt.core.errors import NotFound
from pligt.core.errors import QuotaExceeded
from pligt.core.errors import StorageError
from pligt.core.errors import TooLarge
from pligt.core.errors import keyed
from pligt.core.models import BY_CONNECTION
from pligt.core.models import BY_CREDENTIAL
from pligt.core.models import BY_USER_AGENT
from pligt.core.models import PROTECTED
from pligt.core.models import VISIBILITIES
from pligt.core.models import Clock
from pligt.core.models import Download
from pligt.core.models import HarvestRow
from pligt.core.models import Version
from pligt.core.models import to_text
from pligt.core.models import utcnow
from pligt.core.names import check_filename
from pligt.core.names import check_slug
from pligt.core.names import check_title
from pligt.core.names import slugify
from pligt.core.proof.audit import GENESIS
from pligt.core.proof.audit import verify_chain
from pligt.core.proof.audit import verify_erasures
from pligt.core.proof.audit import verify_seals
from pligt.core.proof.checkpoints import RENAMED
from pligt.core.proof.checkpoints import Checkpoints
from pligt.core.proof.checkpoints import rename_refusal
from pligt.core.proof.logged import HARVEST_ACTION
from pligt.core.proof.logged import with_logged_downloads
from pligt.core.proof.notes import Signer
from pligt.core.retention import MINIMUM_RETENTION_DAYS
from pligt.core.retention import check_retention_days
from pligt.core.retention import checked_now
from pligt.core.retention import ensure_withdrawable
from pligt.core.retention import retain_until
from pligt.core.storage import Storage
from pligt.core.storage.base import CHUNK_SIZE
from pligt.core.storage.base import Sha1Tap

GiB = 1024**3
OWNER_USERNAME = "owner"
#: What the Royal Danish Library's crawler names itself in its User-Agent
#: ("Mozilla/5.0 (compatible; heritrix/3.4.0 +https://www.kb.dk/netarkivindsamling/)";
#: earlier harvests pointed to netarkivet.dk). Not "heritrix": every Heritrix user sends that.
DEFAULT_CRAWLER_USER_AGENTS = ("kb.dk/netarkivindsamling", "netarkivet.dk")


@dataclass(frozen=True)
class Publication:
    """A version just published, with anything the publisher should know."""

    version: Version
    warnings: list[str] = field(default_factory=list)
    #: The bytes were those of ``version``, the item's newest version: nothing was published.
    unchanged: bool = False


class _SameBytes(Exception):  # not an error: a signal from inside the stream, never seen outside
    """The upload ended with the very bytes of the item's newest version (raised inside the stream)."""


@dataclass(frozen=True)
class AuditReport:
    """What ``pligt audit verify`` found: the chain's length and head, and what the checkpoints showed."""

    entries: int
    head: str
    checkpoints: str


class Archive:
    """Deposited files: a catalog of versions plus the storage holding their bytes."""

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        *,
        retention_days: int = MINIMUM_RETENTION_DAYS,
        max_upload_bytes: int = 2 * GiB,
        fetch_budget_bytes: int = FILE_BUDGET_BYTES,
        site_budget_bytes: int = SITE_BUDGET_BYTES,
        crawler_user_agents: Iterable[str] = DEFAULT_CRAWLER_USER_AGENTS,
        clock: Clock = utcnow,
        quota_bytes: int = 0,
        quota_versions: int = 0,
    ) -> None:
        self.catalog = catalog
        #: The most bytes (and versions) not withdrawn this archive may hold; 0: no limit (a host sets them).
        self.quota_bytes = quota_bytes
        self.quota_versions = quota_versions
        self.storage = storage
        self.retention_days = check_retention_days(retention_days)
        self.max_upload_bytes = max_upload_bytes
        #: What a default harvest fetches per file and per site (see :mod:`pligt.core.crawl_budget`).
        self.crawl_budget = CrawlBudget(fetch_budget_bytes, site_budget_bytes)
        #: Substrings (matched without regard to case) of the User-Agent of crawlers whose
        #: anonymous downloads count as the deposit crawler's; see :meth:`record_download`.
        self.crawler_user_agents = tuple(p.strip() for p in crawler_user_agents if p.strip())
        self._crawler_patterns = tuple((p.lower(), p) for p in self.crawler_user_agents)
        self.clock = clock
        self.access = AccessDesk(catalog, clock)
        #: Signed checkpoints of the audit log; without a key (set by the instance) none are made.
        self.checkpoints = Checkpoints(catalog, clock)
        self.access.on_change = self.changed
        self.recorder = DownloadRecorder(catalog)
        self.small_files = SmallFiles(storage)
        self.lookups = DownloadLookups(catalog, clock, on_change=self.small_files.clear)

    def now(self) -> datetime:
        """Return the time to judge retention by: the clock, never well before what the catalog recorded.

        :raises ClockBehind: when the system clock was set back (see :func:`pligt.core.retention.checked_now`).
        """
        return checked_now(self.clock().replace(microsecond=0), self.catalog.newest_moment())

    # -- publishing --------------------------------------------------------------

    def publish(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        slug: str | None = None,
        title: str | None = None,
        visibility: str | None = None,
    ) -> Publication:
        """Store a new version from a stream of bytes and list it in the catalog.

        The bytes are checked (not empty, type matching the name, no
        executables) before anything is stored. If anything fails, nothing
        remains: no object in storage, no row in the catalog.

        Bytes identical to the item's newest retained version publish nothing
        (a second upload by mistake would otherwise be a version kept for six
        months): the result names that version, with ``unchanged`` set. The
        comparison is made as the last chunk passes, before the storage
        completes the object, so nothing is stored either.

        :param visibility: ``public`` or ``protected``; ``None`` keeps an
            existing item's and makes a new item protected.
        :raises InvalidInput, ContentRefused, TooLarge, Conflict, StorageError:
        """
        filename = check_filename(filename)
        title = check_title(title) if title is not None else None
        slug = check_slug(slug) if slug else slugify(title or PurePosixPath(filename).stem)
        if visibility is not None and visibility not in VISIBILITIES:
            raise InvalidInput(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
        existing = self.catalog.get_item(slug)
        newest = self._newest_retained(slug) if existing is not None else None
        if existing is not None:
            if visibility is not None and visibility != existing.visibility:
                raise keyed(
                    Conflict,
                    "item.visibility",
                    f"item {slug!r} is {existing.visibility}; a new version cannot make it {visibility}",
                    slug=slug,
                    visibility=existing.visibility,
                )
            visibility = existing.visibility
            title = title or existing.title
        visibility = visibility or PROTECTED
        title = title or check_title(PurePosixPath(filename).stem)

        stream = _limited(iter(chunks), self.max_upload_bytes)
        room = self._quota_room(0)
        if room is not None and room < self.max_upload_bytes:
            stream = _within_quota(stream, room, self.quota_bytes)
        head = _take(stream, SNIFF_BYTES)
        detected = check_content(filename, head)
        key = f"{slug}/{secrets.token_hex(12)}"
        # The dates first: a storage that enforces retention itself (S3 Object
        # Lock) stores the object with the very retain-until the catalog gets.
        # The catalog keeps whole seconds, so the storage gets the same.
        # A clock set back is refused (or, a little behind, moved up) before any byte is stored,
        # and no version is retained for less than one published before it.
        now = self.now()
        until = max(retain_until(now, self.retention_days), self.catalog.latest_retention() or now)
        # The SHA-1 (the deposit institution's digest) of the very chunks the backend hashes and stores.
        sha1 = Sha1Tap()
        try:
            stored = self.storage.save(key, sha1.tap(_unless_same(_prepend(head, stream), newest)), retain_until=until)
        except _SameBytes:
            assert newest is not None
            return Publication(newest, unchanged=True)
        try:
            if sha1.size != stored.size:
                raise StorageError(f"the storage stored {stored.size:,} bytes of {sha1.size:,} for {filename}")
            with self.catalog.transaction():
                # Under the write lock `pligt fixity --repair` removes orphans under: an object
                # it took for one (stored, never listed) is not listed now without its bytes.
                if not self.storage.exists(key):
                    raise StorageError(f"the bytes of {filename} went from the storage before they were listed")
                self._quota_room(stored.size)  # again, under the lock: uploads side by side share one quota
                version = self.catalog.add_version(
                    slug=slug,
                    title=title,
                    visibility=visibility,
                    filename=filename,
                    size=stored.size,
                    sha256=stored.sha256,
                    sha1=sha1.digest(),
                    content_type=detected.content_type,
                    storage_key=key,
                    published_at=now,
                    retain_until=until,
                )
                self.catalog.append_audit("version.published", version_facts(version), None, now)
        except BaseException:
            # Object Lock may refuse to remove the object it has just locked; the
            # original error is what the caller must see (the object, never listed
            # in the catalog, goes when its lock ends).
            with contextlib.suppress(StorageError):
                self.storage.delete(key)
            raise
        self.changed()
        warnings = budget_warnings([(filename, version.size)], self.site_bytes(), self.crawl_budget)
        return Publication(version, [w.text() for w in warnings])

    def _newest_retained(self, slug: str) -> Version | None:
        """Return the item's newest version that is not withdrawn (what its latest URL serves), if any."""
        return next((v for v in reversed(self.catalog.item_versions(slug)) if not v.withdrawn), None)

    def _quota_room(self, adding: int) -> int | None:
        """Return the bytes the quota leaves after ``adding`` more (None: no byte quota).

        :raises QuotaExceeded: if one more version, or ``adding`` bytes, would not fit.
        """
        if self.quota_versions and self.catalog.count_versions() >= self.quota_versions:
            raise QuotaExceeded(f"the quota of {self.quota_versions:,} versions is used")
        if not self.quota_bytes:
            return None
        room = self.quota_bytes - self.catalog.stored_bytes() - adding
        if room < 0 or (adding == 0 and room == 0):
            raise QuotaExceeded(f"the quota of {self.quota_bytes:,} bytes has no room for this upload")
        return room

    # -- reading -----------------------------------------------------------------

    def versions(
        self,
        *,
        visibility: str | None = None,
        include_withdrawn: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Version]:
        """Return versions by slug and number (a page of them with ``limit``); withdrawn ones only when asked."""
        return self.catalog.versions(
            visibility=visibility, include_withdrawn=include_withdrawn, limit=limit, offset=offset
        )

    def item_versions(self, slug: str) -> list[Version]:
        """Return every version of an item, withdrawn ones included.

        :raises NotFound: if there is no such item.
        """
        versions = self.catalog.item_versions(check_slug(slug))
        if not versions:
            raise NotFound(f"no item {slug!r}")
        return versions

    def find_download(self, slug: str, number: int | None = None, credential_id: int | None = None) -> Download:
        """Find a retained version for download (``number=None``: the latest).

        :raises NotFound: no such item or version.
        :raises Gone: the version was withdrawn after its retention ended.
        """
        version, credential_active = self.lookups.find(slug, number, credential_id)
        if version is None:
            if number is None:
                raise keyed(NotFound, "item.unknown", f"no item {slug!r}", slug=slug)
            raise keyed(NotFound, "version.unknown", f"no version {number} of {slug!r}", slug=slug, number=number)
        return _retained(Download(version, credential_active))

    def open(self, version: Version) -> BinaryIO:
        """Open a version's bytes for streaming.

        :raises StorageError: if the bytes are missing or unreadable.
        """
        try:
            return self.storage.open(version.storage_key)
        except FileNotFoundError as e:
            raise StorageError(f"the bytes of {version.slug} version {version.number} are missing") from e

    def credential_active(self, credential_id: int) -> bool:
        """Tell whether a crawler credential is still valid now (revocation and expiry count at once)."""
        return self.lookups.credential_active(credential_id)

    def read_small(self, version: Version) -> bytes | None:
        """Return a small version's bytes (kept in memory, checked once), or None for a larger one.

        :raises StorageError: if the bytes are missing, unreadable or damaged.
        """
        if not self.small_files.fits(version):
            return None
        try:
            return self.small_files.read(version)
        except FileNotFoundError as e:
            raise StorageError(f"the bytes of {version.slug} version {version.number} are missing") from e

    # -- withdrawing -------------------------------------------------------------

    def withdraw(
        self, slug: str, number: int | None = None, *, override_reason: str | None = None, mistake: bool = False
    ) -> list[Version]:
        """Withdraw one version, or every retained version of an item, once retention has ended.

        Nothing is withdrawn if any of the versions is still retained, unless
        ``override_reason`` is given (a data subject's erasure, a court order):
        the override is audited with its reason, and storage-side retention is
        asked to step aside, which S3 in COMPLIANCE mode refuses. A version
        withdrawn earlier whose bytes are still stored (the storage refused
        then) is deleted again.

        With ``mistake``, one version (``number`` is needed) published by
        mistake is taken back within :data:`~pligt.core.retention.MISTAKE_WINDOW`
        of its publication, while the deposit institution has not fetched it
        (:func:`~pligt.core.retention.retractable`); that is audited as
        ``version.retracted``.

        :raises NotFound: no such item or version.
        :raises RetentionActive: retention has not ended; the message names the date.
        :raises StorageError: the storage refused to delete; the catalog says what stays.
        """
        if mistake and (number is None or override_reason is not None):
            raise InvalidInput("a mistake is taken back one version at a time, without an override")
        versions, leftovers = self._to_withdraw(slug, number)
        now = self.now()
        reason, mistakes = self._early_withdrawal(versions, now, override_reason, mistake=mistake)
        for version in leftovers:
            self.storage.delete(version.storage_key, bypass_retention=reason is not None)
        for version in versions:
            self._withdraw_one(version, now, reason, mistake=version.id in mistakes)
        return [replace(v, withdrawn_at=now) for v in versions] + leftovers

    def _to_withdraw(self, slug: str, number: int | None) -> tuple[list[Version], list[Version]]:
        """Return the versions still listed, and those withdrawn earlier whose bytes the storage kept.

        :raises NotFound: no such item or version.
        :raises Gone: the one version asked for was withdrawn, bytes and all.
        """
        versions = [v for v in self.item_versions(slug) if number is None or v.number == number]
        if not versions:
            raise keyed(NotFound, "version.unknown", f"no version {number} of {slug!r}", slug=slug, number=number)
        leftovers = [v for v in versions if v.withdrawn and self.storage.exists(v.storage_key)]
        if number is not None and versions[0].withdrawn and not leftovers:
            raise keyed(
                Gone,
                "version.already_withdrawn",
                f"{slug} version {number} was already withdrawn",
                slug=slug,
                number=number,
            )
        return [v for v in versions if not v.withdrawn], leftovers

    def _early_withdrawal(
        self, versions: list[Version], now: datetime, override_reason: str | None, *, mistake: bool
    ) -> tuple[str | None, set[int]]:
        """Return the override's reason, and the versions taken back as mistakes; refuse any that may not go yet.

        :raises InvalidInput: an override with a blank reason.
        :raises RetentionActive: a version is still retained, without an override, and is no mistake
            that may still be taken back.
        """
        if override_reason is not None:
            reason = override_reason.strip()
            if not reason:
                raise InvalidInput("overriding retention needs a reason")
            return reason, set()
        if mistake:
            self.recorder.flush()  # this process's latest downloads count too
        mistakes: set[int] = set()
        for version in versions:
            harvested = mistake and not version.withdrawable(now) and self.catalog.harvested(version.id)
            if ensure_withdrawable(version, now, mistake=mistake, harvested=harvested):
                mistakes.add(version.id)
        return None, mistakes

    def _withdraw_one(self, version: Version, now: datetime, override_reason: str | None, *, mistake: bool) -> None:
        """Withdraw one version that may go: after retention, as a mistake, or by an override with its reason."""
        overriding = override_reason is not None and not version.withdrawable(now)
        early = overriding or mistake
        facts = version_facts(version)
        if overriding:
            facts["reason"] = override_reason
        if early:
            # Storage first: when it refuses (S3 COMPLIANCE), the version stays listed
            # with its bytes, and the refused attempt is on the record too.
            try:
                self.storage.delete(version.storage_key, bypass_retention=True)
            except StorageError as e:
                with self.catalog.transaction():
                    refused = "retention.override_refused" if overriding else "version.retract_refused"
                    self.catalog.append_audit(refused, {**facts, "error": e.message}, None, now)
                raise StorageError(
                    f"{version.slug} version {version.number} was not withdrawn: the storage refuses to delete "
                    f"it before {version.retain_until:%Y-%m-%d} ({e.message})"
                ) from e
        with self.catalog.transaction():
            if overriding:
                self.catalog.append_audit("retention.override", facts, None, now)
            self.catalog.mark_withdrawn(version.id, now)
            if mistake and not overriding:
                facts = {**facts, "published_at": to_text(version.published_at), "not_harvested": True}
                self.catalog.append_audit("version.retracted", facts, None, now)
            else:
                self.catalog.append_audit("version.withdrawn", version_facts(version), None, now)
        self.changed()
        if not early:
            # After the catalog: a version must never be listed without its bytes.
            self.storage.delete(version.storage_key)

    # -- proof of deposit and the audit log ------------------------------------------

    def record_download(
        self,
        credential_id: int | None,
        version: Version,
        status: int,
        bytes_sent: int,
        *,
        via: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Record what was fetched and how it is tied to the deposit crawler (never who or from where).

        Queued and written in batches (see :mod:`pligt.core.downloads.recorder`).

        :param credential_id: the crawler credential the request carried (or, with
            ``via="connection"``, the one its connection carried); None for anonymous.
        :param status: 200 or 206; or 304 (with 0 bytes) to a request that presented this
            version's ETag or a date at or after its Last-Modified: the client named the
            version, which does not show that it holds the bytes (see :data:`NAMED`).
        :param via: ``"connection"`` for an anonymous request on a connection that had
            carried ``credential_id``; else ``"credential"`` whenever a credential is given.
        :param user_agent: the client's User-Agent. Only the listed pattern it matches
            (:attr:`crawler_user_agents`) is kept, never the header: an anonymous
            download by such a client is attributed to the deposit crawler, weakly.
        :raises ValueError: for an unknown ``via``, or one without a credential.
        """
        if via is None:
            via = BY_CREDENTIAL if credential_id is not None else None
        elif via not in (BY_CREDENTIAL, BY_CONNECTION) or credential_id is None:
            raise ValueError(f"via={via!r} needs a credential and is 'credential' or 'connection'")
        crawler = self.crawler_named_by(user_agent) if user_agent else None
        if via is None and crawler is not None:
            via = BY_USER_AGENT
        # A whole download: every byte of the version in one answer. A 206 can only have sent
        # ``size`` bytes if its range was the whole file; several ranges that together cover it
        # do not count, as the records keep how many bytes were sent, not which.
        complete = status in (200, 206) and bytes_sent == version.size
        self.recorder.record((credential_id, version.id, status, bytes_sent, complete, self.clock(), via, crawler))

    def crawler_named_by(self, user_agent: str) -> str | None:
        """Return the first listed crawler pattern that ``user_agent`` contains (any case), or None."""
        lowered = user_agent.lower()
        return next((pattern for folded, pattern in self._crawler_patterns if folded in lowered), None)

    def site_bytes(self) -> int:
        """The bytes of every retained version: what a harvest of the whole site fetches (pages aside)."""
        return sum(size for *_, size in self.catalog.version_sizes())

    def crawl_budget_warnings(self) -> list[BudgetWarning]:
        """Warn of every retained version a default harvest cannot fetch whole, and of a site it cannot finish.

        Withdrawn versions are not served, so they do not count.
        """
        sizes = self.catalog.version_sizes()
        files = [(f"{slug} v{number} ({filename})", size) for slug, number, filename, size in sizes]
        return budget_warnings(files, sum(size for *_, size in sizes), self.crawl_budget)

    def harvest(self, *, personal: bool = True) -> list[HarvestRow]:
        """Return, per access request (across its credentials) and retained version, what its crawler did.

        Fetched whole (held; and revisited, if a 304 came after), fetched in part, named
        only (conditional requests answered 304, no whole download), or not fetched; each
        with how the record is attributed. A whole download whose records were purged
        counts as long as the audit log recorded it (:mod:`pligt.core.proof.logged`).
        ``personal=False``: without the institution (None), for a caller that does not show it.
        """
        self.recorder.flush()
        return with_logged_downloads(
            self.catalog.harvest(personal=personal), self.catalog.audit_entries_of(HARVEST_ACTION)
        )

    def audit_head(self) -> tuple[int, str]:
        """Return the audit log's last sequence number and hash (GENESIS when empty)."""
        last = next(self.catalog.audit_entries(newest_first=True, limit=1), None)
        return (last.seq, last.hash) if last else (0, GENESIS)

    def verify_audit(self, head: str | None = None) -> tuple[int, str]:
        """Verify the whole audit log (and that it still holds ``head``); return its last number and hash.

        :raises AuditBroken: naming the first bad entry or checkpoint.
        """
        report = self.audit_report(head)
        return report.entries, report.head

    def audit_report(self, head: str | None = None) -> AuditReport:
        """Verify the audit chain, its erasures and its signed checkpoints; say what holds.

        :raises AuditBroken: naming the first bad entry, or the checkpoint the log no longer matches.
        """
        entries = list(self.catalog.audit_entries())  # read once for every check
        seq, digest = verify_chain(entries, head)
        verify_erasures(entries, self.catalog.requests())
        checkpoints = self.checkpoints.verify(entries)
        verify_seals(entries)
        return AuditReport(seq, digest, checkpoints)

    def rename_log(self, signer: Signer) -> None:
        """Give the audit log a new name and key (``signer``): audited, naming the key it retires.

        Only while no credential was ever issued (see :func:`~pligt.core.proof.checkpoints.rename_refusal`);
        checkpoints signed before stay as they are and verify under the retired key.
        The caller writes the new key where the instance keeps it, then a checkpoint.

        :raises ConfigurationError: without a checkpoint key.
        :raises Conflict: saying why the name must stay.
        """
        old = self.checkpoints.signer
        if old is None:
            raise ConfigurationError("this instance has no checkpoint key to rename")
        now = self.now()
        with self.catalog.transaction():
            refusal = rename_refusal(old.name, signer.name, len(self.catalog.credentials()))
            if refusal is not None:
                raise Conflict(refusal)
            facts = {"from": old.name, "to": signer.name, "retired_key": old.verifier_key, "key": signer.verifier_key}
            self.catalog.append_audit(RENAMED, facts, None, now)
        self.checkpoints.signer = signer

    def changed(self) -> None:
        """Checkpoint the audit log after a change that matters (its transaction committed)."""
        self.checkpoints.after_change()

    def set_owner_password(self) -> tuple[str, str]:
        """Create (or reset) the owner account; return its username and new password."""
        password = new_password()
        self.catalog.set_owner(OWNER_USERNAME, hash_password(password), self.clock())
        return OWNER_USERNAME, password

    def change_owner_password(self, password: str | None = None) -> str:
        """Give the owner a new password (``None``: make one); end every console session; audit it.

        The API's and console's checks take the new password at once, in every
        process: both look for the stored hash, and a session names the hash it
        began under. The audit entry says that it happened, never the password.

        :param password: one the owner chose (see :func:`check_chosen_password`).
        :return: the new password, to be shown once.
        :raises NotFound: before ``pligt init`` made the owner.
        :raises InvalidInput: a chosen password that is too short.
        """
        if not self.has_owner():
            raise NotFound("there is no owner account yet: run `pligt init`")
        chosen = password is not None
        password = check_chosen_password(password) if password is not None else new_password()
        hashed = hash_password(password)  # slow: outside the write lock
        now = self.now()
        with self.catalog.transaction():
            self.catalog.set_owner(OWNER_USERNAME, hashed, now)
            self.catalog.end_console_sessions()  # a copied cookie is over too
            self.catalog.append_audit("owner.password_changed", {"chosen": chosen}, None, now)
        self.changed()
        return password

    def has_owner(self) -> bool:
        return self.catalog.owner() is not None

    def check(self) -> None:
        """Raise :class:`StorageError` unless the catalog and the storage work."""
        self.catalog.ping()
        self.storage.check()


def version_facts(version: Version) -> dict[str, object]:
    return {
        "slug": version.slug,
        "version": version.number,
        "filename": version.filename,
        "sha256": version.sha256,
        "sha1": version.sha1,
        "size": version.size,
        "visibility": version.visibility,
        "retain_until": to_text(version.retain_until),
    }


def _limited(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise TooLarge(limit)
        yield chunk


def _unless_same(chunks: Iterator[bytes], newest: Version | None) -> Iterator[bytes]:
    """Pass ``chunks`` on; raise :class:`_SameBytes` at their end if they are ``newest``'s bytes.

    Raised before the stream ends, the storage treats it as a failed upload and keeps nothing.
    """
    if newest is None:
        yield from chunks
        return
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if size == newest.size and hmac.compare_digest(digest.hexdigest(), newest.sha256):
        raise _SameBytes


def _within_quota(chunks: Iterator[bytes], room: int, quota: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > room:
            raise QuotaExceeded(f"the quota of {quota:,} bytes has no room for this upload")
        yield chunk


def _take(chunks: Iterator[bytes], size: int) -> bytes:
    """Read at least ``size`` bytes (or all there is) from ``chunks``."""
    parts: list[bytes] = []
    taken = 0
    while taken < size:
        chunk = next(chunks, None)
        if chunk is None:
            break
        parts.append(chunk)
        taken += len(chunk)
    return b"".join(parts)


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def read_chunks(stream: IO[bytes], chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield a binary stream's content in chunks."""
    return iter(lambda: stream.read(chunk_size), b"")


def _retained(found: Download) -> Download:
    """``found``, unless its version was withdrawn.

    :raises Gone: the version was withdrawn: after its retention ended, or before (a mistake
        taken back, an erasure), which its message does not claim otherwise.
    """
    version = found.version
    if version.withdrawn_at is not None:
        facts = {"slug": version.slug, "number": version.number, "date": f"{version.withdrawn_at:%Y-%m-%d}"}
        message = f"{version.slug} version {version.number} was withdrawn on {facts['date']}"
        if version.withdrawn_at >= version.retain_until:
            raise keyed(Gone, "version.gone_after_retention", f"{message}, after its retention ended", **facts)
        raise keyed(Gone, "version.gone", message, **facts)
    return found
