"""Domain errors of the archive core.

Each error carries the HTTP status it maps to, so that the service maps every
error in one place (``deposit/errors.py``) and the CLI turns it into one line
on stderr and a non-zero exit code. The core itself knows nothing of HTTP: the
number is a classification, not a response.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class: something the archive refuses, with a message for a person."""

    status_code = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ArchiveError):
    """A name, a value or a request that the archive cannot accept."""

    status_code = 400
    exit_code = 2


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


class ConfigurationError(ArchiveError):
    """A setting the archive cannot run with."""

    exit_code = 7
