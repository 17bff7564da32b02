"""An in-memory rate limit per client, for the public request form.

The key is an HMAC of the client's address under a secret that lives only in
this process's memory: nothing here is persisted or logged, and even the
memory holds no address in the clear (MISSION, non-negotiable 4).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict


class RateLimit:
    """At most ``limit`` events per ``window`` seconds per client."""

    def __init__(self, limit: int, window: float, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self._max = max_clients
        self._key = secrets.token_bytes(32)
        self._events: OrderedDict[bytes, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, client: str) -> int:
        """Count one event; return 0 if allowed, else the seconds until it would be."""
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
