"""Local-filesystem storage: atomic, fsynced, read-only files under one root."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote
from urllib.parse import urlsplit

from pligt.core.errors import ConfigurationError
from pligt.core.errors import InvalidInput
from pligt.core.errors import OutOfSpace
from pligt.core.errors import StorageError
from pligt.core.storage.base import EMPTY_FOLDER
from pligt.core.storage.base import GRACE_PERIOD
from pligt.core.storage.base import TEMPORARY_FILE
from pligt.core.storage.base import Debris
from pligt.core.storage.base import Hasher
from pligt.core.storage.base import ObjectInfo
from pligt.core.storage.base import Storage
from pligt.core.storage.base import StoredObject
from pligt.core.storage.base import check_key

_TEMP_PREFIX = ".tmp-"
#: A save starts over this often when a sweep removes its new folder or temporary file under it.
_SAVE_ATTEMPTS = 5


class LocalStorage(Storage):
    """Objects as files below ``root``.

    A write goes to a temporary file in the target's own directory, is fsynced
    and then hard-linked into place: the link fails if the name exists (no
    overwrite) and is atomic, so a crash never leaves a half-written object
    under its final name. Stored files are made read-only.

    The writer holds an exclusive ``flock`` on its temporary file from the
    moment it exists until the file is linked and unlinked, so a sweep (which
    removes a temporary file only while holding that lock itself) can tell a
    killed writer's leftovers from a live one's, whatever their age.
    """

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self._root_text = str(self.root)

    @classmethod
    def from_url(cls, url: str, **options: object) -> LocalStorage:
        """Build the backend from ``file:///absolute/path``; it takes no options."""
        return cls(check_url(url, **options))

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def save(self, key: str, chunks: Iterable[bytes], *, retain_until: datetime | None = None) -> StoredObject:
        # retain_until is not enforced here: a file system has no retention of its
        # own, so the archive core alone keeps versions until their date.
        target = self._path(key)
        if target.exists():
            raise FileExistsError(f"object {key!r} already exists")
        temp, fd = self._locked_temp(key, target)
        hasher = Hasher()
        try:
            out = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        # The lock goes with the descriptor: it is held until the temporary name is gone.
        with _closed(out, key):
            try:
                for chunk in chunks:  # errors of the source propagate as they are
                    hasher.update(chunk)
                    with _storage_errors(key):
                        out.write(chunk)
                with _storage_errors(key):
                    out.flush()
                    os.fsync(out.fileno())
                    os.chmod(temp, 0o444)
                    os.link(temp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
        try:
            _fsync_dir(target.parent)
        except OSError as e:  # not durably stored: not stored
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise _write_error(f"cannot write {key!r}", e) from e
        return StoredObject(key=key, size=hasher.size, sha256=hasher.hexdigest())

    def _locked_temp(self, key: str, target: Path) -> tuple[Path, int]:
        """Create the temporary file beside ``target`` and lock it; return its path and descriptor.

        A sweep may remove the folder (empty a moment ago) or the new file
        (in the instant before it is locked): then start over, with a new name.
        """
        for _ in range(_SAVE_ATTEMPTS):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _write_error(f"cannot create folder for {key!r}", e) from e
            temp = target.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(8)}")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue  # the folder was swept as empty in between
            except OSError as e:
                raise _write_error(f"cannot write {key!r}", e) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a sweep looks at it
                if _same_file(temp, fd):
                    return temp, fd
            except OSError as e:
                os.close(fd)
                raise StorageError(f"cannot lock the temporary file of {key!r}: {e.strerror or e}") from e
            os.close(fd)  # swept before it was locked: its name is gone
        raise StorageError(f"cannot write {key!r}: its folder kept disappearing")

    def open(self, key: str) -> BinaryIO:
        # A plain string join: this is the download path, and pathlib's parsing showed in its profile.
        path = os.path.join(self._root_text, check_key(key))
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise
        except OSError as e:
            raise StorageError(f"cannot read {key!r}: {e.strerror}") from e

    def delete(self, key: str, *, bypass_retention: bool = False) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageError(f"cannot delete {key!r}: {e.strerror}") from e
        _fsync_dir(path.parent)
        self._drop_if_empty(path.parent)

    def _drop_if_empty(self, folder: Path) -> None:
        """Remove ``folder`` (never the root) if nothing is in it; a save that needs it makes it again."""
        if folder == self.root:
            return
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): nothing to do
            return
        _fsync_dir(folder.parent)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def iter_objects(self) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(_TEMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                try:
                    st = path.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                yield ObjectInfo(path.relative_to(self.root).as_posix(), st.st_size, _mtime(st))

    def retained_until(self, key: str) -> datetime | None:
        if not self._path(key).is_file():
            raise FileNotFoundError(f"no object {key!r}")
        return None  # the archive core keeps versions until their date; the file system cannot

    # -- debris of interrupted writes ------------------------------------------------

    def debris(self, older_than: timedelta = GRACE_PERIOD) -> list[Debris]:
        """List temporary files (abandoned when their lock is free) and empty folders, deepest first.

        ``older_than`` is not needed: the lock tells a live writer from a killed one.
        """
        found: list[Debris] = []
        if not self.root.is_dir():
            return found
        empty: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root, topdown=False):
            folder = Path(dirpath)
            for name in sorted(filenames):
                if name.startswith(_TEMP_PREFIX):
                    item = self._temp_debris(folder / name)
                    if item is not None:
                        found.append(item)
            if folder != self.root and not filenames and all(str(folder / d) in empty for d in dirnames):
                empty.add(str(folder))
                with contextlib.suppress(FileNotFoundError):
                    found.append(Debris(EMPTY_FOLDER, self._name(folder), 0, _mtime(folder.stat()), True))
        return found

    def _temp_debris(self, path: Path) -> Debris | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:  # its writer has just finished
            return None
        except OSError as e:
            raise StorageError(f"cannot look at {path}: {e.strerror}") from e
        try:
            st = os.fstat(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                abandoned = True
            except BlockingIOError:
                abandoned = False
            return Debris(TEMPORARY_FILE, self._name(path), st.st_size, _mtime(st), abandoned)
        finally:
            os.close(fd)  # and with it the lock, if it was taken

    def remove_debris(self, item: Debris) -> bool:
        path = self._debris_path(item)
        if item.kind == EMPTY_FOLDER:
            try:
                path.rmdir()
            except FileNotFoundError:
                return False
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):  # a save has begun in it
                    return False
                raise StorageError(f"cannot remove the empty folder {item.name}: {e.strerror}") from e
            _fsync_dir(path.parent)
            return True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StorageError(f"cannot remove {item.name}: {e.strerror}") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a writer holds it: not debris
            # Under the lock, and only if the name is still this very file.
            if not _same_file(path, fd):
                return False
            try:
                path.unlink()
            except OSError as e:
                raise StorageError(f"cannot remove {item.name}: {e.strerror}") from e
        finally:
            os.close(fd)
        _fsync_dir(path.parent)
        self._drop_if_empty(path.parent)
        return True

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _debris_path(self, item: Debris) -> Path:
        """The path of a leftover, refused unless it is one this backend could have listed."""
        parts = item.name.split("/")
        bad = not item.name or any(p in ("", ".", "..") for p in parts)
        if item.kind == TEMPORARY_FILE:
            bad = bad or not parts[-1].startswith(_TEMP_PREFIX)
        elif item.kind != EMPTY_FOLDER:
            bad = True
        if bad:
            raise InvalidInput(f"not a leftover of this storage: {item.kind} {item.name!r}")
        return self.root.joinpath(*parts)

    def check(self) -> dict[str, object]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            st = os.stat(self.root)
        except OSError as e:
            raise StorageError(f"storage folder {self.root} is not usable: {e.strerror}") from e
        if not stat.S_ISDIR(st.st_mode) or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"storage folder {self.root} is not writable")
        return {"url": self.url, "folder": str(self.root), "writable": True}


