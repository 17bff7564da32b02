"""The crawler's answers from the worker's main loop: the same bytes, and no client can hold the loop.

A real ``pligt serve`` answers a challenge, a revisit, a HEAD and a small file
it holds in memory from its main loop (pligt/server/worker.py), and hands
everything else to a pool thread. On one kept-alive connection the two kinds
follow each other in any order, pipelined too; with every pool thread busy the
crawler's challenges and revisits are still answered; a client that asks and
never reads keeps nobody else waiting; and a credential revoked by another
process is refused at the very next request. With either catalog: SQLite's
change counter is read at hand, PostgreSQL's asked without waiting.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest

from pligt.instance import build_archive
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.data import binary_bytes
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

SMALL = b"Prisliste 2026: kursus 1200 kr, bog 300 kr.\n" * 40
#: A file the server keeps in memory, near the size limit for that (pligt/core/downloads/small_files.py).
BROCHURE = b"Brochure om pligtaflevering.\n" * 2000
#: More than the kernel's socket buffers hold (4 MiB each way here), so that its sender waits.
LARGE = binary_bytes(16_000_000)
POOL_THREADS = 2


@dataclass
class Site:
    server: Server
    authorization: str
    etag: str
    instance: Instance


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    instance: Instance = request.getfixturevalue("instance" if request.param == "sqlite" else "pg_instance")
    archive = build_archive(instance.settings)
    archive.publish([SMALL], filename="prisliste.txt", slug="prisliste", visibility="protected")
    archive.publish([LARGE], filename="data.bin", slug="data", visibility="protected")
    archive.publish([SMALL], filename="offentlig.txt", slug="offentlig", visibility="public")
    archive.publish([BROCHURE], filename="brochure.txt", slug="brochure", visibility="public")
    credential, password = issue_credential(archive)
    server = start_server(instance.path, tmp_path / "server.log", "--threads", str(POOL_THREADS), "--workers", "1")
    try:
        yield Site(server, basic_header(credential, password), f'"{hashlib.sha256(SMALL).hexdigest()}"', instance)
    finally:
        stop_server(server)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def connect(server: Server, timeout: float = 10, receive_buffer: int | None = None) -> socket.socket:
    """A connection to the server; ``receive_buffer`` small: a client that takes its answers slowly."""
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connecting: the window
    sock.settimeout(timeout)
    sock.connect((address.hostname, address.port))
    return sock


def request(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: heritrix/3.4.0", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(stream: BinaryIO, method: str = "GET") -> Answer:
    """Read one response from a buffered socket file, by its Content-Length (none for 304 and HEAD)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    length = 0 if status == 304 or method == "HEAD" else int(headers.get("content-length", "0"))
    body = stream.read(length) if length else b""
    return Answer(status, headers, body)


def test_one_connection_mixes_main_loop_and_pool_answers_in_any_order(site: Site) -> None:
    auth = f"Authorization: {site.authorization}"
    steps = [
        ("GET", request("/files/prisliste/v1/prisliste.txt"), 401, b""),
        ("GET", request("/files/prisliste/v1/prisliste.txt", auth), 200, SMALL),  # verified by the app
        ("GET", request("/files/prisliste/v1/prisliste.txt", auth), 200, SMALL),  # from memory
        ("GET", request("/files/data/v1/data.bin"), 401, b""),
        ("GET", request("/files/data/v1/data.bin", auth), 200, LARGE),  # the main loop's sendfile
        ("GET", request("/files/data/v1/data.bin", auth, "Range: bytes=1000000-1999999"), 206, LARGE[1000000:2000000]),
        ("GET", request("/files/data/v1/data.bin", auth, "Range: bytes=15000000-"), 206, LARGE[15000000:]),
        ("GET", request("/files/prisliste/v1/prisliste.txt", auth, f"If-None-Match: {site.etag}"), 304, b""),
        ("HEAD", request("/files/data/v1/data.bin", auth, method="HEAD"), 200, b""),
        ("GET", request("/files/prisliste/v1/prisliste.txt", auth, "Range: bytes=10-19"), 206, SMALL[10:20]),
        ("GET", request("/files/offentlig/v1/offentlig.txt"), 200, SMALL),
        ("GET", request("/files/offentlig/v9/offentlig.txt"), 404, None),
        ("GET", request("/files/offentlig/v1/offentlig.txt"), 200, SMALL),
    ]
    with connect(site.server) as sock, sock.makefile("rb") as stream:
        for method, raw, status, body in steps:
            sock.sendall(raw)
            answer = read_answer(stream, method)
            assert answer.status == status, (raw, answer)
            assert answer.headers["connection"] == "keep-alive"
            if status == 401:
                assert answer.headers["www-authenticate"].startswith('Basic realm="')
            if body is not None and status != 401:
                assert answer.body == body
        # Pipelined: every answer, in order, whichever lane each takes.
        sock.sendall(b"".join(raw for _, raw, _, _ in steps))
        for method, raw, status, body in steps:
            answer = read_answer(stream, method)
            assert answer.status == status, (raw, answer)
            if body is not None and status != 401:
                assert answer.body == body


