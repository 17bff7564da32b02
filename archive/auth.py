"""Checking crawler and owner passwords without paying the slow hash on every request.

A crawler fetches thousands of files in a burst with the same credentials, and
one scrypt check costs ~100 ms and 32 MiB. Successful checks are remembered
for a short time, keyed by an HMAC of the presented username and password
under a per-process secret, so the cache never holds a password. Whether the
credential is still valid (revocation, expiry) is checked on every request by
the caller, through the catalog.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .catalog import Catalog
from .models import Credential
from .models import utcnow
from .passwords import dummy_hash
from .passwords import verify_password

CRAWLER = "crawler"
OWNER = "owner"


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as."""

    kind: str
    username: str
    #: The crawler credential's id (None for the owner).
    credential_id: int | None = None


class VerifiedCache:
    """A bounded, expiring memory of successful password checks."""

    def __init__(self, ttl_seconds: float, max_entries: int = 4096) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, kind: str, username: str, password: str) -> bytes:
        message = "\0".join((kind, username, password)).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, kind: str, username: str, password: str) -> Principal | None:
        digest = self._digest(kind, username, password)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry[1]

    def put(self, kind: str, username: str, password: str, principal: Principal) -> None:
        digest = self._digest(kind, username, password)
        with self._lock:
            self._entries[digest] = (time.monotonic() + self._ttl, principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: At most this many slow hashes run at once per process: each takes ~32 MiB and
#: ~100 ms, so a burst of guesses must queue rather than exhaust memory.
SLOW_CHECKS_AT_ONCE = 2


class Authenticator:
    """Verify crawler and owner passwords against the catalog's slow hashes."""

    def __init__(self, catalog: Catalog, cache_seconds: float = 300, clock=utcnow) -> None:  # noqa: ANN001
        self.catalog = catalog
        self.cache = VerifiedCache(cache_seconds)
        self.clock = clock
        self._slow = threading.BoundedSemaphore(SLOW_CHECKS_AT_ONCE)

    def _verify(self, stored: str, password: str) -> bool:
        with self._slow:
            return verify_password(stored, password)

    def crawler(self, username: str, password: str) -> Principal | None:
        """Return the crawler principal if the password is right and the credential valid now.

        A cached success still needs the caller's per-request validity check
        (see :meth:`Catalog.find_download` and :meth:`credential_active`).
        """
        cached = self.cache.get(CRAWLER, username, password)
        if cached is not None:
            return cached
        credential = self.catalog.credential_by_username(username) if username else None
        if not self._verify(credential.password_hash if credential else dummy_hash(), password):
            return None
        assert credential is not None
        if not credential.active(self.clock()):
            return None
        principal = Principal(CRAWLER, credential.username, credential.id)
        self.cache.put(CRAWLER, username, password, principal)
        return principal

    def credential_active(self, principal: Principal) -> bool:
        """Tell whether a crawler principal's credential is still valid (not revoked or expired)."""
        if principal.credential_id is None:
            return False
        credential: Credential | None = self.catalog.get_credential(principal.credential_id)
        return credential is not None and credential.active(self.clock())

    def owner(self, username: str, password: str) -> Principal | None:
        """Return the owner principal if ``username`` and ``password`` are the owner's.

        Not cached: the owner makes few requests, and a password reset must
        take effect at once in every worker.
        """
        owner = self.catalog.owner()
        known = owner is not None and hmac.compare_digest(owner[0].encode(), username.encode())
        stored = owner[1] if owner is not None and known else dummy_hash()
        if not self._verify(stored, password) or not known:
            return None
        return Principal(OWNER, username)