@contextlib.contextmanager
def _storage_errors(key: str) -> Iterator[None]:
    """Turn the backend's own OS errors into :class:`StorageError` (FileExistsError stays)."""
    try:
        yield
    except FileExistsError:
        raise
    except OSError as e:
        raise _write_error(f"cannot write {key!r}", e) from e


@contextlib.contextmanager
def _closed(out: BinaryIO, key: str) -> Iterator[None]:
    """Close ``out`` after the block; after a failed block, quietly.

    Closing flushes what is buffered: after a write or flush that failed for
    want of space, that flush fails again, and its error must not hide the first.
    """
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            out.close()
        raise
    with _storage_errors(key):
        out.close()


def _write_error(doing: str, e: OSError) -> StorageError:
    """Return the error for a failed write: :class:`OutOfSpace` when the disk (or the quota) is full."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutOfSpace(f"{doing}: no space left on the device; nothing was stored")
    return StorageError(f"{doing}: {e.strerror or e}")


def _same_file(path: Path, fd: int) -> bool:
    """Tell whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_url(url: str, **options: object) -> str:
    """Check a ``file:///absolute/path`` URL (no options) and return its folder.

    :raises ConfigurationError: for options, a relative or remote path, a query.
    """
    if options:
        raise ConfigurationError(f"unknown option(s) for file storage: {', '.join(sorted(options))}")
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
        raise ConfigurationError(f"storage URL {url!r} must look like file:///absolute/path")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"storage URL {url!r} must not have a query or fragment")
    return unquote(parts.path)
