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
from typing import Any

from .catalog import Catalog
from .errors import StorageError
from .storage import Storage
from .storage.base import payload_digest


@dataclass
class FixityReport:
    """Versions whose bytes are missing or differ, and objects nobody listed."""

    checked: int = 0
    bytes_read: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    #: Versions published before the SHA-1 was kept, whose SHA-1 this check recorded.
    sha1_recorded: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.unexpected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_read": self.bytes_read,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "unexpected": self.unexpected,
            "sha1_recorded": self.sha1_recorded,
        }


def check_fixity(catalog: Catalog, storage: Storage, progress: Callable[[int], None] | None = None) -> FixityReport:
    """Read every retained version's bytes, hashing as they stream; list every problem.

    Records the SHA-1 of every sound version that had none (the one write this check makes).

    :param progress: called with the number of bytes read, chunk by chunk.
    """
    report = FixityReport()
    versions = catalog.versions()
    known = {v.storage_key for v in versions}
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
            catalog.set_sha1(version.id, read_sha1)
            report.sha1_recorded += 1
        elif read_sha1 != version.sha1:  # the SHA-256 matched: the catalog's SHA-1 is what is wrong
            report.corrupt.append(f"{label}: sha1 {read_sha1}, the catalog says {version.sha1}")
    report.unexpected = sorted(key for key in storage.iter_keys() if key not in known)
    return report
