"""Domain errors of the archive core.

Every error the core (and the service) raises for a person lives here. Each
carries the HTTP status it maps to, the CLI's exit code and, where waiting
helps, ``retry_after`` seconds, so that the web app maps every error in one
place (``pligt/web/errors.py``) and the CLI in one other
(``pligt/cli/common.py``). The core itself knows nothing of HTTP: the numbers
are a classification, not a response.

Exit codes: 1 any other error, 2 invalid input, 3 content refused or too large,
4 not found or gone, 5 conflict (retention still running), 6 storage failure,
7 configuration (or a system clock set back), 8 too many requests or locked out, 9 fixity failed,
10 audit log broken, 11 a proof (a receipt, a checkpoint, a time stamp) that does not verify.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar


class ArchiveError(Exception):
    """Base class: something the archive refuses, with a message for a person."""

    status_code = 500
    exit_code = 1
    #: Seconds a client should wait before trying again; None: retrying will not help.
    retry_after: int | None = None
    #: Which refusal this is, for a service that words it in its reader's language from the
    #: error's attributes (the facts); None: there is only ``message``, in English, as the CLI prints it.
    key: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        #: What a service words the refusal from, with :attr:`key` (see :func:`keyed`).
        self.facts: dict[str, object] = {}


E = TypeVar("E", bound=ArchiveError)


def keyed(cls: type[E], key: str, message: str, **facts: object) -> E:
    """Return the error ``cls(message)`` with a ``key`` and its ``facts``, for a page to word in its language.

    The English ``message`` stays what the CLI, the owner API and the logs say.
    """
    error = cls(message)
    error.key = key
    error.facts = facts
    return error


class InvalidInput(ArchiveError):
    """A name, a value or a request that the archive cannot accept."""

    status_code = 400
    exit_code = 2


class InvalidRequest(InvalidInput):
    """A request form with errors, by field, so that a form can show each next to its input."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class NameRefused(InvalidInput):
    """A slug, file name or title the archive cannot take.

    The facts, for a service to word in its reader's language: ``key`` (what is
    wrong, e.g. ``"filename.forbidden"``) and ``facts`` (the name, the characters,
    the limit); the English message is for the CLI, the owner API and the logs.
    """

    def __init__(self, key: str, message: str, **facts: object) -> None:
        super().__init__(message)
        self.key = key
        self.facts = facts


class ContentRefused(ArchiveError):
    """Bytes that are empty, dangerous or contradict the file's name.

    The facts, for a service to word in its reader's language: ``key`` (one of
    the constants below), ``filename``, what the bytes are (``found``, libmagic's
    description, and ``mime``), and what the name promises (``extension`` and
    the ``expected`` types).
    """

    status_code = 415
    exit_code = 3

    EMPTY = "content.empty"
    EXECUTABLE = "content.executable"
    #: The bytes are not one of the types the extension promises.
    NOT_PROMISED = "content.not_promised"
    #: A text extension (.txt, .csv, …) on bytes that are not text.
    NOT_TEXT = "content.not_text"

    def __init__(
        self,
        key: str,
        filename: str,
        *,
        found: str = "",
        mime: str = "",
        extension: str = "",
        expected: Iterable[str] = (),
    ) -> None:
        self.key = key
        self.filename = filename
        self.found = found
        self.mime = mime
        self.extension = extension
        self.expected = tuple(sorted(expected))
        what = f"{found} ({mime})"
        messages = {
            self.EMPTY: f"{filename}: the file is empty",
            self.EXECUTABLE: f"{filename}: refused, the bytes are an executable program: {what}",
            self.NOT_PROMISED: f"{filename}: refused, the bytes are {what}, "
            f"not what .{extension} promises ({', '.join(self.expected)})",
            self.NOT_TEXT: f"{filename}: refused, the bytes are {what}, not text as .{extension} promises",
        }
        super().__init__(messages[key])


class TooLarge(ArchiveError):
    """An upload larger than the configured limit: ``limit`` bytes, and its ``size`` when known beforehand."""

    status_code = 413
    exit_code = 3
    key = "upload.too_large"

    def __init__(self, limit: int, size: int | None = None) -> None:
        upload = "the upload" if size is None else f"the upload of {size:,} bytes"
        super().__init__(f"{upload} is larger than the limit of {limit:,} bytes")
        self.limit = limit
        self.size = size


