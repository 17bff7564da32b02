"""The worker's main loop gathers each request's head without a thread, and closes connections gracefully.

In gunicorn's gthread worker a pool thread reads each request's line and
headers itself, blocking: a few dozen clients sending one header byte a second
(slowloris) hold every thread, and nobody else is served. Here the main loop
gathers the request line and headers without a thread (non-blocking reads on
its poller) and hands a connection to the pool only once its headers are
complete; what is not complete within :data:`~pligt.server.pacing.HEADER_SECONDS`
is dropped with a 408.

Gunicorn's graceful close (RFC 9112 §9.6: send FIN, then read what the client
still sends, up to 2 s) blocks the main loop; a client that trickles keeps it
there for the whole 2 s, and forty of them stop the worker for a minute. Here
that lingering happens in the poller. One client address may hold at most
``max_per_client`` connections per worker.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker

from pligt.server.pacing import HEADER_MAX_BYTES
from pligt.server.pacing import HEADER_SECONDS

_BUSY_ANSWER = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE_ANSWER = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

#: A graceful close waits this long (and for this much) for the client's last bytes, off-thread.
CLOSE_LINGER_SECONDS = 2.0
CLOSE_DRAIN_BYTES = 65536


def headers_complete(data: bytes | bytearray) -> bool:
    """Tell whether ``data`` holds a whole request head (up to its blank line)."""
    return b"\r\n\r\n" in data or b"\n\n" in data


class PligtConn(TConn):
    """A connection whose graceful close lingers in the worker's poller, not on its main thread."""

    linger: Callable[[PligtConn], None] | None = None
    #: Told once when the connection is gone (the worker's count per client).
    on_closed: Callable[[], None] | None = None

    def close(self, graceful: bool = False) -> None:
        if graceful and self.linger is not None:
            self.linger(self)
            return
        super().close(graceful)
        self.closed()

    def closed(self) -> None:
        """Tell the worker, once, that the connection is gone."""
        done, self.on_closed = self.on_closed, None
        if done is not None:
            done()


class HeadGathering(ThreadWorker):
    """gthread whose main loop gathers request heads, limits connections per client, and closes gracefully."""

    #: Open connections one client address may hold in this worker (0: no limit); set by the server.
    max_per_client = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Open connections per client address, in this process's memory only, while they are open.
        self.per_client: Counter[str] = Counter()
        #: Connections whose request head is still arriving: connection -> (deadline, bytes so far).
        self.gathering: dict[Any, tuple[float, bytearray]] = {}
        #: Connections closing gracefully: connection -> (deadline, bytes drained).
        self.closing: dict[Any, tuple[float, int]] = {}

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and wait, without a thread, for its first request head."""
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        peer = str(address[0]) if isinstance(address, tuple) else ""
        if self.max_per_client and self.per_client[peer] >= self.max_per_client:
            with contextlib.suppress(OSError):
                client.send(_BUSY_ANSWER)
            client.close()
            return
        self.per_client[peer] += 1
        self.nr_conns += 1
        conn = PligtConn(self.cfg, client, address, listener.getsockname())  # non-blocking from here
        conn.linger = self._close_lingering
        conn.on_closed = partial(self._forget, peer)
        if self.cfg.is_ssl:  # TLS is the proxy's job; a TLS socket is left to gunicorn's own path
            client.setblocking(True)
            self.enqueue_req(conn)
            return
        self.gathering[conn] = (time.monotonic() + HEADER_SECONDS, bytearray())
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        """A kept-alive connection starts its next request: gather its head, from the bytes here already."""
        self.keepalived_conns.remove(conn)
        self.gathering[conn] = (time.monotonic() + HEADER_SECONDS, bytearray())
        # The same events with another callback: selectors makes no system call for that.
        self.poller.modify(client, selectors.EVENT_READ, partial(self._on_head_bytes, conn))
        self._on_head_bytes(conn, client)

    def _on_head_bytes(self, conn: Any, client: socket.socket) -> None:
        try:
            data = client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        head = self.gathering[conn][1]
        head += data
        if headers_complete(head):
            del self.gathering[conn]
            conn.init()  # the parser exists (a new connection's socket is blocking now)
            conn.parser.unreader.unread(bytes(head))
            conn.data_ready = True
            self.poller.unregister(client)
            self.enqueue_req(conn)
        elif len(head) > HEADER_MAX_BYTES:
            self._drop(conn, _TOO_LARGE_ANSWER)

    def _drop(self, conn: Any, answer: bytes = b"") -> None:
        self.gathering.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)  # best effort: the socket is non-blocking
        self.nr_conns -= 1
        conn.close()

    def expire_heads(self, now: float) -> None:
        """Drop connections whose request head did not arrive in time; end lingering closes."""
        for conn in [c for c, (deadline, _) in self.gathering.items() if deadline <= now]:
            self._drop(conn, _TIMEOUT_ANSWER)
        for conn in [c for c, (deadline, _) in self.closing.items() if deadline <= now]:
            self._closed(conn)

    def _close_lingering(self, conn: PligtConn) -> None:
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_closing_bytes, conn))
        except (OSError, ValueError, KeyError):
            TConn.close(conn)
            conn.closed()
            return
        self.closing[conn] = (time.monotonic() + CLOSE_LINGER_SECONDS, 0)

    def _on_closing_bytes(self, conn: PligtConn, client: socket.socket) -> None:
        try:
            data = client.recv(CLOSE_DRAIN_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        deadline, drained = self.closing[conn]
        drained += len(data)
        if not data or drained >= CLOSE_DRAIN_BYTES:
            self._closed(conn)
        else:
            self.closing[conn] = (deadline, drained)

    def _closed(self, conn: PligtConn) -> None:
        del self.closing[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        TConn.close(conn)
        conn.closed()

    def _forget(self, peer: str) -> None:
        self.per_client[peer] -= 1
        if self.per_client[peer] <= 0:
            del self.per_client[peer]
