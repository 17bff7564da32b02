"""Which crawler credential each open connection proved, so that its later anonymous requests count.

Heritrix fetches every URL without credentials first, so the public files it
harvests arrive anonymously. When such a request comes on a kept-alive
connection on which an earlier request had proved a crawler credential, it is
attributed to that credential (recorded ``via="connection"``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any


class ConnectionCredentials:
    """The crawler credential each open connection of this worker was last verified with.

    How strong that is: a TCP connection joins one client to this server, so the
    anonymous request came from the program that had proved the credential on
    the same connection a moment before, the deposit institution's crawler. It
    is weaker than a credential on the request itself (that program could
    fetch for someone else too), and it undercounts: a file fetched on a fresh
    connection (the deposit crawler opens one per request), or before any
    protected URL, stays anonymous. Behind a reverse proxy one upstream
    connection carries many clients' requests, so with ``trusted_proxies`` set
    nothing is attributed this way (``enabled`` false).

    No address is kept: the key is the connection's socket object itself
    (gunicorn's ``environ["gunicorn.socket"]``), held weakly, so an entry lives
    no longer than the connection; the value is the credential's id. In memory
    only, per worker (a connection belongs to one worker).
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._by_connection: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def carried(self, environ: Mapping[str, Any], credential_id: int | None) -> None:
        """Note the credential a request on this connection proved; None (the owner, a lapsed one): forget it."""
        connection = environ.get("gunicorn.socket") if self.enabled else None
        if connection is None:
            return
        with self._lock:
            if credential_id is None:
                self._by_connection.pop(connection, None)
            elif self._by_connection.get(connection) != credential_id:
                self._by_connection[connection] = credential_id

    def credential(self, environ: Mapping[str, Any]) -> int | None:
        """Return the credential this request's connection carried earlier, if any."""
        connection = environ.get("gunicorn.socket") if self.enabled else None
        if connection is None:
            return None
        with self._lock:
            return self._by_connection.get(connection)
