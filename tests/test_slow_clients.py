"""Slow clients cannot stop the server: a real ``pligt serve`` under slowloris and trickled bodies.

Hundreds of connections that send their headers a byte a second, or their body
a byte every three seconds, hold no thread: a probe and the crawler's download
are answered within a second throughout, and the server drops the slow ones at
their deadline (headers: 10 s; bodies: 10 KiB in every 10 s).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import urlsplit

import pytest
import requests

from deposit.instance import build_archive
from deposit.server.pacing import BODY_WINDOW_SECONDS
from deposit.server.pacing import HEADER_SECONDS
from tests.conftest import Instance
from tests.support.data import pdf_bytes
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server


@dataclass
class Trickle:
    """Many connections that each send ``head`` at once, then one byte of ``drip`` every ``every`` seconds."""

    url: str
    head: bytes
    drip: bytes
    every: float
    sockets: list[socket.socket] = field(default_factory=list)
    #: When the server answered or closed each connection (seconds after opening them all).
    closed_at: dict[int, float] = field(default_factory=dict)
    #: The status line each got, if any (b"" for a plain close).
    answers: dict[int, bytes] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def open(self, count: int) -> None:
        address = urlsplit(self.url)
        for _ in range(count):
            sock = socket.create_connection((address.hostname, address.port), timeout=5)
            sock.sendall(self.head)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.started = time.monotonic()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        position = 0
        while not self._stop.wait(self.every):
            byte = self.drip[position % len(self.drip) : position % len(self.drip) + 1]
            position += 1
            for n, sock in enumerate(self.sockets):
                if n in self.closed_at:
                    continue
                try:
                    answer = sock.recv(4096, socket.MSG_PEEK)  # b"": closed; else the server's answer
                    self.closed_at[n] = time.monotonic() - self.started
                    self.answers[n] = answer.split(b"\r\n", 1)[0]
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_at[n] = time.monotonic() - self.started
                    continue
                try:
                    sock.send(byte)
                except OSError:
                    self.closed_at[n] = time.monotonic() - self.started

    def close(self) -> None:
        self._stop.set()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def served(instance: Instance, tmp_path: object) -> Iterator[tuple[Server, str]]:
    archive = build_archive(instance.settings)
    published = archive.publish([pdf_bytes("slow clients")], filename="brochure.pdf", visibility="public")
    from pathlib import Path

    folder = Path(str(tmp_path))
    running = start_server(instance.path, folder / "server.log")
    v = published.version
    yield running, f"{running.url}/files/{v.slug}/v{v.number}/{v.filename}"
    stop_server(running)


def _probe_while(trickle: Trickle, download: str, seconds: float) -> list[float]:
    """Fetch /healthz and the download every 0.5 s for ``seconds``; return each answer's time."""
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for url in (trickle.url + "/healthz", download):
            started = time.monotonic()
            response = requests.get(url, timeout=5)
            times.append(time.monotonic() - started)
            assert response.status_code == 200, url
        time.sleep(0.5)
    return times


def _wait_until_dropped(trickle: Trickle, by: float) -> None:
    while len(trickle.closed_at) < len(trickle.sockets) and time.monotonic() - trickle.started < by:
        time.sleep(0.2)


def test_slowloris_holds_no_thread_and_is_dropped_at_the_header_deadline(served: tuple[Server, str]) -> None:
    server, download = served
    trickle = Trickle(server.url, b"GET / HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: lorisloris\r\n", every=1.0)
    trickle.open(200)
    try:
        times = _probe_while(trickle, download, seconds=4)
        assert max(times) < 1.0, times
        _wait_until_dropped(trickle, by=HEADER_SECONDS + 5)
        assert len(trickle.closed_at) == len(trickle.sockets)
        assert min(trickle.closed_at.values()) >= HEADER_SECONDS - 1.5
        assert set(trickle.answers.values()) <= {b"", b"HTTP/1.1 408 Request Timeout"}
    finally:
        trickle.close()


def test_a_trickled_body_holds_its_thread_only_until_the_pace_fails(served: tuple[Server, str]) -> None:
    server, download = served
    head = (
        b"POST /access/requests HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 60000\r\n\r\n"
    )
    trickle = Trickle(server.url, head, b'{"institution": "', every=3.0)
    trickle.open(80)  # more than the server's 2 x 32 threads
    try:
        _wait_until_dropped(trickle, by=2 * BODY_WINDOW_SECONDS + 8)
        assert len(trickle.closed_at) == len(trickle.sockets)
        # Flask answers 408, or werkzeug's own "client disconnected" 400 when the cut comes inside its reader.
        assert set(trickle.answers.values()) <= {b"", b"HTTP/1.1 408 REQUEST TIMEOUT", b"HTTP/1.1 400 BAD REQUEST"}
        times = _probe_while(trickle, download, seconds=2)
        assert max(times) < 1.0, times
    finally:
        trickle.close()
