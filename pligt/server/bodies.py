"""The worker's main loop sends the bodies of local files, as each client takes them.

A thread that sends a file waits for the client to take it: fifty downloads
read slowly held fifty threads for minutes, and a worker whose 32 threads were
all held answered nobody else (the kernel spreads connections over the workers
at random, so fifty of them sometimes filled one). So a pool thread sends only
the headers of a local file's answer, and the main loop sends its body
(``sendfile``, without blocking) as the client takes it, as nginx does. A
client that takes nothing for :data:`SEND_IDLE_SECONDS` is dropped. A range of
a local file is sent so too (the download layer hands over the file where the
range starts); a body that is not a local file (S3) is still sent by its thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from concurrent import futures
from datetime import datetime
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker

#: A client that takes none of its answer for this long is dropped (the deposit crawler's own socket
#: timeout is 20 s: it has given up by then).
SEND_IDLE_SECONDS = 30.0
#: The most one ``sendfile`` from the main loop moves (bounds its pause on a file not in the page cache).
SEND_FILE_CHUNK = 1024 * 1024


class Outgoing:
    """The rest of a local file's answer (a span of the file), sent by the main loop as the client takes it."""

    __slots__ = ("answer", "count", "deadline", "fd", "keepalive", "offset")

    def __init__(self, answer: Any, fd: int, offset: int, count: int) -> None:
        self.answer = answer
        #: Whether the connection is kept for another request once the body is sent.
        self.keepalive = False
        self.fd, self.offset, self.count = fd, offset, count
        self.deadline = time.monotonic() + SEND_IDLE_SECONDS

    def send(self, sock: socket.socket) -> int:
        """Send what the non-blocking socket takes now; raise BlockingIOError if it takes nothing."""
        sent = os.sendfile(sock.fileno(), self.fd, self.offset, min(self.count, SEND_FILE_CHUNK))
        if not sent:  # the file ended before its announced length
            raise EOFError("the file is shorter than its answer")
        self.offset += sent
        self.count -= sent
        return sent

    @property
    def done(self) -> bool:
        return self.count <= 0


class BodySending(ThreadWorker):
    """gthread whose pool threads leave the bodies of local files to the main loop."""

    #: gunicorn's: False once the worker is to stop (or restart after max_requests).
    alive: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Connections whose answer the main loop is sending: connection -> what is left of it.
        self.sending: dict[Any, Outgoing] = {}

    # -- in a pool thread: the answer, but for a local file's body ------------------------------

    def handle_request(self, req: Any, conn: Any) -> bool | Outgoing:
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

    def _count(self, resp: Any) -> None:
        """Count a request against max_requests, and close its connection after it where gthread would."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        if not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived:
            resp.force_close()

    def _file_body(self, resp: Any, answer: Any) -> Outgoing | None:
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
        return Outgoing(answer, fd, offset, count)

    def _keepalive_after(self, conn: Any, keepalive: bool | Outgoing) -> bool | Outgoing:
        """gthread's (drain an unread body), for an answer left to the main loop too."""
        if isinstance(keepalive, Outgoing):
            keepalive.keepalive = bool(super()._keepalive_after(conn, keepalive.keepalive))
            return keepalive
        return bool(super()._keepalive_after(conn, keepalive))

    # -- in the main loop: the body, as the client takes it --------------------------------------

    def finish_request(self, conn: Any, fs: futures.Future[Any]) -> None:
        """A pool thread is done with a connection: send what it left to send, else as gthread does."""
        out = fs.result() if not fs.cancelled() and fs.exception() is None else None
        if isinstance(out, Outgoing):
            self._send_here(conn, out)
        else:
            super().finish_request(conn, fs)

    def _send_here(self, conn: Any, out: Outgoing) -> None:
        """Send what the client takes at once; the main loop sends the rest when its socket is writable."""
        if conn.sock.gettimeout() != 0.0:
            conn.sock.setblocking(False)
        self.sending[conn] = out
        self._on_writable(conn, conn.sock)
        if conn in self.sending:
            self.poller.register(conn.sock, selectors.EVENT_WRITE, partial(self._on_writable, conn))

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

    def expire_sends(self, now: float) -> None:
        """Drop the clients that took nothing of their answer for :data:`SEND_IDLE_SECONDS`."""
        for conn in [c for c, out in self.sending.items() if out.deadline <= now]:
            self._sent(conn, False)

    def _sent(self, conn: Any, keepalive: bool) -> None:
        """The answer is sent (or given up): close it, and keep the connection for its next request or close it."""
        out = self.sending.pop(conn)
        with contextlib.suppress(OSError, ValueError):
            out.answer.filelike.seek(out.offset)  # as socket.sendfile leaves it: a download's record reads it
        try:
            out.answer.close()
        except Exception:
            self.log.exception("Error closing an answer")
        with contextlib.suppress(KeyError, ValueError):
            self.poller.unregister(conn.sock)
        done: futures.Future[bool] = futures.Future()
        done.set_result(keepalive)
        super().finish_request(conn, done)
