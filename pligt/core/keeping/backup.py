"""Backup and restore: a consistent copy of the catalog and of every retained version's bytes.

A backup folder holds ``catalog.sqlite3`` (SQLite's online backup, so the
server can keep running; of a PostgreSQL catalog, a copy of one snapshot into
a SQLite file, by the code ``pligt migrate-catalog`` uses), ``objects/<key>`` for every retained version and
``manifest.json`` naming each object's size and SHA-256. Restoring checks
every byte against the catalog before the instance uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from pligt.core.catalog import Catalog
from pligt.core.catalog import SqliteCatalog
from pligt.core.catalog.copy import copy_catalog
from pligt.core.catalog.keys import KeyStore
from pligt.core.catalog.sqlite import SqliteKeyStore
from pligt.core.errors import Conflict
from pligt.core.errors import InvalidInput
from pligt.core.errors import StorageError
from pligt.core.models import Version
from pligt.core.models import to_text
from pligt.core.models import utcnow
from pligt.core.private import private_file
from pligt.core.private import private_folder
from pligt.core.private import write_private
from pligt.core.storage import Storage
from pligt.core.storage.base import CHUNK_SIZE

MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite3"
OBJECTS = "objects"
#: The instance's own files that belong with the catalog (the checkpoint key and the
#: copy of the newest checkpoint), owner-only.
KEYS = "keys"


@dataclass(frozen=True)
class BackupSummary:
    versions: int
    bytes: int
    audit_head: str

    def to_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "bytes": self.bytes, "audit_head": self.audit_head}


def backup(
    catalog: Catalog,
    storage: Storage,
    folder: Path,
    progress: Callable[[int], None] | None = None,
    keys: Mapping[str, Path] | None = None,
) -> BackupSummary:
    """Copy the catalog, then every version it lists, into the new folder ``folder``.

    :param keys: instance files to keep too, by name (those that exist): the checkpoint
        key, without which the checkpoints cannot be continued under the same key.

    :raises Conflict: if ``folder`` exists and is not empty.
    """
    if folder.exists() and any(folder.iterdir()):
        raise Conflict(f"{folder} is not empty: a backup goes into a new folder")
    private_folder(folder)  # it holds personal data: owner-only, and so is every file in it
    try:
        return _backup(catalog, storage, folder, progress, keys or {})
    except BaseException:
        # Half a backup is no backup, and it holds personal data: leave the folder empty.
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        raise


def _backup(
    catalog: Catalog,
    storage: Storage,
    folder: Path,
    progress: Callable[[int], None] | None,
    keys: Mapping[str, Path],
) -> BackupSummary:
    kept_keys = {}
    for name, source in keys.items():
        if source.is_file():
            private_folder(folder / KEYS)
            target = folder / KEYS / name
            write_private(target, source.read_bytes())
            kept_keys[name] = _sha256(target)
    catalog.backup_to(folder / CATALOG)
    snapshot = SqliteCatalog(folder / CATALOG)  # the copy decides what belongs to the backup
    try:
        entries = []
        total = 0
        for version in snapshot.versions():
            target = folder / OBJECTS / version.storage_key
            _private_folders(folder, target.parent)
            digest = hashlib.sha256()
            try:
                with private_file(target).open("wb") as out:
                    for chunk in storage.read_range(version.storage_key):
                        digest.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except FileNotFoundError as e:
                raise StorageError(
                    f"the bytes of {version.slug} version {version.number} ({version.storage_key}) are missing; "
                    "run `pligt fixity`"
                ) from e
            if digest.hexdigest() != version.sha256:
                raise StorageError(f"{version.slug} v{version.number}: stored bytes do not match the catalog")
            entries.append({"key": version.storage_key, "size": version.size, "sha256": version.sha256})
            total += version.size
        last = next(snapshot.audit_entries(newest_first=True, limit=1), None)
        head = last.hash if last else ""
        manifest = {
            "created_at": to_text(utcnow()),
            "schema": snapshot.schema_version(),
            "audit_head": head,
            "keys": kept_keys,
        }
    finally:
        snapshot.close()
    manifest["catalog_sha256"] = _sha256(folder / CATALOG)  # closed: the file is final
    write_private(folder / MANIFEST, json.dumps({**manifest, "objects": entries}, indent=1).encode("utf-8"))
    return BackupSummary(len(entries), total, head)


def verify_backup(folder: Path) -> list[dict[str, Any]]:
    """Check every object of a backup against its manifest; return the manifest's objects.

    :raises InvalidInput: naming the first object that is missing or differs.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{folder} is not a Pligt backup: {e}") from e
    if not (folder / CATALOG).is_file():
        raise InvalidInput(f"{folder} is not a Pligt backup: no {CATALOG}")
    if _sha256(folder / CATALOG) != manifest.get("catalog_sha256"):
        raise InvalidInput(f"the backup's {CATALOG} is corrupt (its SHA-256 differs from the manifest's)")
    for name, digest in manifest.get("keys", {}).items():
        if not (folder / KEYS / name).is_file() or _sha256(folder / KEYS / name) != digest:
            raise InvalidInput(f"the backup's {name} is missing or corrupt (its SHA-256 differs from the manifest's)")
    for entry in manifest["objects"]:
        path = folder / OBJECTS / entry["key"]
        if not path.is_file():
            raise InvalidInput(f"backup object {entry['key']} is missing")
        if _sha256(path) != entry["sha256"]:
            raise InvalidInput(f"backup object {entry['key']} is corrupt (its SHA-256 differs)")
    objects: list[dict[str, Any]] = manifest["objects"]
    return objects


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def restore(
    folder: Path,
    catalog: Catalog,
    storage: Storage,
    progress: Callable[[int], None] | None = None,
    keys_to: Path | None = None,
) -> int:
    """Restore a verified backup into an empty instance's catalog (either engine); return the number of versions.

    :param keys_to: the instance folder the backup's keys go back into (owner-only).
    :raises Conflict: if the target catalog already exists (a file) or holds rows (a database),
        or one of the keys exists.
    """
    objects = verify_backup(folder)
    keys = _keys_to_restore(folder, keys_to)
    _refuse_to_overwrite(catalog, [target for _, target in keys])
    expected = _backed_up_versions(folder)
    if {o["key"] for o in objects} != set(expected):
        raise InvalidInput("the backup's manifest does not match its catalog")
    for key, version in expected.items():
        _restore_object(folder / OBJECTS / key, version, storage, progress)
    for kept, target in keys:
        write_private(target, kept.read_bytes())
    # The catalog last: once it lists a version, its bytes are in the storage.
    _restore_catalog(folder, catalog)
    return len(expected)


