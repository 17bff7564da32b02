"""Checking crawler and owner passwords without paying the slow hash on every request.

A crawler fetches thousands of files in a burst with the same credentials, and
one scrypt check costs ~100 ms and 32 MiB. Successful checks are remembered
(sliding: each use extends them), keyed by an HMAC of the presented username
and password under a secret held only in memory, so the cache never holds a
password; the workers of one server share them (archive/shared_checks.py).
Whether the credential is still valid (revocation, expiry) is checked on every
request by the caller, through the catalog.

Failed checks count per username; too many lock that username out for a while
(it lifts by itself). A presented password that is in the cache still passes:
a crawler that authenticated is never locked out by someone guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .catalog import Catalog
from .errors import LockedOut
from .models import Clock
from .models import utcnow
from .passwords import dummy_hash
from .passwords import verify_password
from .shared_checks import SharedChecks

CRAWLER = "crawler"
OWNER = "owner"
#: At most this many slow hashes run at once per process: each takes ~32 MiB and
#: ~100 ms, so a burst of guesses must queue rather than exhaust memory.
SLOW_CHECKS_AT_ONCE = 2


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as."""

    kind: str
    username: str
    #: The crawler credential's id (None for the owner).
    credential_id: int | None = None


class VerifiedCache:
    """A bounded memory of successful password checks that expires when unused.

    With ``shared`` (made by the server's master process, see
    :mod:`archive.shared_checks`), a check one worker made also spares the
    other workers the slow hash.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 4096, shared: SharedChecks | None = None) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._shared = shared
        self._key = shared.key if shared is not None else secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, kind: str, username: str, password: str) -> bytes:
        message = "\0".join((kind, username, password)).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, kind: str, username: str, password: str) -> Principal | None:
        digest = self._digest(kind, username, password)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None and entry[0] >= now:
                self._entries[digest] = (now + self._ttl, entry[1])
                self._entries.move_to_end(digest)
                return entry[1]
            if entry is not None:
                del self._entries[digest]
        credential_id = self._shared.get(digest) if self._shared is not None and kind == CRAWLER else None
        if credential_id is None:
            return None
        principal = Principal(kind, username, credential_id)
        self._keep(digest, principal)
        return principal

    def put(self, kind: str, username: str, password: str, principal: Principal) -> None:
        if self._ttl <= 0:
            return
        digest = self._digest(kind, username, password)
        self._keep(digest, principal)
        if self._shared is not None and principal.credential_id is not None:
            self._shared.put(digest, principal.credential_id, self._ttl)

    def _keep(self, digest: bytes, principal: Principal) -> None:
        with self._lock:
            self._entries[digest] = (time.monotonic() + self._ttl, principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class Lockout:
    """Count failures per username in memory; lock a username after too many."""

    def __init__(self, max_failures: int = 10, seconds: float = 300, max_entries: int = 10_000) -> None:
        self.max_failures = max_failures
        self.seconds = seconds
        self._max = max_entries
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, username: str) -> None:
        """Raise :class:`LockedOut` while ``username`` is locked out."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if t > now - self.seconds]
            if len(recent) >= self.max_failures:
                raise LockedOut(username, max(1, math.ceil(recent[-self.max_failures] + self.seconds - now)))

    def fail(self, username: str) -> None:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.pop(username, []) if t > now - self.seconds]
            self._failures[username] = [*recent, now][-self.max_failures :]
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)

    def succeed(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


class Authenticator:
    """Verify crawler and owner passwords against the catalog's slow hashes."""

    def __init__(
        self,
        catalog: Catalog,
        cache_seconds: float = 300,
        clock: Clock = utcnow,
        lockout: Lockout | None = None,
        shared: SharedChecks | None = None,
    ) -> None:
        self.catalog = catalog
        self.cache = VerifiedCache(cache_seconds, shared=shared)
        self.clock = clock
        self.lockout = lockout or Lockout()
        self._slow = threading.BoundedSemaphore(SLOW_CHECKS_AT_ONCE)

    def _verify(self, username: str, stored: str, password: str) -> bool:
        self.lockout.check(username)
        with self._slow:
            ok = verify_password(stored, password)
        if ok:
            self.lockout.succeed(username)
        else:
            self.lockout.fail(username)
        return ok

    def crawler(self, username: str, password: str) -> Principal | None:
        """Return the crawler principal if the password is right and the credential valid now.

        A cached success still needs the caller's per-request validity check
        (:meth:`Archive.find_download`, :meth:`Archive.credential_active`).

        :raises LockedOut: after too many failures for ``username``.
        """
        cached = self.cache.get(CRAWLER, username, password)
        if cached is not None:
            return cached
        credential = self.catalog.credential_by_username(username) if username else None
        if not self._verify(username, credential.password_hash if credential else dummy_hash(), password):
            return None
        assert credential is not None
        if not credential.active(self.clock()):
            return None
        principal = Principal(CRAWLER, credential.username, credential.id)
        self.cache.put(CRAWLER, username, password, principal)
        return principal

    def owner(self, username: str, password: str) -> Principal | None:
        """Return the owner principal if ``username`` and ``password`` are the owner's.

        Not cached: the owner makes few requests, and a password reset must
        take effect at once in every worker.

        :raises LockedOut: after too many failures.
        """
        owner = self.catalog.owner()
        known = owner is not None and hmac.compare_digest(owner[0].encode(), username.encode())
        stored = owner[1] if owner is not None and known else dummy_hash()
        if not self._verify(username, stored, password) or not known:
            return None
        return Principal(OWNER, username)
