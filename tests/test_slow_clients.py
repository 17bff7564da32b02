"""Slow clients cannot stop the server: a real ``pligt serve`` under slowloris, trickled bodies, slow readers.

Hundreds of connections that send their headers a byte a second, or their body
a byte every three seconds, or read their download slowly, hold no thread: a
probe and the crawler's download are answered within a second throughout, and
the server drops the slow ones at their deadline (headers: 10 s; bodies: 10 KiB
in every 10 s; a reader that takes nothing: 30 s).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from pligt.instance import build_archive
from pligt.server.bodies import SEND_IDLE_SECONDS
from pligt.server.pacing import BODY_WINDOW_SECONDS
from pligt.server.pacing import HEADER_SECONDS
from tests.support.app import Instance
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

    def open(self, count: int, source: str = "127.0.0.2") -> None:
        """Open ``count`` connections from ``source``, a loopback address of the attacker's own."""
        address = urlsplit(self.url)
        for n in range(count):
            # Several attacker addresses, each under the server's per-client limit (64 per worker).
            origin = f"{source.rsplit('.', 1)[0]}.{int(source.rsplit('.', 1)[1]) + n // 50}"
            sock = socket.create_connection((address.hostname, address.port), timeout=5, source_address=(origin, 0))
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


@dataclass
class Site:
    server: Server
    small: str
    large: str


@pytest.fixture
def site(instance: Instance, tmp_path: Path) -> Iterator[Site]:
    archive = build_archive(instance.settings)
    small = archive.publish([pdf_bytes("slow clients")], filename="brochure.pdf", visibility="public").version
    large = archive.publish([pdf_bytes("large", pad=4 * 1024 * 1024)], filename="stor.pdf", visibility="public")
    running = start_server(instance.path, tmp_path / "server.log")
    yield Site(
        running,
        f"{running.url}/files/{small.slug}/v{small.number}/{small.filename}",
        f"{running.url}/files/{large.version.slug}/v1/stor.pdf",
    )
    stop_server(running)


