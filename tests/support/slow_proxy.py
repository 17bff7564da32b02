"""A TCP proxy on loopback that passes what a client sends at a set rate: a slow uplink.

The browser tests upload through it to watch the console's progress bars move:
a real upload, as slow as an owner's home connection, with nothing changed in
the server. Only the client's bytes are held back (the answers pass at once),
and the proxy's receive buffer is small, so the browser's own count of bytes
sent (the XMLHttpRequest's upload progress) follows the rate closely.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

#: The proxy's receive buffer: small, so that the kernel takes little more than the rate allows.
RECEIVE_BUFFER = 32 * 1024
CHUNK = 16 * 1024


class SlowProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; ``rate`` bytes a second from the client (None: as fast as it can)."""

    def __init__(self, upstream: tuple[str, int], rate: float | None = None) -> None:
        self.upstream = upstream
        self.rate = rate
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before listen(): accepted sockets inherit it, and the window is agreed at the handshake.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="slow-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> SlowProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below; close() alone does not
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, held_back: bool) -> None:
        started, passed = time.monotonic(), 0
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                target.sendall(data)
                passed += len(data)
                rate = self.rate if held_back else None
                if rate:
                    # Sleep until the bytes passed so far are what the rate allows.
                    ahead = passed / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                else:
                    started, passed = time.monotonic(), 0
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
