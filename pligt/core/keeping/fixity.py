"""Fixity: re-read every stored version and compare it with what the catalog promised.

The same read takes each version's SHA-1 (the deposit institution's digest):
a version published before the catalog kept it gets it here, once its size
and SHA-256 are confirmed; a version that has one must match it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any

from pligt.core.catalog import Catalog
from pligt.core.errors import StorageError
from pligt.core.keeping.leftovers import Leftovers
from pligt.core.keeping.leftovers import Orphan
from pligt.core.keeping.leftovers import Repair
from pligt.core.keeping.leftovers import find_leftovers
from pligt.core.keeping.leftovers import repair
from pligt.core.proof.audit import AuditEntry
from pligt.core.storage import Storage
from pligt.core.storage.base import EMPTY_FOLDER
from pligt.core.storage.base import GRACE_PERIOD
from pligt.core.storage.base import Debris
from pligt.core.storage.base import payload_digest


@dataclass
class FixityReport:
    """Versions whose bytes are missing or differ, objects nobody listed, and what interrupted writes left."""

    checked: int = 0
    bytes_read: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    #: Complete objects with a publish's key that the catalog never listed (see :mod:`pligt.core.keeping.leftovers`).
    orphaned: list[Orphan] = field(default_factory=list)
    #: Temporary files, empty folders and incomplete uploads (see :meth:`Storage.debris`).
    debris: list[Debris] = field(default_factory=list)
    #: What ``--repair`` removed and could not; then ``orphaned`` and ``debris`` hold what remains.
    repair: Repair | None = None
    #: Versions published before the SHA-1 was kept, whose SHA-1 this check recorded.
    sha1_recorded: int = 0
    #: The SHA-1 found per version id, for :func:`record_fixity` to record.
    sha1_found: dict[int, str] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        """Missing, corrupt and unexpected objects, abandoned debris and removable orphans.

        Not problems, though reported all the same: debris a writer still holds,
        empty folders (they take no space), orphans too recent to be sure of, and
        orphans the storage itself retains.
        """
        debris = sum(d.abandoned and d.kind != EMPTY_FOLDER for d in self.debris)
        leftovers = debris + sum(o.removable for o in self.orphaned)
        return len(self.missing) + len(self.corrupt) + len(self.unexpected) + leftovers

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_read": self.bytes_read,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "unexpected": self.unexpected,
            "orphaned": [o.to_dict() for o in self.orphaned],
            "debris": [d.to_dict() for d in self.debris],
            "sha1_recorded": self.sha1_recorded,
            **({"repair": self.repair.to_dict()} if self.repair is not None else {}),
        }


def check_fixity(
    catalog: Catalog,
    storage: Storage,
    progress: Callable[[int], None] | None = None,
    *,
    older_than: timedelta = GRACE_PERIOD,
) -> FixityReport:
    """Read every retained version's bytes, hashing as they stream; list every problem.

    Writes nothing: the SHA-1 of every sound version that had none is kept in
    the report, for :func:`record_fixity` to record with the check's audit entry.

    :param progress: called with the number of bytes read, chunk by chunk.
    :param older_than: the grace period after which an orphan (or an S3 upload) counts as abandoned.
    """
    report = FixityReport()
    versions = catalog.versions()
    for version in versions:
        label = f"{version.slug} v{version.number} ({version.storage_key})"
        digest, sha1, size = hashlib.sha256(), hashlib.sha1(usedforsecurity=False), 0
        try:
            for chunk in storage.read_range(version.storage_key):
                digest.update(chunk)
                sha1.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        except FileNotFoundError:
            report.missing.append(label)
            continue
        except StorageError:
            raise
        report.checked += 1
        report.bytes_read += size
        read_sha1 = payload_digest(sha1.digest())
        if size != version.size or digest.hexdigest() != version.sha256:
            report.corrupt.append(f"{label}: {size} bytes, sha256 {digest.hexdigest()}")
        elif version.sha1 is None:
            report.sha1_found[version.id] = read_sha1
            report.sha1_recorded += 1
        elif read_sha1 != version.sha1:  # the SHA-256 matched: the catalog's SHA-1 is what is wrong
            report.corrupt.append(f"{label}: sha1 {read_sha1}, the catalog says {version.sha1}")
    leftovers = find_leftovers(catalog, storage, older_than)
    report.unexpected, report.orphaned, report.debris = leftovers.unexpected, leftovers.orphaned, leftovers.debris
    return report


def repair_leftovers(catalog: Catalog, storage: Storage, report: FixityReport) -> Repair:
    """Remove the abandoned debris and the removable orphans the check found.

    Afterwards the report's ``debris`` and ``orphaned`` hold what remains, and
    its ``repair`` what went and what the storage refused.
    """
    leftovers = Leftovers(report.unexpected, report.orphaned, report.debris)
    report.repair = repair(catalog, storage, leftovers)
    report.orphaned, report.debris = leftovers.orphaned, leftovers.debris
    return report.repair


def record_fixity(catalog: Catalog, report: FixityReport, now: datetime) -> AuditEntry:
    """Record a check in one transaction: the SHA-1s it found and its audit entry, both or neither.

    :raises StorageError: (:class:`~pligt.core.errors.CatalogBusy`, :class:`~pligt.core.errors.OutOfSpace`)
        when the catalog cannot take them; then nothing is recorded.
    """
    with catalog.transaction():
        for version_id, sha1 in report.sha1_found.items():
            catalog.set_sha1(version_id, sha1)
        return catalog.append_audit("fixity.checked", report.to_dict(), None, now)
