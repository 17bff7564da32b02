"""What interrupted publishes leave in storage, found and (on request) removed.

Two kinds, each from a process killed at a different moment:

* **Debris**: a write cut off before the object was complete (a temporary
  file, an empty item folder, an incomplete S3 upload). It was never an object;
  the backend lists it (:meth:`~pligt.core.storage.Storage.debris`) and knows
  when its writer is gone.
* **Orphans**: complete objects the catalog has never listed: a kill between
  storing the bytes and committing the version. Only objects with the shape
  of a key :meth:`Archive.publish <archive.archive.Archive.publish>` makes
  count; anything else nobody listed is *unexpected* and is never removed here.

An orphan is removed only once it is older than a grace period (a publish in
flight is between its store and its commit for moments, never an hour), and
only under the catalog's write lock, after asking the catalog again: a publish
commits under the same lock and checks there that its object is still stored,
so a removal and a commit can never cross. Storage that retains an object itself
(S3 Object Lock) keeps an orphan until its date: that is reported, not fought.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from pligt.core.catalog import Catalog
from pligt.core.errors import StorageError
from pligt.core.storage import Storage
from pligt.core.storage.base import GRACE_PERIOD
from pligt.core.storage.base import Debris
from pligt.core.storage.base import silent_for

#: The keys :meth:`Archive.publish <archive.archive.Archive.publish>` makes: ``<slug>/<24 hex digits>``.
ORPHAN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[0-9a-f]{24}")
#: More orphans than this at once is not what interrupted publishes leave: more
#: likely the catalog is not this storage's (an old backup, another instance's
#: bucket), and removing "orphans" would remove deposited material.
MAX_ORPHANS_REMOVED = 25


@dataclass(frozen=True)
class Orphan:
    """A complete object the catalog has never listed, with the key shape of a publish."""

    key: str
    size: int
    #: When the storage wrote it (aware, UTC).
    modified: datetime
    #: Older than the grace period: no publish can still be about to list it.
    abandoned: bool
    #: The storage's own retention (S3 Object Lock) keeps it until then.
    retained_until: datetime | None = None

    @property
    def removable(self) -> bool:
        return self.abandoned and self.retained_until is None

    def describe(self) -> str:
        return f"{self.key} ({self.size:,} bytes, stored {self.modified:%Y-%m-%d %H:%M:%S} UTC)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "size": self.size,
            "modified": self.modified.astimezone(UTC).isoformat(timespec="seconds"),
            "abandoned": self.abandoned,
            "retained_until": self.retained_until.isoformat(timespec="seconds") if self.retained_until else None,
        }


@dataclass
class Leftovers:
    """Objects no retained version lists, split by what they are, and the backend's debris."""

    unexpected: list[str] = field(default_factory=list)
    orphaned: list[Orphan] = field(default_factory=list)
    debris: list[Debris] = field(default_factory=list)


@dataclass
class Repair:
    """What a repair removed, and what it could not (each with the reason)."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"removed": self.removed, "failed": self.failed, "bytes_freed": self.bytes_freed}


def find_leftovers(catalog: Catalog, storage: Storage, older_than: timedelta = GRACE_PERIOD) -> Leftovers:
    """List unexpected objects, orphans and debris.

    The catalog is read after the storage is listed, so a version published
    while a long check ran is not taken for an orphan.
    """
    objects = list(storage.iter_objects())
    versions = catalog.versions(include_withdrawn=True)
    ever = {v.storage_key for v in versions}
    retained = {v.storage_key for v in versions if not v.withdrawn}
    found = Leftovers()
    now = datetime.now(UTC)
    for info in objects:
        if info.key in retained:
            continue
        if info.key in ever or not ORPHAN_KEY.fullmatch(info.key):
            # Not ours to remove: a withdrawn version whose bytes the storage kept
            # (pligt withdraw deletes them again), or something put there by hand.
            found.unexpected.append(info.key)
            continue
        orphan = Orphan(info.key, info.size, info.modified, silent_for(info.modified, older_than, now))
        if orphan.abandoned:
            try:
                orphan = replace(orphan, retained_until=storage.retained_until(info.key))
            except FileNotFoundError:  # removed meanwhile
                continue
        found.orphaned.append(orphan)
    found.unexpected.sort()
    found.debris = storage.debris(older_than)
    return found


def repair(catalog: Catalog, storage: Storage, leftovers: Leftovers) -> Repair:
    """Remove abandoned debris and removable orphans; update ``leftovers`` to what remains.

    Each removal stands alone: one the storage refuses is recorded in
    :attr:`Repair.failed` and the others go ahead.
    """
    done = Repair()
    remaining: list[Debris] = []
    for item in leftovers.debris:
        if not item.abandoned:
            remaining.append(item)
            continue
        try:
            removed = storage.remove_debris(item)
        except StorageError as e:
            done.failed.append(f"{item.describe()}: {e.message}")
            remaining.append(item)
            continue
        if removed:
            done.removed.append(item.describe())
            done.bytes_freed += item.size
        # else: gone meanwhile, or a writer has just taken it up (a save between creating
        # and locking its file, a folder just made for one): not abandoned debris now
    leftovers.debris = remaining

    removable = [o for o in leftovers.orphaned if o.removable]
    kept = [o for o in leftovers.orphaned if not o.removable]
    if len(removable) > MAX_ORPHANS_REMOVED:
        done.failed.append(
            f"{len(removable)} orphaned objects: more than interrupted publishes leave, so none was removed. "
            "Is the catalog this storage's own (not an old backup's, not another instance's)? "
            "If it is, remove them by hand"
        )
        return done
    if removable:
        try:
            kept += _remove_orphans(catalog, storage, removable, done)
        except StorageError as e:  # the catalog's lock or disk: the orphans wait for the next repair
            done.failed.append(f"orphaned objects not removed: {e.message}")
            kept += [o for o in removable if f"orphaned {o.describe()}" not in done.removed]
        leftovers.orphaned = kept
    return done


def _remove_orphans(catalog: Catalog, storage: Storage, orphans: list[Orphan], done: Repair) -> list[Orphan]:
    """Delete the orphans the catalog still does not list, under its write lock; return those kept."""
    kept: list[Orphan] = []
    with catalog.transaction():  # no publish commits meanwhile (it would find its object gone)
        listed = {v.storage_key for v in catalog.versions(include_withdrawn=True)}
        for orphan in orphans:
            if orphan.key in listed:
                continue  # committed after all: a version now, not an orphan
            try:
                storage.delete(orphan.key)
            except StorageError as e:
                done.failed.append(f"orphaned {orphan.describe()}: {e.message}")
                kept.append(orphan)
                continue
            done.removed.append(f"orphaned {orphan.describe()}")
            done.bytes_freed += orphan.size
    return kept
