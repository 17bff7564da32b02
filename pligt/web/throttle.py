"""A rate limit per client for the public request form, in memory, across the server's workers.

The key is an HMAC of the client's address under a secret that lives only in
the server's memory: nothing here is persisted or logged, and even the memory
holds no address in the clear (MISSION, non-negotiable 4). With the server's
shared table (:class:`pligt.core.credentials.shared_checks.SharedChecks`, or with a PostgreSQL
catalog :class:`pligt.core.credentials.client_counts.CatalogCounts`) the limit holds
whichever worker, or app server, a request lands on; there, a client's count lapses after a
window without a request. Without it (tests, no shared memory), each process
counts alone, in a sliding window.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict

from pligt.core.credentials.client_counts import ClientCounts


class RateLimit:
    """At most ``limit`` events per ``window`` seconds per client."""

    def __init__(
        self, limit: int, window: float, max_clients: int = 10_000, shared: ClientCounts | None = None
    ) -> None:
        self.limit = limit
        self.shared = shared
        self.window = window
        self._max = max_clients
        self._key = secrets.token_bytes(32)
        self._events: OrderedDict[bytes, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, client: str) -> int:
        """Count one event; return 0 if allowed, else the seconds until it would be."""
        if self.shared is not None:
            now = time.monotonic()
            counted = self.shared.count_failures(
                self.shared.digest("request-form", client, ""), 1, self.limit, self.window, now
            )
            if counted is not None:  # None: the shared lock was not to be had in time; count here instead
                _, last, refused = counted
                return max(1, math.ceil(last + self.window - now)) if refused else 0
        key = hmac.new(self._key, client.encode("utf-8"), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._events.pop(key, []) if t > now - self.window]
            if len(recent) >= self.limit:
                self._events[key] = recent
                return max(1, math.ceil(recent[0] + self.window - now))
            self._events[key] = [*recent, now]
            while len(self._events) > self._max:
                self._events.popitem(last=False)
            return 0
