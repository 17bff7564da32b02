"""Gunicorn's threaded worker, staying with a lone connection while its client keeps asking.

In gunicorn's gthread worker every request on a kept-alive connection makes a
round trip between threads: the main thread's poller sees the request and
hands the connection to a pool thread, which serves it and hands it back to be
watched again (two thread wake-ups and four system calls per request). A
harvester fetching files one after another on one connection (wget; a crawler
without a politeness delay) pays that on each of its thousands of requests.

So when a worker has just this one connection, the pool thread that answered
waits a moment for the next request and serves it itself. With more
connections open nothing changes: threads that stayed with their connections
would compete for the GIL, and the latency of all would grow (measured).
"""

from __future__ import annotations

import select
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How long a thread waits for the next request of a lone connection before handing it back.
LINGER_SECONDS = 0.002


class LingeringThreadWorker(ThreadWorker):
    def handle(self, conn: Any) -> Any:
        keepalive = super().handle(conn)
        while keepalive is True and self._next_request_comes(conn):
            keepalive = super().handle(conn)
        return keepalive

    def _next_request_comes(self, conn: Any) -> bool:
        if not self.alive or conn.is_http2 or self.nr_conns != 1:
            return False
        if conn.parser.unreader.buf.getvalue():  # already read ahead
            return True
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(LINGER_SECONDS * 1000))
