"""The bytes of small versions, kept in memory once read and checked.

Most deposited files a crawler fetches in a burst are small (pages, brochures
of a few KiB), and for them opening, sending and closing a file costs more
than the bytes: on S3 it is a network round trip per download. A version's
bytes never change, so they can be kept without ever going stale. They are
checked against the catalog's SHA-256 when first read: a damaged object is
refused (StorageError, 503) rather than handed to the crawler as the deposit.
Everything kept is dropped whenever the catalog changes (see pligt/core/downloads/lookups.py),
so the bytes of a withdrawn or erased version do not linger in a server's memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from pligt.core.errors import StorageError
from pligt.core.models import Version
from pligt.core.storage import Storage

KiB = 1024
MiB = 1024 * KiB

#: Versions up to this size are kept in memory.
MAX_FILE_BYTES = 64 * KiB
#: Memory for kept bytes, per process; the least recently used go first.
CAPACITY_BYTES = 32 * MiB


class SmallFiles:
    """A bounded, least-recently-used store of small versions' bytes (thread-safe)."""

    def __init__(self, storage: Storage, capacity: int = CAPACITY_BYTES, max_file: int = MAX_FILE_BYTES) -> None:
        self.storage = storage
        self.capacity = capacity
        self.max_file = max_file
        self._kept: OrderedDict[int, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def fits(self, version: Version) -> bool:
        return version.size <= self.max_file

    def kept(self, version: Version) -> bytes | None:
        """Return a small version's bytes if they are in memory already; never reads storage."""
        with self._lock:
            data = self._kept.get(version.id)
            if data is not None:
                self._kept.move_to_end(version.id)
            return data

    def read(self, version: Version) -> bytes:
        """Return the bytes of a small version, from memory when they were read before.

        :raises FileNotFoundError: the object is missing.
        :raises StorageError: the object cannot be read or is not what was deposited.
        """
        data = self.kept(version)
        if data is not None:
            return data
        with self.storage.open(version.storage_key) as stream:
            data = stream.read()
        if len(data) != version.size or hashlib.sha256(data).hexdigest() != version.sha256:
            raise StorageError(f"the stored bytes of {version.slug} version {version.number} differ from the deposit")
        with self._lock:
            if version.id not in self._kept:
                self._kept[version.id] = data
                self._size += len(data)
                while self._size > self.capacity:
                    _, dropped = self._kept.popitem(last=False)
                    self._size -= len(dropped)
        return data

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._size = 0