def _keys_to_restore(folder: Path, keys_to: Path | None) -> list[tuple[Path, Path]]:
    """Return each key file the backup holds, with where it goes back to (none without ``keys_to``)."""
    if keys_to is None or not (folder / KEYS).is_dir():
        return []
    return [(kept, keys_to / kept.name) for kept in sorted((folder / KEYS).iterdir())]


def _refuse_to_overwrite(catalog: Catalog, key_files: list[Path]) -> None:
    """A restore makes an instance afresh: it never mixes the backup with a catalog or keys already there.

    :raises Conflict: naming what exists.
    """
    if isinstance(catalog, SqliteCatalog) and catalog.path.exists():
        raise Conflict(f"{catalog.path} exists: restore into a fresh instance")
    if not isinstance(catalog, SqliteCatalog) and catalog.schema_version() and catalog.count_rows("audit_log"):
        raise Conflict(f"the catalog {catalog.label} holds a catalog already: restore into an empty database")
    for target in key_files:
        if target.exists():
            raise Conflict(f"{target} exists: restore into a fresh instance")


def _backed_up_versions(folder: Path) -> dict[str, Version]:
    """Return the versions the backup's catalog lists, by storage key."""
    snapshot = SqliteCatalog(folder / CATALOG)
    try:
        return {v.storage_key: v for v in snapshot.versions()}
    finally:
        snapshot.close()


def _restore_object(path: Path, version: Version, storage: Storage, progress: Callable[[int], None] | None) -> None:
    """Put one version's bytes back, or accept those the storage holds already if they are the same.

    A restore tried again, or into a bucket that kept its objects, finds some in place.

    :raises StorageError: the storage holds other bytes under the key, or the copy arrived damaged.
    """
    key = version.storage_key
    if storage.exists(key):
        stored_digest = hashlib.sha256()
        for chunk in storage.read_range(key):
            stored_digest.update(chunk)
        if stored_digest.hexdigest() != version.sha256:
            raise StorageError(f"{key} exists in the target storage with other bytes")
        return
    stored = storage.save(key, _read(path, progress))
    if stored.sha256 != version.sha256 or stored.size != version.size:
        storage.delete(key)
        raise StorageError(f"{key} did not arrive intact in the target storage")