def test_a_large_file_and_its_ranges_are_recorded_with_the_bytes_the_client_took(site: Site) -> None:
    auth = f"Authorization: {site.authorization}"
    with connect(site.server) as sock, sock.makefile("rb") as stream:
        for raw, body in [
            (request("/files/data/v1/data.bin", auth), LARGE),
            (request("/files/data/v1/data.bin", auth, "Range: bytes=1000000-1999999"), LARGE[1000000:2000000]),
            (request("/files/data/v1/data.bin", auth, "Range: bytes=15000000-"), LARGE[15000000:]),
        ]:
            sock.sendall(raw)
            assert read_answer(stream).body == body
    with connect(site.server, receive_buffer=4096) as quitter:  # takes a little, then goes away
        quitter.sendall(request("/files/data/v1/data.bin", auth))
        assert len(quitter.recv(65536)) > 0
    archive = build_archive(site.instance.settings)
    version = archive.catalog.download_version("data", 1)
    assert version is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server writes its records every half second
        sent = [
            (row["status"], row["bytes_sent"])
            for row in archive.catalog.rows("downloads")
            if row["version_id"] == version.id
        ]
        if len(sent) == 4:
            break
        time.sleep(0.2)
    assert sent[:3] == [(200, len(LARGE)), (206, 1_000_000), (206, 1_000_000)], sent
    assert sent[3][0] == 200 and 0 < sent[3][1] < len(LARGE), sent  # what left before it went, not the file


def test_a_pool_answer_after_a_main_loop_one_reaches_a_slow_reader_whole(site: Site) -> None:
    archive = build_archive(site.instance.settings)
    credential, password = issue_credential(archive)  # not verified yet: the app answers it, in a pool thread
    authorization = f"Authorization: {basic_header(credential, password)}"
    # Another connection open: a pool thread does not stay with a lone one (and set its socket blocking).
    with connect(site.server), connect(site.server, receive_buffer=4096) as sock, sock.makefile("rb") as stream:
        for _ in range(2):  # the version read by a pool thread, then the challenge from the main loop
            sock.sendall(request("/files/data/v1/data.bin"))  # whose socket it leaves non-blocking
            assert read_answer(stream).status == 401
        # A range the app cuts out and writes piece by piece, more than the socket buffers hold.
        sock.sendall(request("/files/data/v1/data.bin", authorization, "Range: bytes=0-9999999"))
        time.sleep(1)  # not read meanwhile: the buffers fill, and the thread must wait for the client
        answer = read_answer(stream)
        assert answer.status == 206 and answer.body == LARGE[:10_000_000]


def test_challenges_and_revisits_are_answered_while_every_pool_thread_is_busy(site: Site) -> None:
    auth = f"Authorization: {site.authorization}"
    with connect(site.server) as warm, warm.makefile("rb") as stream:  # the credential verified and cached
        warm.sendall(request("/files/prisliste/v1/prisliste.txt", auth))
        assert read_answer(stream).status == 200
    # Clients that announce a body and send none hold a pool thread each, for the body's 10 s window.
    holders = []
    for _ in range(POOL_THREADS + 2):
        holder = connect(site.server)
        holder.sendall(
            b"POST /access/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n"
        )
        holders.append(holder)
    time.sleep(0.5)
    with connect(site.server, timeout=3) as sock:  # the pool is busy indeed: a page waits for a thread
        sock.sendall(request("/healthz"))
        with pytest.raises(TimeoutError):
            sock.recv(1)
    try:
        for raw, status in [
            (request("/files/data/v1/data.bin"), 401),
            (request("/files/prisliste/v1/prisliste.txt", auth, f"If-None-Match: {site.etag}"), 304),
            (request("/files/prisliste/v1/prisliste.txt", auth), 200),
        ]:
            with connect(site.server, timeout=3) as sock, sock.makefile("rb") as stream:
                started = time.monotonic()
                sock.sendall(raw)
                assert read_answer(stream).status == status
                assert time.monotonic() - started < 1
    finally:
        for holder in holders:
            holder.close()


def test_a_client_that_asks_and_never_reads_keeps_nobody_waiting(site: Site) -> None:
    # One request after another, each once the last was answered into the socket, never read:
    # the kernel's buffers fill and an answer no longer leaves at once.
    greedy = connect(site.server, receive_buffer=4096)
    stop = threading.Event()
    asking = threading.Thread(target=_ask_without_reading, args=(greedy, stop), daemon=True)
    asking.start()
    time.sleep(2)
    try:
        for _ in range(5):
            with connect(site.server, timeout=3) as sock, sock.makefile("rb") as stream:
                started = time.monotonic()
                sock.sendall(request("/files/prisliste/v1/prisliste.txt"))
                assert read_answer(stream).status == 401
                assert time.monotonic() - started < 1
    finally:
        stop.set()
        greedy.close()


def test_a_credential_revoked_elsewhere_is_refused_at_the_very_next_request(site: Site) -> None:
    archive = build_archive(site.instance.settings)  # another process's view of the catalog: the CLI's
    with connect(site.server) as sock, sock.makefile("rb") as stream:
        for _ in range(10):
            credential, password = issue_credential(archive)
            ask = request("/files/prisliste/v1/prisliste.txt", f"Authorization: {basic_header(credential, password)}")
            for _ in range(3):  # verified by the app, then answered from memory
                sock.sendall(ask)
                assert read_answer(stream).status == 200
            archive.access.revoke(credential.id)
            sock.sendall(ask)
            assert read_answer(stream).status == 401


def _ask_without_reading(sock: socket.socket, stop: threading.Event) -> None:
    ask = request("/files/brochure/v1/brochure.txt")
    try:
        while not stop.wait(0.005):
            sock.sendall(ask)
    except OSError:
        pass  # closed at the end of the test, or by the server
