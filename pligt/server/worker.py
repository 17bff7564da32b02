"""Gunicorn's threaded worker, made to withstand slow clients and to stay with a lone connection.

Slow clients. In gunicorn's gthread worker a pool thread reads each request's
line and headers itself, blocking: a few dozen clients sending one header byte
a second (slowloris) hold every thread, and nobody else is served. Here the
worker's main loop gathers the request line and headers without a thread
(non-blocking reads on its poller) and hands a connection to the pool only
once its headers are complete; what is not complete within
:data:`~pligt.server.pacing.HEADER_SECONDS` is dropped with a 408. Bodies are
read under a minimum pace (:mod:`pligt.server.pacing`).

A lone connection. Every request on a kept-alive connection makes a round
trip between threads: the main thread's poller sees the request and hands the
connection to a pool thread, which serves it and hands it back (two thread
wake-ups and four system calls per request). A harvester fetching files one
after another on one connection pays that on each of its thousands of
requests. So when a worker has just this one connection, the pool thread that
answered waits a moment for the next request and serves it itself, if its
headers are already complete. With more connections open nothing changes:
threads that stayed with their connections would compete for the GIL, and the
latency of all would grow (measured).

Slow readers. A thread that sends a file waits for the client to take it: fifty
downloads read slowly held fifty threads for minutes, and a worker whose 32
threads were all held answered nobody else (the kernel spreads connections over
the workers at random, so fifty of them sometimes filled one). So a thread
sends only the headers of a file's answer, and the main loop sends its body
(``sendfile``, without blocking) as the client takes it. A client that takes
nothing for :data:`SEND_IDLE_SECONDS` is dropped. A range of a local file is
sent so too (the fast path hands over the file where the range starts); a
body that is not a local file (S3) is still sent by its thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from datetime import datetime
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker

from pligt.server.pacing import HEADER_MAX_BYTES
from pligt.server.pacing import HEADER_SECONDS
from pligt.server.pacing import PacedUnreader

#: How long a thread waits for the next request of a lone connection before handing it back.
LINGER_SECONDS = 0.002

_BUSY_ANSWER = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE_ANSWER = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


#: A client that takes none of its answer for this long is dropped (the deposit crawler's own socket
#: timeout is 20 s: it has given up by then).
SEND_IDLE_SECONDS = 30.0
#: The most one ``sendfile`` from the main loop moves (bounds its pause on a file not in the page cache).
SEND_FILE_CHUNK = 1024 * 1024

#: A graceful close waits this long (and for this much) for the client's last bytes, off-thread.
CLOSE_LINGER_SECONDS = 2.0
CLOSE_DRAIN_BYTES = 65536


def _headers_complete(data: bytes | bytearray) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


class _Outgoing:
    """What is left of an answer, sent by the main loop as the client takes it: bytes, or a span of a file."""

    __slots__ = ("answer", "count", "data", "deadline", "fd", "keepalive", "offset")

    def __init__(
        self, answer: Any, keepalive: bool, data: bytes = b"", fd: int = -1, offset: int = 0, count: int = 0
    ) -> None:
        self.answer = answer
        self.keepalive = keepalive
        self.data = memoryview(data)
        self.fd, self.offset, self.count = fd, offset, count
        self.deadline = time.monotonic() + SEND_IDLE_SECONDS

    def send(self, sock: socket.socket) -> int:
        """Send what the non-blocking socket takes now; raise BlockingIOError if it takes nothing."""
        if self.data:
            sent = sock.send(self.data)
            self.data = self.data[sent:]
            return sent
        sent = os.sendfile(sock.fileno(), self.fd, self.offset, min(self.count, SEND_FILE_CHUNK))
        if not sent:  # the file ended before its announced length
            raise EOFError("the file is shorter than its answer")
        self.offset += sent
        self.count -= sent
        return sent

    @property
    def done(self) -> bool:
        return not self.data and self.count <= 0


class PligtConn(TConn):
    """A connection whose graceful close lingers in the worker's poller, not on its main thread.

    Gunicorn's graceful close (RFC 9112 §9.6: send FIN, then read what the client
    still sends, up to 2 s) blocks the main loop; a client that trickles keeps
    it there for the whole 2 s, and forty of them stop the worker for a minute.
    """

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


class PligtWorker(ThreadWorker):
    """gthread with the request head gathered off-thread, paced bodies, and a lingering lone connection."""

    #: Open connections one client address may hold in this worker (0: no limit); set by the server.
    max_per_client = 0
    #: gunicorn's: False once the worker is to stop (or restart after max_requests).
    alive: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Open connections per client address, in this process's memory only, while they are open.
        self.per_client: Counter[str] = Counter()
        #: Connections whose request head is still arriving: connection -> (deadline, bytes so far).
        self.gathering: dict[Any, tuple[float, bytearray]] = {}
        #: Connections closing gracefully: connection -> (deadline, bytes drained).
        self.closing: dict[Any, tuple[float, int]] = {}
        #: Connections whose answer the main loop is sending: connection -> what is left of it.
        self.sending: dict[Any, _Outgoing] = {}
    # -- gathering the request head in the main loop --------------------------------------

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
        self._gather(conn)

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        """A kept-alive connection starts its next request: gather its head, from the bytes here already."""
        self.keepalived_conns.remove(conn)
        self.gathering[conn] = (time.monotonic() + HEADER_SECONDS, bytearray())
        # The same events with another callback: selectors makes no system call for that.
        self.poller.modify(client, selectors.EVENT_READ, partial(self._on_head_bytes, conn))
        self._on_head_bytes(conn, client)

    def _gather(self, conn: Any) -> None:
        self.gathering[conn] = (time.monotonic() + HEADER_SECONDS, bytearray())
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

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
        if _headers_complete(head):
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

    def murder_pending(self) -> None:
        """Drop connections whose request head did not arrive in time; end lingering closes."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, (deadline, _) in self.gathering.items() if deadline <= now]:
            self._drop(conn, _TIMEOUT_ANSWER)
        for conn in [c for c, (deadline, _) in self.closing.items() if deadline <= now]:
            self._closed(conn)
        for conn in [c for c, out in self.sending.items() if out.deadline <= now]:
            self._sent(conn, False)

    def _count(self, resp: Any) -> None:
        """Count a request against max_requests, and close its connection after it where gthread would."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        if not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived:
            resp.force_close()

    # -- sending answers from the main loop, as the client takes them ---------------------------

    def _send_here(self, conn: Any, out: _Outgoing) -> None:
        """Send what the client takes at once; the main loop sends the rest when its socket is writable."""
        if conn.sock.gettimeout() != 0.0:
            conn.sock.setblocking(False)
        self.sending[conn] = out
        self._on_writable(conn, conn.sock)
        if conn in self.sending:
            callback = partial(self._on_writable, conn)
            try:
                self.poller.modify(conn.sock, selectors.EVENT_WRITE, callback)
            except KeyError:  # from a pool thread: the socket was not with the poller
                self.poller.register(conn.sock, selectors.EVENT_WRITE, callback)

    def _on_writable(self, conn: Any, client: socket.socket) -> None:
        out = self.sending[conn]
        try:
            out.send(client)
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, EOFError):  # the client is gone, or the file is cut short
            self._sent(conn, False)
            return
        out.deadline = time.monotonic() + SEND_IDLE_SECONDS
        if out.done:
            self._sent(conn, out.keepalive)

    def _sent(self, conn: Any, keepalive: bool) -> None:
        """The answer is sent (or given up): close it, and keep the connection for its next request or close it."""
        out = self.sending.pop(conn)
        if out.fd >= 0:
            with contextlib.suppress(OSError, ValueError):
                out.answer.filelike.seek(out.offset)  # as socket.sendfile leaves it: a download's record reads it
        self._close_answer(out.answer)
        self._finish(conn, keepalive)

    def finish_request(self, conn: Any, fs: futures.Future[Any]) -> None:
        """A pool thread is done with a connection: send what it left to send, else as gthread does."""
        out = fs.result() if not fs.cancelled() and fs.exception() is None else None
        if isinstance(out, _Outgoing):
            self._send_here(conn, out)
        else:
            super().finish_request(conn, fs)

    def _close_answer(self, answer: Any) -> None:
        close = getattr(answer, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                self.log.exception("Error closing an answer")

    def _finish(self, conn: Any, keepalive: bool) -> None:
        """Keep the connection for its next request, or close it, as gunicorn does after a pool thread's.

        The common case, a kept-alive connection with nothing more read yet, only
        changes its callback with the poller and joins the kept-alive queue.
        """
        try:
            self.poller.get_key(conn.sock)
        except KeyError:  # an answer a pool thread began: the socket is not with the poller
            registered = False
        else:
            registered = True
        if registered and keepalive and self.alive and not conn.parser.unreader.buf.getvalue():
            conn.set_timeout()
            self.keepalived_conns.append(conn)
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
            return
        if registered:
            self.poller.unregister(conn.sock)
        done: futures.Future[bool] = futures.Future()
        done.set_result(keepalive)
        self.finish_request(conn, done)

    # -- closing gracefully without blocking the main loop ---------------------------------------

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

    # -- paced bodies and the lone connection, in the pool's threads ---------------------------

    def handle(self, conn: Any) -> Any:
        """Serve the request whose head was gathered (and, on a lone connection, the ones that follow)."""
        self._pace(conn)
        keepalive: Any = super().handle(conn)
        while keepalive is True and self._next_request_comes(conn):
            self._pace(conn)
            keepalive = super().handle(conn)
        return keepalive

    def handle_request(self, req: Any, conn: Any) -> bool | _Outgoing:
        """gthread's, except that a local file's body is left to the main loop (see :meth:`_file_body`).

        Returns whether to keep the connection, or what is left to send.
        """
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            started = datetime.now()
            resp, environ = wsgi.create(req, conn.sock, conn.client, conn.server, self.cfg)
            environ["wsgi.multithread"] = True
            self._count(resp)
            answer = self.wsgi(environ, resp.start_response)
            rest = None
            try:
                if isinstance(answer, environ["wsgi.file_wrapper"]):
                    rest = self._file_body(resp, answer)
                    if rest is None:
                        resp.write_file(answer)
                else:
                    for item in answer:
                        resp.write(item)
                if rest is None:
                    resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - started)
                if rest is None and hasattr(answer, "close"):
                    answer.close()
            if rest is not None:
                rest.keepalive = not resp.should_close()
                return rest
            if resp.should_close():
                return False
        except OSError:
            raise
        except (Exception, SystemExit):
            if resp and resp.headers_sent:  # a 500 now would corrupt the answer begun
                self.log.exception("Error handling request")
                util.close_graceful(conn.sock)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return True

    def _file_body(self, resp: Any, answer: Any) -> _Outgoing | None:
        """Send the headers of a local file's answer and return its body for the main loop to send.

        None where gunicorn's own ``sendfile`` would not be used (TLS, no
        descriptor, a HEAD, a chunked answer): the thread then sends it as before.
        """
        if self.cfg.is_ssl or not resp.can_sendfile() or resp.is_chunked() or not util.has_fileno(answer.filelike):
            return None
        fd = answer.filelike.fileno()
        try:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            count = os.fstat(fd).st_size - offset if resp.response_length is None else resp.response_length
        except OSError:
            return None
        if resp._omits_body:  # a HEAD, a 304: gunicorn sends the headers alone
            return None
        resp.send_headers()
        return _Outgoing(answer, False, fd=fd, offset=offset, count=count)

    def _keepalive_after(self, conn: Any, keepalive: bool | _Outgoing) -> bool | _Outgoing:
        """gthread's (drain an unread body), for an answer left to the main loop too."""
        if isinstance(keepalive, _Outgoing):
            keepalive.keepalive = bool(super()._keepalive_after(conn, keepalive.keepalive))
            return keepalive
        return bool(super()._keepalive_after(conn, keepalive))

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
            return _headers_complete(buffered)
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        if not poller.poll(LINGER_SECONDS * 1000):
            return False
        try:
            waiting = conn.sock.recv(HEADER_MAX_BYTES, socket.MSG_PEEK)
        except OSError:
            return False
        return _headers_complete(waiting)
