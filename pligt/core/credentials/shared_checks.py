"""Successful password checks shared by the worker processes of one server.

Each worker remembers the checks it made (pligt/core/credentials/auth.py), but a server runs
several workers, and a crawler's connections land on all of them: without
sharing, every worker paid the slow hash (~100 ms, 32 MiB) once more for the
same credential. The server's master process makes one of these before it
forks its workers; they inherit it, and with it

- an anonymous shared memory mapping (never a file): fixed slots, each with
  the HMAC of what was presented, the credential's id and when the slot lapses;
- the HMAC key, which exists only in the memory of these processes;
- a lock across the processes, taken with a short timeout: a worker killed
  while holding it costs the others a slow hash, never a hang.

A slot never holds a password, and a hit only says "this password was right";
whether the credential is still valid is checked on every request, as before.

A second table of the same shape counts failed checks per client (the HMAC of
its address, never the address), so that a guesser is stopped after the same
number of tries whichever worker its connections land on (pligt/core/credentials/auth.py,
:class:`~pligt.core.credentials.auth.Guessers`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import mmap
import multiprocessing
import secrets
import struct
import time

#: digest, credential id, lapses at (time.monotonic(), the same clock in every process);
#: in the failures table: the client's digest, its failures, when the last one was counted.
_SLOT = struct.Struct("32sqd")
_EMPTY = bytes(32)
#: Where a digest may sit: this many slots from its home slot.
_PROBES = 8
_LOCK_TIMEOUT = 0.05


class SharedChecks:
    """A fixed table of verified (username, password) digests in memory shared across fork."""

    def __init__(self, slots: int = 1024, clients: int = 4096) -> None:
        self.slots = slots
        self.clients = clients
        self.key = secrets.token_bytes(32)
        self._memory = mmap.mmap(-1, slots * _SLOT.size)  # anonymous and MAP_SHARED: inherited by fork
        self._failures = mmap.mmap(-1, clients * _SLOT.size)
        self._lock = multiprocessing.Lock()

    def scoped(self, label: str) -> SharedChecks:
        """Return a view of the same tables under a key of its own (one publisher of a deployment).

        Digests made under one label never match another's: a check verified for
        one publisher is no check for another, and a client's failures at one
        count nowhere else.
        """
        view = copy.copy(self)
        view.key = hmac.new(self.key, b"pligt scope\0" + label.encode("utf-8"), hashlib.sha256).digest()
        return view

    def digest(self, kind: str, username: str, password: str) -> bytes:
        return hmac.new(self.key, "\0".join((kind, username, password)).encode("utf-8"), hashlib.sha256).digest()

    def get(self, digest: bytes) -> int | None:
        """Return the credential id a live slot holds for ``digest``, else None."""
        if not self._lock.acquire(timeout=_LOCK_TIMEOUT):
            return None
        try:
            now = time.monotonic()
            for offset in self._probe(digest):
                stored, credential_id, lapses = _SLOT.unpack_from(self._memory, offset)
                if hmac.compare_digest(stored, digest) and lapses > now:
                    return int(credential_id)
            return None
        finally:
            self._lock.release()

    def put(self, digest: bytes, credential_id: int, seconds: float) -> None:
        """Remember ``digest`` for ``seconds``: in its own slot, a free or lapsed one, or the oldest."""
        if not self._lock.acquire(timeout=_LOCK_TIMEOUT):
            return
        try:
            now = time.monotonic()
            chosen, oldest = None, None
            for offset in self._probe(digest):
                stored, _, lapses = _SLOT.unpack_from(self._memory, offset)
                if stored in (digest, _EMPTY) or lapses <= now:
                    chosen = offset
                    break
                if oldest is None or lapses < oldest[1]:
                    oldest = (offset, lapses)
            if chosen is None:
                assert oldest is not None
                chosen = oldest[0]
            _SLOT.pack_into(self._memory, chosen, digest, credential_id, now + seconds)
        finally:
            self._lock.release()

    def count_failures(
        self, client: bytes, delta: int, limit: int, quiet: float, now: float
    ) -> tuple[int, float, bool] | None:
        """Change a client's failure count by ``delta`` as :func:`failures_after` says; None without the lock.

        A full table forgets the client whose last failure is oldest.
        """
        if not self._lock.acquire(timeout=_LOCK_TIMEOUT):
            return None
        try:
            chosen, oldest = None, None
            for offset in self._probe(client, self.clients):
                stored, count, last = _SLOT.unpack_from(self._failures, offset)
                if stored == client:
                    chosen = offset
                    break
                if stored == _EMPTY or last + quiet <= now:
                    chosen = chosen if chosen is not None else offset
                elif oldest is None or last < oldest[1]:
                    oldest = (offset, last)
            if chosen is None:
                assert oldest is not None
                chosen = oldest[0]
            stored, count, last = _SLOT.unpack_from(self._failures, chosen)
            after = failures_after((count, last) if stored == client else (0, 0.0), delta, limit, quiet, now)
            _SLOT.pack_into(self._failures, chosen, client, after[0], after[1])
            return after
        finally:
            self._lock.release()

    def _probe(self, digest: bytes, slots: int | None = None) -> list[int]:
        slots = slots or self.slots
        home = int.from_bytes(digest[:8], "big") % slots
        return [((home + i) % slots) * _SLOT.size for i in range(min(_PROBES, slots))]


def failures_after(
    counted: tuple[int, float], delta: int, limit: int, quiet: float, now: float
) -> tuple[int, float, bool]:
    """Return a client's failures and when the last was counted, after ``delta``; and whether it is refused.

    One rule for the shared table and the per-process one: failures lapse after
    ``quiet`` seconds without a new one; a client at ``limit`` is refused, and
    a refused attempt is not counted (so it does not prolong the refusal).
    """
    count, last = counted
    if last + quiet <= now:
        count, last = 0, 0.0
    if count >= limit and delta >= 0:
        return count, last, True
    if delta > 0:
        return count + delta, now, False
    return max(0, count + delta), last, False