class NotFound(ArchiveError):
    """No such item, version or credential."""

    status_code = 404
    exit_code = 4


class Gone(ArchiveError):
    """A version that was withdrawn after its retention ended."""

    status_code = 410
    exit_code = 4


class Conflict(ArchiveError):
    """A request that contradicts the archive's state (e.g. a duplicate slug)."""

    status_code = 409
    exit_code = 5


class RetentionActive(Conflict):
    """A removal refused because the minimum retention has not yet run out.

    The facts: the item's ``slug``, the version's ``number`` (None: the item as
    a whole) and ``retain_until``, the first moment it may go. ``message``
    replaces the English sentence where a command has more to say.
    """

    key = "retention.active"

    def __init__(
        self, slug: str, retain_until: datetime, number: int | None = None, *, message: str | None = None
    ) -> None:
        what = slug if number is None else f"{slug} version {number}"
        super().__init__(
            message or f"{what} is retained until {retain_until:%Y-%m-%d %H:%M} UTC and cannot be withdrawn before then"
        )
        self.slug = slug
        self.number = number
        self.retain_until = retain_until


class StorageError(ArchiveError):
    """The storage backend failed; the operation can be retried later."""

    status_code = 503
    exit_code = 6
    retry_after: int | None = 30


class OutOfSpace(StorageError):
    """No space left for the bytes or the catalog; nothing was stored, and waiting alone will not help.

    HTTP 507 Insufficient Storage (RFC 4918): the request was fine, the server
    cannot hold it until someone frees space.
    """

    status_code = 507
    retry_after = None


class QuotaExceeded(OutOfSpace):
    """The publisher's quota (bytes or versions, set by its host) has no room for an upload; nothing was stored."""

    def __init__(self, what: str) -> None:
        super().__init__(f"refused: {what}; nothing was stored (ask your host for a larger quota)")


class CatalogBusy(StorageError):
    """Another process held the catalog's write lock for longer than this one would wait; nothing changed."""

    retry_after = 10


class ConfigurationError(ArchiveError):
    """A setting the archive cannot run with."""

    exit_code = 7


class InvalidOption(ConfigurationError):
    """One option of a backend that it cannot run with; ``option`` names it (settings name their own)."""

    def __init__(self, option: str, problem: str, label: str | None = None) -> None:
        super().__init__(f"{label or option} {problem}")
        self.option = option
        self.problem = problem


class NotInitialised(ConfigurationError):
    """The instance folder was never set up by ``pligt init``."""

    def __init__(self, instance: object) -> None:
        super().__init__(f"{instance} is not an initialised instance: run `pligt init` first")


class TooManyRequests(ArchiveError):
    """Filing is paused: too many requests wait for a decision, or one client filed too many."""

    status_code = 429
    exit_code = 8
    retry_after = 3600

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


class LockedOut(ArchiveError):
    """Too many failed password checks from one client; it may try again after ``retry_after`` seconds."""

    status_code = 429
    exit_code = 8

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed password attempts from this client; try again in {retry_after} seconds")
        self.retry_after = retry_after


class IntegrityFailed(ArchiveError):
    """Fixity found missing, corrupt or unexpected objects."""

    exit_code = 9


class AuditBroken(ArchiveError):
    """The audit log does not verify; ``seq`` names the first bad entry."""

    status_code = 409
    exit_code = 10

    def __init__(self, seq: int | None, reason: str) -> None:
        where = f"entry {seq}: " if seq is not None else ""
        super().__init__(f"audit log broken at {where}{reason}")
        self.seq = seq


class InvalidProof(ArchiveError):
    """A Merkle proof, signed checkpoint, time stamp or receipt that does not verify."""

    status_code = 422
    exit_code = 11


class ClockBehind(ArchiveError):
    """The system clock is earlier than what the catalog recorded: a retention date made now would be short."""

    status_code = 503
    exit_code = 7
    retry_after = 300


class KeyStoreUnavailable(StorageError):
    """The key store of personal data cannot be read or written (its location is in the message).

    The archive goes on (versions, retention, credentials, proofs); personal fields are unreadable,
    and nothing that needs a new key (filing a request) can be done until it is back.
    """