class SlowReaders:
    """Downloads read at ``rate`` bytes a second, each on its own connection."""

    def __init__(self, url: str, count: int, rate: int, ranges: bool = False) -> None:
        #: Every other reader asks for a range (a resumed download), if ``ranges``.
        self.ranges = ranges
        self.stop = threading.Event()
        self.read = [0] * count
        self.threads = [threading.Thread(target=self._read, args=(url, n, rate), daemon=True) for n in range(count)]
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def _read(self, url: str, n: int, rate: int) -> None:
        address = urlsplit(url)
        source = (f"127.0.1.{1 + n // 40}", 0)  # readers of their own addresses, apart from the attackers'
        with socket.create_connection((address.hostname, address.port), timeout=10, source_address=source) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            resume = "Range: bytes=100-\r\n" if self.ranges and n % 2 else ""
            sock.sendall(f"GET {address.path} HTTP/1.1\r\nHost: localhost\r\n{resume}\r\n".encode())
            while not self.stop.wait(0.1):
                data = sock.recv(rate // 10)
                if not data:
                    return
                self.read[n] += len(data)

    def close(self) -> None:
        self.stop.set()


def _probe_while(base: str, download: str, seconds: float) -> list[float]:
    """Fetch /healthz and the download every 0.5 s for ``seconds``; return each answer's time."""
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for url in (base + "/healthz", download):
            started = time.monotonic()
            response = requests.get(url, timeout=5)
            times.append(time.monotonic() - started)
            assert response.status_code == 200, url
        time.sleep(0.5)
    return times


def _wait_until_dropped(trickle: Trickle, by: float) -> None:
    while len(trickle.closed_at) < len(trickle.sockets) and time.monotonic() - trickle.started < by:
        time.sleep(0.2)


def test_slowloris_holds_no_thread_and_is_dropped_at_the_header_deadline(site: Site) -> None:
    server, download = site.server, site.small
    readers = SlowReaders(site.large, count=50, rate=50_000)
    trickle = Trickle(server.url, b"GET / HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: lorisloris\r\n", every=1.0)
    trickle.open(200)
    try:
        times = _probe_while(server.url, download, seconds=4)
        assert max(times) < 1.0, times
        assert min(readers.read) > 0  # the slow downloads are being served all along
        _wait_until_dropped(trickle, by=HEADER_SECONDS + 5)
        assert len(trickle.closed_at) == len(trickle.sockets)
        assert min(trickle.closed_at.values()) >= HEADER_SECONDS - 1.5
        assert set(trickle.answers.values()) <= {b"", b"HTTP/1.1 408 Request Timeout"}
    finally:
        trickle.close()
        readers.close()


def test_slow_readers_hold_no_thread(site: Site) -> None:
    server, download = site.server, site.small
    # More than the server's 2 x 32 threads, and so are the half that resume (a range).
    readers = SlowReaders(site.large, count=150, rate=20_000, ranges=True)
    try:
        times = _probe_while(server.url, download, seconds=4)
        assert max(times) < 1.0, times
        assert min(readers.read) > 0  # every slow download is being served
    finally:
        readers.close()


@pytest.mark.slow
def test_a_reader_that_takes_nothing_is_dropped_and_slow_ones_are_not(
    instance: Instance, tmp_path: Path, site: Site
) -> None:
    server = site.server
    archive = build_archive(instance.settings)
    huge = archive.publish([pdf_bytes("huge", pad=64 * 1024 * 1024)], filename="huge.pdf", visibility="public")
    stalled = _request_from("127.0.2.1", f"{server.url}/files/{huge.version.slug}/v1/huge.pdf")
    readers = SlowReaders(site.large, count=20, rate=20_000)
    try:
        time.sleep(SEND_IDLE_SECONDS + 3)
        received, ended = _read_all(stalled)
        assert ended and received < 64 * 1024 * 1024  # dropped, long before the end of its file
        assert min(readers.read) > 250_000  # the slow ones, still reading all along, were not
    finally:
        stalled.close()
        readers.close()


def _request_from(source: str, url: str) -> socket.socket:
    """Send a GET from ``source`` and read nothing of the answer (a receive buffer of 4 KiB)."""
    address = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect((address.hostname, address.port))
    sock.sendall(f"GET {address.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


def _read_all(sock: socket.socket) -> tuple[int, bool]:
    """Read what the server sends until it closes (True) or stops for 2 s (False); return the byte count too."""
    sock.settimeout(2)
    received = 0
    try:
        while data := sock.recv(1 << 20):
            received += len(data)
    except TimeoutError:
        return received, False
    except ConnectionResetError:
        pass
    return received, True


def test_a_trickled_body_holds_its_thread_only_until_the_pace_fails(site: Site) -> None:
    server, download = site.server, site.small
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
        times = _probe_while(server.url, download, seconds=2)
        assert max(times) < 1.0, times
    finally:
        trickle.close()


@pytest.mark.slow
def test_soak_slowloris_waves_for_a_minute(site: Site) -> None:
    """Waves of 300 slowloris connections, renewed as the server drops them, beside 50 slow readers."""
    server, download = site.server, site.small
    readers = SlowReaders(site.large, count=50, rate=50_000)
    waves: list[Trickle] = []
    try:
        deadline = time.monotonic() + 60
        times: list[float] = []
        while time.monotonic() < deadline:
            wave = Trickle(server.url, b"GET / HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: lorisloris\r\n", every=1.0)
            wave.open(300)
            waves.append(wave)
            times += _probe_while(server.url, download, seconds=HEADER_SECONDS)
        assert max(times) < 1.0, max(times)
    finally:
        for wave in waves:
            wave.close()
        readers.close()


def _connect_from(source: str, url: str) -> socket.socket:
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=5, source_address=(source, 0))
    sock.setblocking(False)
    return sock


def _answered_or_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096, socket.MSG_PEEK) is not None  # data (a 503) or b"" (closed)
    except BlockingIOError:
        return False


def test_one_client_cannot_hold_every_connection(instance: Instance, tmp_path: Path) -> None:
    limit = 8
    server = start_server(
        instance.path, tmp_path / "server.log", "--workers", "2", env={"PLIGT_MAX_CONNECTIONS_PER_CLIENT": str(limit)}
    )
    hog: list[socket.socket] = []
    try:
        hog = [_connect_from("127.0.0.2", server.url) for _ in range(60)]  # another loopback address
        time.sleep(1)
        refused = [s for s in hog if _answered_or_closed(s)]
        assert 60 - 2 * limit <= len(refused) < 60  # each worker keeps at most `limit` of them
        started = time.monotonic()
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200  # everyone else is served
        assert time.monotonic() - started < 1.0
        for sock in hog:
            sock.close()
        time.sleep(0.5)
        again = [_connect_from("127.0.0.2", server.url) for _ in range(limit)]
        time.sleep(0.5)
        assert not any(_answered_or_closed(s) for s in again)  # the count went down as they closed
        hog = again
    finally:
        for sock in hog:
            sock.close()
        stop_server(server)
