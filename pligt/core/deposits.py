"""The archive: publishing, retaining, withdrawing and finding deposited files.

This is the API the service and the CLI share; every rule that protects the
deposit (retention, content checks, atomic publication) is enforced here.
"""

from __future__ import annotations

import contextlib
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
from pligt.core.credentials.access import AccessDesk
from pligt.core.credentials.passwords import hash_password
from pligt.core.credentials.passwords import new_password
from pligt.core.downloads.lookups import DownloadLookups
from pligt.core.downloads.recorder import DownloadRecorder
from pligt.core.downloads.small_files import SmallFiles
from pligt.core.errors import Conflict
from pligt.core.errors import Gone
from pligt.core.errors import InvalidInput
from pligt.core.errors import NotFound
from pligt.core.errors import QuotaExceeded
from pligt.core.errors import StorageError
from pligt.core.errors import TooLarge
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
from pligt.core.proof.checkpoints import Checkpoints
from pligt.core.retention import MINIMUM_RETENTION_DAYS
from pligt.core.retention import check_retention_days
from pligt.core.retention import checked_now
from pligt.core.retention import ensure_withdrawable
from pligt.core.retention import retain_until
from pligt.core.storage import Storage
from pligt.core.storage.base import CHUNK_SIZE
from pligt.core.storage.base import Sha1Tap

GiB = 1024**3
#: Netarkivet's crawl settings allow ~500 KB/s for at most 1200 s per fetch.
DEFAULT_FETCH_BUDGET = 500_000_000
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
        fetch_budget_bytes: int = DEFAULT_FETCH_BUDGET,
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
        self.fetch_budget_bytes = fetch_budget_bytes
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
        if existing is not None:
            if visibility is not None and visibility != existing.visibility:
                raise Conflict(f"item {slug!r} is {existing.visibility}; a new version cannot make it {visibility}")
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
        stored = self.storage.save(key, sha1.tap(_prepend(head, stream)), retain_until=until)
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
        warnings = []
        if version.size > self.fetch_budget_bytes:
            warnings.append(
                f"{filename} is {version.size / 1e6:,.0f} MB: larger than the deposit crawler's "
                f"per-file budget of {self.fetch_budget_bytes / 1e6:,.0f} MB (about 500 KB/s for at most "
                "1200 s), so the crawler may not be able to fetch it whole; consider splitting it"
            )
        return Publication(version, warnings)

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
            what = f"version {number} of {slug!r}" if number is not None else f"item {slug!r}"
            raise NotFound(f"no {what}")
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

    def withdraw(self, slug: str, number: int | None = None, *, override_reason: str | None = None) -> list[Version]:
        """Withdraw one version, or every retained version of an item, once retention has ended.

        Nothing is withdrawn if any of the versions is still retained, unless
        ``override_reason`` is given (a data subject's erasure, a court order):
        the override is audited with its reason, and storage-side retention is
        asked to step aside, which S3 in COMPLIANCE mode refuses. A version
        withdrawn earlier whose bytes are still stored (the storage refused
        then) is deleted again.

        :raises NotFound: no such item or version.
        :raises RetentionActive: retention has not ended; the message names the date.
        :raises StorageError: the storage refused to delete; the catalog says what stays.
        """
        versions = [v for v in self.item_versions(slug) if number is None or v.number == number]
        if not versions:
            raise NotFound(f"no version {number} of {slug!r}")
        leftovers = [v for v in versions if v.withdrawn and self.storage.exists(v.storage_key)]
        if number is not None and versions[0].withdrawn and not leftovers:
            raise Gone(f"{slug} version {number} was already withdrawn")
        versions = [v for v in versions if not v.withdrawn]
        now = self.now()
        if override_reason is not None:
            override_reason = override_reason.strip()
            if not override_reason:
                raise InvalidInput("overriding retention needs a reason")
        else:
            for version in versions:
                ensure_withdrawable(version, now)
        for version in leftovers:
            self.storage.delete(version.storage_key, bypass_retention=override_reason is not None)
        for version in versions:
            overriding = override_reason is not None and not version.withdrawable(now)
            if overriding:
                # Storage first: when it refuses (COMPLIANCE), the version stays listed
                # with its bytes, and the refused attempt is on the record too.
                facts = {**version_facts(version), "reason": override_reason}
                try:
                    self.storage.delete(version.storage_key, bypass_retention=True)
                except StorageError as e:
                    with self.catalog.transaction():
                        self.catalog.append_audit(
                            "retention.override_refused", {**facts, "error": e.message}, None, now
                        )
                    raise StorageError(
                        f"{version.slug} version {version.number} was not withdrawn: the storage refuses to delete "
                        f"it before {version.retain_until:%Y-%m-%d} ({e.message})"
                    ) from e
            with self.catalog.transaction():
                if overriding:
                    self.catalog.append_audit("retention.override", facts, None, now)
                self.catalog.mark_withdrawn(version.id, now)
                self.catalog.append_audit("version.withdrawn", version_facts(version), None, now)
            self.changed()
            if not overriding:
                # After the catalog: a version must never be listed without its bytes.
                self.storage.delete(version.storage_key)
        return [replace(v, withdrawn_at=now) for v in versions] + leftovers

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
        :param status: 200 or 206; or 304 (with 0 bytes) for a revisit that presented
            this version's ETag or a date at or after its Last-Modified: it holds the bytes.
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
        complete = status == 200 and bytes_sent == version.size
        self.recorder.record((credential_id, version.id, status, bytes_sent, complete, self.clock(), via, crawler))

    def crawler_named_by(self, user_agent: str) -> str | None:
        """Return the first listed crawler pattern that ``user_agent`` contains (any case), or None."""
        lowered = user_agent.lower()
        return next((pattern for folded, pattern in self._crawler_patterns if folded in lowered), None)

    def harvest(self) -> list[HarvestRow]:
        """Return, per access request (across its credentials) and retained version, what its crawler did.

        Fetched whole (when, by which credential), held (a revisit answered 304),
        fetched in part, or not fetched; each with how the record is attributed.
        """
        self.recorder.flush()
        return self.catalog.harvest()

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
        return AuditReport(seq, digest, self.checkpoints.verify(entries))

    def changed(self) -> None:
        """Checkpoint the audit log after a change that matters (its transaction committed)."""
        self.checkpoints.after_change()

    def set_owner_password(self) -> tuple[str, str]:
        """Create (or reset) the owner account; return its username and new password."""
        password = new_password()
        self.catalog.set_owner(OWNER_USERNAME, hash_password(password), self.clock())
        return OWNER_USERNAME, password

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

    :raises Gone: the version was withdrawn after its retention ended.
    """
    version = found.version
    if version.withdrawn:
        raise Gone(
            f"{version.slug} version {version.number} was withdrawn on "
            f"{version.withdrawn_at:%Y-%m-%d}, after its retention ended"
        )
    return found
