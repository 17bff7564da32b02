"""Domain errors of the archive core.

Every error the core (and the service) raises for a person lives here. Each
carries the HTTP status it maps to, the CLI's exit code and, where waiting
helps, ``retry_after`` seconds, so that the web app maps every error in one
place (``deposit/web/errors.py``) and the CLI in one other
(``deposit/cli/common.py``). The core itself knows nothing of HTTP: the numbers
are a classification, not a response.

Exit codes: 1 any other error, 2 invalid input, 3 content refused or too large,
4 not found or gone, 5 conflict (retention still running), 6 storage failure,
7 configuration (or a system clock set back), 8 too many requests or locked out, 9 fixity failed,
10 audit log broken.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class: something the archive refuses, with a message for a person."""

    status_code = 500
    exit_code = 1
    #: Seconds a client should wait before trying again; None: retrying will not help.
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ArchiveError):
    """A name, a value or a request that the archive cannot accept."""

    status_code = 400
    exit_code = 2


class InvalidRequest(InvalidInput):
    """A request form with errors, by field, so that a form can show each next to its input."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class ContentRefused(ArchiveError):
    """Bytes that are empty, dangerous or contradict the file's name."""

    status_code = 415
    exit_code = 3


class TooLarge(ArchiveError):
    """An upload larger than the configured limit."""

    status_code = 413
    exit_code = 3


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
    """A removal refused because the minimum retention has not yet run out."""


class StorageError(ArchiveError):
    """The storage backend failed; the operation can be retried later."""

    status_code = 503
    exit_code = 6
    retry_after = 30


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


class ClockBehind(ArchiveError):
    """The system clock is earlier than what the catalog recorded: a retention date made now would be short."""

    status_code = 503
    exit_code = 7
    retry_after = 300
