"""Fixity: re-read every stored version and compare it with what the catalog promised."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from .catalog import Catalog
from .errors import StorageError
from .storage import Storage


@dataclass
class FixityReport:
    """Versions whose bytes are missing or differ, and objects nobody listed."""

    checked: int = 0
    bytes_read: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

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
        }


def check_fixity(catalog: Catalog, storage: Storage, progress: Callable[[int], None] | None = None) -> FixityReport:
    """Read every retained version's bytes, hashing as they stream; list every problem.

    :param progress: called with the number of bytes read, chunk by chunk.
    """
    report = FixityReport()
    versions = catalog.versions()
    known = {v.storage_key for v in versions}
    for version in versions:
        label = f"{version.slug} v{version.number} ({version.storage_key})"
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in storage.read_range(version.storage_key):
                digest.update(chunk)
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
        if size != version.size or digest.hexdigest() != version.sha256:
            report.corrupt.append(f"{label}: {size} bytes, sha256 {digest.hexdigest()}")
    report.unexpected = sorted(key for key in storage.iter_keys() if key not in known)
    return report
