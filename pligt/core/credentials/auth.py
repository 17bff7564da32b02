"""Checking crawler and owner passwords without paying the slow hash on every request.

A crawler fetches thousands of files in a burst with the same credentials, and
one scrypt check costs ~100 ms and 32 MiB. Successful checks are remembered
(sliding: each use extends them), keyed by an HMAC of the presented username
and password under a secret held only in memory, so the cache never holds a
password; the workers of one server share them (pligt/core/credentials/shared_checks.py).
Whether the credential is still valid (revocation, expiry) is checked on every
request by the caller, through the catalog.

Failed checks count per guessing client, never per username: a username
cannot be locked, so no one can lock the crawler (or the owner) out by guessing
its password, and a correct password from any other client is checked and
accepted, whether its check is cached, lapsed, or the server just restarted
(Heritrix takes a 429 or 503 as final for that URL until the next harvest).
A client with too many failures (:class:`Guessers`) gets its passwords refused
(429) without a check until it has been quiet for a while; a password verified
before (in the cache) still passes, even from that client, so that a crawler
sharing its address with a guesser (one NAT, one proxy) goes on harvesting.
Per username there is only cost: the slow hash on every check, two at a time
per process, and a warning in the log that names the username, never the
client's address, which is kept only as an HMAC under a secret in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pligt.core.catalog import Catalog
from pligt.core.credentials.client_counts import ClientCounts
from pligt.core.credentials.passwords import dummy_hash
from pligt.core.credentials.passwords import verify_password
from pligt.core.credentials.shared_checks import SharedChecks
from pligt.core.credentials.shared_checks import failures_after
from pligt.core.errors import LockedOut
from pligt.core.models import Clock
from pligt.core.models import utcnow

log = logging.getLogger("pligt")

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
    :mod:`pligt.core.credentials.shared_checks`), a check one worker made also spares the
    other workers the slow hash.
    """

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 4096,
        shared: SharedChecks | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._shared = shared
        self._monotonic = monotonic
        self._key = shared.key if shared is not None else secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, kind: str, username: str, password: str) -> bytes:
        message = "\0".join((kind, username, password)).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, kind: str, username: str, password: str) -> Principal | None:
        digest = self._digest(kind, username, password)
        now = self._monotonic()
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
            self._entries[digest] = (self._monotonic() + self._ttl, principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class Guessers:
    """Failed password checks per client, in memory only; a client with too many is refused a while.

    A client is known only by an HMAC of its address under a secret that lives
    in this process (or, with ``shared``, in the server's processes): nothing
    here is stored or logged, and the memory holds no address in the clear.
    A check is counted as a failure while it runs (and refunded if the password
    was right), so that concurrent guesses cannot overshoot the limit. Failures
    lapse once the client has been quiet for ``seconds``; with ``shared``, every
    worker of the server counts into the same table.
    """

    def __init__(
        self,
        max_failures: int = 10,
        seconds: float = 300,
        *,
        shared: ClientCounts | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.seconds = seconds
        self._shared = shared
        self._key = shared.key if shared is not None else secrets.token_bytes(32)
        self._monotonic = monotonic
        self._max = max_entries
        self._clients: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        #: Failures per username (count, first at), for the owner's log only: never a refusal.
        self._usernames: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, address: str) -> bytes:
        """Return the HMAC a client's address is counted under (the address itself is kept nowhere)."""
        return hmac.new(self._key, b"client\0" + address.encode("utf-8"), hashlib.sha256).digest()

    def check(self, client: bytes) -> None:
        """Raise :class:`LockedOut` while ``client`` is refused."""
        self._change(client, 0)

    def reserve(self, client: bytes) -> None:
        """Count a check about to run as a failure; refund it with :meth:`refund` if the password was right.

        :raises LockedOut: when ``client`` has failed too often; nothing is counted then.
        """
        self._change(client, 1)

    def refund(self, client: bytes) -> None:
        self._change(client, -1)

    def failed(self, client: bytes, username: str) -> None:
        """Record that the reserved check failed; tell the owner in the log when it matters."""
        now = self._monotonic()
        with self._lock:
            failures, first = self._usernames.pop(username, (0, now))
            if first + self.seconds <= now:
                failures, first = 0, now
            failures += 1
            self._usernames[username] = (failures, first)
            while len(self._usernames) > self._max:
                self._usernames.popitem(last=False)
        count, _, _ = self._counted(client, 0, now)
        name = username[:64]
        if count == self.max_failures:
            log.warning(
                "password checks: refusing a client for %d s after %d failed checks, the last for username %r "
                "(%d failed for it in the last %d s); a correct password from any other client is still "
                "accepted. The client's address is not recorded.",
                self.seconds,
                count,
                name,
                failures,
                self.seconds,
            )
        elif failures % self.max_failures == 0:
            log.warning(
                "password checks: %d failed for username %r in the last %d s; its correct password is still "
                "accepted, and each client that fails %d times is refused for %d s.",
                failures,
                name,
                self.seconds,
                self.max_failures,
                self.seconds,
            )

    def _change(self, client: bytes, delta: int) -> None:
        now = self._monotonic()
        _, last, refused = self._counted(client, delta, now)
        if refused:
            raise LockedOut(max(1, math.ceil(last + self.seconds - now)))

    def _counted(self, client: bytes, delta: int, now: float) -> tuple[int, float, bool]:
        if self._shared is not None:
            counted = self._shared.count_failures(client, delta, self.max_failures, self.seconds, now)
            if counted is not None:
                return counted
            # The shared lock was not had in time (a worker died holding it): count here alone.
        with self._lock:
            count, last, refused = failures_after(
                self._clients.pop(client, (0, 0.0)), delta, self.max_failures, self.seconds, now
            )
            if count:
                self._clients[client] = (count, last)
            while len(self._clients) > self._max:
                self._clients.popitem(last=False)
            return count, last, refused


class Authenticator:
    """Verify crawler and owner passwords against the catalog's slow hashes.

    :param max_failures: failed checks after which a client's passwords are
        refused unchecked (429) until it has been quiet for ``refusal_seconds``.
    :param counts: where failed checks are counted when not in ``shared``
        (:class:`~pligt.core.credentials.client_counts.CatalogCounts`, for servers on several machines).
    :param monotonic: the clock the cache and the failure counts run on; tests
        pass their own (the shared table across workers keeps real time).
    """

    def __init__(
        self,
        catalog: Catalog,
        cache_seconds: float = 300,
        clock: Clock = utcnow,
        *,
        max_failures: int = 10,
        refusal_seconds: float = 300,
        shared: SharedChecks | None = None,
        counts: ClientCounts | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.cache = VerifiedCache(cache_seconds, shared=shared, monotonic=monotonic)
        self.clock = clock
        # Failures are counted where every server that may see the client counts: the catalog
        # when several machines share it (``counts``), else this machine's shared memory.
        self.guessers = Guessers(
            max_failures, refusal_seconds, shared=counts if counts is not None else shared, monotonic=monotonic
        )
        self._slow = threading.BoundedSemaphore(SLOW_CHECKS_AT_ONCE)

    def crawler(self, username: str, password: str, *, client: str) -> Principal | None:
        """Return the crawler principal if the password is right and the credential valid now.

        A cached success still needs the caller's per-request validity check
        (:meth:`Archive.find_download`, :meth:`Archive.credential_active`).

        :param client: the client's address, counted (as an HMAC) when the check fails.
        :raises LockedOut: when ``client`` failed too often and the password is not a cached success.
        """
        cached = self.cache.get(CRAWLER, username, password)
        if cached is not None:
            return cached
        credential = self.catalog.credential_by_username(username) if username else None
        stored = credential.password_hash if credential else dummy_hash()
        if not self._verify(CRAWLER, username, stored, password, client):
            return None
        cached = self.cache.get(CRAWLER, username, password)
        if cached is not None:  # verified by a check this one waited for
            return cached
        assert credential is not None
        if not credential.active(self.clock()):
            return None
        principal = Principal(CRAWLER, credential.username, credential.id)
        self.cache.put(CRAWLER, username, password, principal)
        return principal

    def owner(self, username: str, password: str, *, client: str) -> Principal | None:
        """Return the owner principal if ``username`` and ``password`` are the owner's.

        A success is remembered in this process only, under the stored hash as
        well: a new owner password misses it at once, in every worker.

        :param client: the client's address, counted (as an HMAC) when the check fails.
        :raises LockedOut: when ``client`` failed too often and the password is not a remembered success.
        """
        owner = self.catalog.owner()
        known = owner is not None and hmac.compare_digest(owner[0].encode(), username.encode())
        stored = owner[1] if owner is not None and known else dummy_hash()
        remembered = f"{stored}\0{password}"
        if known and self.cache.get(OWNER, username, remembered) is not None:
            return Principal(OWNER, username)
        if not self._verify(OWNER, username, stored, password, client) or not known:
            return None
        principal = Principal(OWNER, username)
        self.cache.put(OWNER, username, remembered, principal)
        return principal

    def _verify(self, kind: str, username: str, stored: str, password: str, client: str) -> bool:
        """Run the slow check, counted against ``client`` while it runs and kept as a failure if it fails."""
        guesser = self.guessers.key(client)
        self.guessers.check(guesser)  # refused at once, not after queueing for the slow hash
        with self._slow:
            remembered = password if kind == CRAWLER else f"{stored}\0{password}"
            if self.cache.get(kind, username, remembered) is not None:
                return True  # the same password was verified while this check waited its turn
            self.guessers.reserve(guesser)
            ok = verify_password(stored, password)
        if ok:
            self.guessers.refund(guesser)
        else:
            self.guessers.failed(guesser, username)
        return ok
