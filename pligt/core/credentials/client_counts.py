"""Per-client counts (the password lock-out, the request-form limit) for app servers on several machines.

One machine's workers count in shared memory (:mod:`pligt.core.credentials.shared_checks`);
servers on different machines share only the catalog, so with a PostgreSQL
catalog the counts live there (``client_counts``). A client is known by an
HMAC of its address under a key derived from the instance's secret key (which
every app server of the instance holds): no address is stored, and a count is
deleted once its client has been quiet past the window (at most the hour of
the request-form limit). The table's clock is the wall clock, the same on every
machine; callers keep counting in their own monotonic clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Protocol

from pligt.core.catalog import Catalog
from pligt.core.credentials.shared_checks import failures_after
from pligt.core.errors import StorageError


class ClientCounts(Protocol):
    """Where failed checks and form requests are counted: shared memory, or the catalog."""

    key: bytes

    def digest(self, kind: str, username: str, password: str) -> bytes: ...

    def count_failures(
        self, client: bytes, delta: int, limit: int, quiet: float, now: float
    ) -> tuple[int, float, bool] | None: ...


class CatalogCounts:
    """Counts per client in the catalog, seen by every app server at once."""

    def __init__(self, catalog: Catalog, secret: bytes, *, wall: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self.key = hmac.new(secret, b"pligt client counts", hashlib.sha256).digest()
        self._wall = wall

    def digest(self, kind: str, username: str, password: str) -> bytes:
        return hmac.new(self.key, "\0".join((kind, username, password)).encode("utf-8"), hashlib.sha256).digest()

    def count_failures(
        self, client: bytes, delta: int, limit: int, quiet: float, now: float
    ) -> tuple[int, float, bool] | None:
        """Count as :meth:`Catalog.count_client` does, by the lock-out's rule, in the caller's clock ``now``.

        None when the catalog cannot answer (busy, unreachable): the caller counts in its process meanwhile.
        """
        wall = self._wall()
        try:
            count, last, refused = self.catalog.count_client(
                client.hex(), delta, limit, quiet, wall, rule=failures_after
            )
        except StorageError:
            return None
        return count, (now + last - wall) if last else 0.0, refused