def _restore_catalog(folder: Path, catalog: Catalog) -> None:
    """Put the backup's catalog in place: a SQLite file whole (never half-written), a database by copying rows."""
    if isinstance(catalog, SqliteCatalog):
        private_folder(catalog.path.parent)
        partial = catalog.path.with_name(catalog.path.name + ".partial")
        partial.unlink(missing_ok=True)
        with (folder / CATALOG).open("rb") as source, private_file(partial).open("wb") as out:
            shutil.copyfileobj(source, out)
        partial.replace(catalog.path)
        return
    snapshot = SqliteCatalog(folder / CATALOG)
    try:
        copy_catalog(snapshot, catalog)
    finally:
        snapshot.close()


def _private_folders(root: Path, folder: Path) -> None:
    """Make ``folder`` and each missing folder between it and ``root`` owner-only."""
    missing = []
    while folder != root and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        private_folder(made)


def _read(path: Path, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            if progress is not None:
                progress(len(chunk))
            yield chunk


# -- the key store's own backups (see docs/privacy.md) ------------------------------------------

#: How key backups are named in their folder (the UTC moment they were taken).
KEY_BACKUP_PREFIX = "personal-keys-"
KEY_BACKUP_SUFFIX = ".sqlite3"
#: Days a key backup is kept: an erased key can come back from a key backup for at most this long.
KEY_BACKUP_DAYS = 7


@dataclass(frozen=True)
class KeyBackup:
    """What ``pligt keys backup`` wrote and pruned."""

    path: Path
    keys: int
    tombstones: int
    removed: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "keys": self.keys, "tombstones": self.tombstones, "removed": self.removed}


def backup_keys(keys: KeyStore, folder: Path, now: datetime, keep_days: int = KEY_BACKUP_DAYS) -> KeyBackup:
    """Copy the live keys (and the tombstones of destroyed ones) into a new file in ``folder``; prune old ones.

    Every key backup in ``folder`` taken more than ``keep_days`` before ``now`` is deleted:
    a key destroyed by an erasure lives on in key backups for at most that long.

    :raises InvalidInput: for a ``keep_days`` below 1.
    """
    if keep_days < 1:
        raise InvalidInput("key backups are kept at least 1 day")
    private_folder(folder)
    live, tombstones = keys.export()
    stamp = now.astimezone(UTC).strftime(_KEY_BACKUP_STAMP)
    target = folder / f"{KEY_BACKUP_PREFIX}{stamp}{KEY_BACKUP_SUFFIX}"
    number = 1
    while target.exists():  # a second key backup within the same second: numbered
        number += 1
        target = folder / f"{KEY_BACKUP_PREFIX}{stamp}-{number}{KEY_BACKUP_SUFFIX}"
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    copy = SqliteKeyStore(partial)
    try:
        copy.load(live, tombstones)
    finally:
        copy.close()
    os.chmod(partial, 0o600)
    partial.replace(target)
    removed = []
    for old in sorted(folder.glob(f"{KEY_BACKUP_PREFIX}*{KEY_BACKUP_SUFFIX}")):
        taken = _key_backup_time(old)
        if taken is not None and old != target and now - taken > timedelta(days=keep_days):
            old.unlink()
            removed.append(old.name)
    return KeyBackup(target, len(live), len(tombstones), removed)


#: When a key backup was taken, in its name (a number may follow, for a second one within the second).
_KEY_BACKUP_STAMP = "%Y%m%dT%H%M%SZ"


def _key_backup_time(path: Path) -> datetime | None:
    stamp = path.name.removeprefix(KEY_BACKUP_PREFIX).removesuffix(KEY_BACKUP_SUFFIX).split("-", 1)[0]
    try:
        return datetime.strptime(stamp, _KEY_BACKUP_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def restore_keys(source: Path, catalog: Catalog) -> dict[str, int]:
    """Take into the catalog's key store the keys its requests need from a key backup (or another key store file).

    Tombstones come too, so that an erasure recorded in the key backup is carried over.

    :raises InvalidInput: if ``source`` is no key store.
    """
    if not source.is_file():
        raise InvalidInput(f"{source} is not a key backup (no such file)")
    if catalog.keys is None:
        raise InvalidInput(f"the catalog {catalog.label} has no key store")
    given = SqliteKeyStore(source)
    try:
        live, tombstones = given.export()
    except StorageError as e:
        raise InvalidInput(f"{source} is not a key backup: {e.message}") from e
    finally:
        given.close()
    needed = catalog.key_ids()
    catalog.keys.load([k for k in live if k[0] in needed], [t for t in tombstones if t[0] in needed])
    return {"keys": sum(1 for k in live if k[0] in needed), "tombstones": sum(1 for t in tombstones if t[0] in needed)}
