"""Reading a request under deadlines, so that slow clients cannot hold the server's threads.

Two rules, for the two parts of a request:

- The request line and headers are gathered by the worker's main loop, without a
  thread, and must be complete within :data:`HEADER_SECONDS` of the first byte
  (or of the connection, for a new one): a client that sends one header byte a
  second (slowloris) holds a socket and a few bytes, never a thread, and is
  dropped at the deadline. See :mod:`pligt.server.heads`.
- A body is read by the request's thread, and must keep coming: every
  :data:`BODY_WINDOW_SECONDS` it must bring at least :data:`BODY_MIN_BYTES`
  (1 KiB/s on average; a slow uplink uploads far faster). A body that trickles
  or stalls is cut off with :class:`ClientTooSlow`, and its thread is free again.
"""

from __future__ import annotations

import errno
import socket
import time

from gunicorn.http.unreader import SocketUnreader
from werkzeug.exceptions import RequestTimeout

#: A request line and its headers must arrive within this many seconds.
HEADER_SECONDS = 10.0
#: The most a request line and headers may take (gunicorn's own limits are lower per field).
HEADER_MAX_BYTES = 64 * 1024
#: A body must bring at least BODY_MIN_BYTES in every window of this many seconds.
BODY_WINDOW_SECONDS = 10.0
BODY_MIN_BYTES = 10 * 1024


class ClientTooSlow(RequestTimeout, ConnectionResetError):
    """The client sends its request body too slowly (or not at all).

    It is an HTTP 408 where the web app reads the body (Flask answers it as any
    HTTP error), and a connection reset for gunicorn, which then closes the
    connection quietly.
    """

    description = "The request body came too slowly; the connection is closed."

    def __init__(self) -> None:
        RequestTimeout.__init__(self)
        self.errno = errno.ECONNRESET
        self.strerror = "the client sent its request body too slowly"


class PacedUnreader(SocketUnreader):
    """Gunicorn's socket reader, refusing a body that comes slower than the minimum pace."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.restart()

    def restart(self) -> None:
        """Start the pace anew (a new request on the connection)."""
        self._window_end = time.monotonic() + BODY_WINDOW_SECONDS
        self._window_bytes = 0
        self._too_slow = False

    def chunk(self, size_hint: int | None = None) -> bytes:
        """Return the next bytes of the socket, waiting no longer than the pace allows.

        :raises ClientTooSlow: when a window ends with less than the minimum in it, and
            from then on (gunicorn would otherwise wait for the rest of the body).
        """
        if self._too_slow:
            raise ClientTooSlow()
        sock = self.sock
        previous = sock.gettimeout()
        try:
            while True:
                now = time.monotonic()
                if now >= self._window_end:
                    if self._window_bytes < BODY_MIN_BYTES:
                        self._too_slow = True
                        raise ClientTooSlow()
                    self._window_end, self._window_bytes = now + BODY_WINDOW_SECONDS, 0
                sock.settimeout(self._window_end - now)
                try:
                    data: bytes = super().chunk(size_hint)
                except TimeoutError:
                    continue  # the window is over: judge it
                self._window_bytes += len(data)
                return data
        finally:
            sock.settimeout(previous)
