"""Pligt's gunicorn worker: gthread, made to withstand slow clients, sized to the deposit crawler's work.

The deposit crawler sends at most a few requests a second to one host, each on
a new connection (../shared/CRAWLER.md); a server that serves it must above all
never be held up by other clients. So the worker is gunicorn's gthread with
three changes, each in a room of its own:

- gathering heads (:mod:`pligt.server.heads`): the main loop reads request
  heads without a thread (slowloris), limits connections per client, and
  closes connections gracefully without blocking;
- sending bodies (:mod:`pligt.server.bodies`): a local file's body goes out from
  the main loop as the client takes it (slow readers hold no thread);
- here: bodies are read under a minimum pace (:mod:`pligt.server.pacing`), and a
  lone kept-alive connection keeps its thread for its next request.

A lone connection. Every request on a kept-alive connection makes a round
trip between threads: the main thread's poller sees the request and hands the
connection to a pool thread, which serves it and hands it back (two thread
wake-ups and four system calls per request). A harvester fetching files one
after another on one connection (wget, httrack) pays that on each of its
thousands of requests. So when a worker has just this one connection, the pool
thread that answered waits a moment for the next request and serves it itself,
if its headers are already complete. With more connections open nothing
changes: threads that stayed with their connections would compete for the GIL.

It stands on gunicorn's internals, read against gunicorn 27.0.1 (pinned);
tests/test_gunicorn_pin.py fails when the code it overrides or reads changes.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

from pligt.server.bodies import BodySending
from pligt.server.heads import HeadGathering
from pligt.server.heads import headers_complete
from pligt.server.pacing import HEADER_MAX_BYTES
from pligt.server.pacing import PacedUnreader

#: How long a thread waits for the next request of a lone connection before handing it back.
LINGER_SECONDS = 0.002


class PligtWorker(HeadGathering, BodySending):
    """gthread with request heads gathered and file bodies sent by the main loop, paced bodies, a lone connection."""

    def murder_pending(self) -> None:
        """gthread's, then drop what the main loop waited on too long: heads, lingering closes, idle readers."""
        super().murder_pending()
        now = time.monotonic()
        self.expire_heads(now)
        self.expire_sends(now)

    def handle(self, conn: Any) -> Any:
        """Serve the request whose head was gathered (and, on a lone connection, the ones that follow)."""
        self._pace(conn)
        keepalive: Any = super().handle(conn)
        while keepalive is True and self._next_request_comes(conn):
            self._pace(conn)
            keepalive = super().handle(conn)
        return keepalive

    @staticmethod
    def _pace(conn: Any) -> None:
        parser = conn.parser
        if parser is None or conn.is_http2:
            return
        if not isinstance(parser.unreader, PacedUnreader):
            paced = PacedUnreader(conn.sock)
            paced.unread(parser.unreader.take_buffered())
            parser.unreader = paced
        parser.unreader.restart()

    def _next_request_comes(self, conn: Any) -> bool:
        """Tell whether the next request's whole head is already here (read ahead, or in the socket)."""
        if not self.alive or conn.is_http2 or self.nr_conns != 1:
            return False
        buffered = conn.parser.unreader.buf.getvalue()
        if buffered:
            return headers_complete(buffered)
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        if not poller.poll(LINGER_SECONDS * 1000):
            return False
        try:
            waiting = conn.sock.recv(HEADER_MAX_BYTES, socket.MSG_PEEK)
        except OSError:
            return False
        return headers_complete(waiting)
