"""Local-filesystem storage: atomic, fsynced, read-only files under one root."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..errors import StorageError
from .base import Hasher
from .base import Storage
from .base import StoredObject
from .base import check_key

_TEMP_PREFIX = ".tmp-"


class LocalStorage(Storage):
    """Objects as files below ``root``.

    A write goes to a temporary file in the target's own directory, is fsynced
    and then hard-linked into place: the link fails if the name exists (no
    overwrite) and is atomic, so a crash never leaves a half-written object
    under its final name. Stored files are made read-only.
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
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create folder for {key!r}: {e.strerror}") from e
        temp = target.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(8)}")
        hasher = Hasher()
        try:
            with _storage_errors(key):
                out = open(temp, "xb")  # noqa: SIM115 - closed below
            with out:
                for chunk in chunks:  # errors of the source propagate as they are
                    hasher.update(chunk)
                    with _storage_errors(key):
                        out.write(chunk)
                with _storage_errors(key):
                    out.flush()
                    os.fsync(out.fileno())
            with _storage_errors(key):
                os.chmod(temp, 0o444)
                os.link(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        _fsync_dir(target.parent)
        return StoredObject(key=key, size=hasher.size, sha256=hasher.hexdigest())

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

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def iter_keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.startswith(_TEMP_PREFIX):
                    yield Path(dirpath, name).relative_to(self.root).as_posix()

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
        raise StorageError(f"cannot write {key!r}: {e.strerror or e}") from e


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
