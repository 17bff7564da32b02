"""Bodies from anyone are small: only the owner's upload routes take large ones.

Tried against a real server, as an attacker would: a huge ``Content-Length``
(or a chunked body that never ends) to the anonymous routes is refused with
413 before the body is read or spooled, and the worker's memory stays flat.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from pligt.web.limits import SMALL_BODY_BYTES
from tests.support.app import Instance
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

HUGE = 300 * 1024 * 1024


@pytest.fixture
def spooled(instance: Instance, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A real server whose temporary folder we can watch."""
    tmp = tmp_path / "server-tmp"
    tmp.mkdir()
    running = start_server(instance.path, tmp_path / "server.log", env={"TMPDIR": str(tmp)})
    yield running, tmp
    stop_server(running)


def _send(server: Server, head: str, body_bytes: int, chunked: bool = False) -> tuple[str, float]:
    """Send ``head``, then up to ``body_bytes`` of body while the server lets us; return its status line."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        sent, block = 0, b"x" * 65536
        started = time.monotonic()
        try:
            while sent < body_bytes:
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what we want
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
        return answer.split(b"\r\n", 1)[0].decode("latin-1"), time.monotonic() - started


def _workers_rss(server: Server) -> int:
    return sum(child.memory_info().rss for child in psutil.Process(server.process.pid).children(recursive=True))


def _head(path: str, content_type: str, length: int | None) -> str:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"


@pytest.mark.server
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/access/requests", "application/json"),
        ("/access/", "multipart/form-data; boundary=xyz"),
        ("/admin/login", "multipart/form-data; boundary=xyz"),
        ("/access/", "application/x-www-form-urlencoded"),
    ],
)
def test_a_huge_declared_body_to_an_anonymous_route_is_refused_before_it_is_read(
    spooled: tuple[Server, Path], path: str, content_type: str
) -> None:
    server, tmp = spooled
    before = _workers_rss(server)
    status, _ = _send(server, _head(path, content_type, HUGE), 32 * 1024 * 1024)
    assert status.startswith("HTTP/1.1 413"), status
    assert _workers_rss(server) - before < 16 * 1024 * 1024
    assert list(tmp.iterdir()) == []  # nothing spooled to disk


@pytest.mark.server
@pytest.mark.parametrize("path", ["/access/requests", "/access/", "/admin/login"])
def test_a_chunked_body_that_passes_the_small_limit_is_refused(spooled: tuple[Server, Path], path: str) -> None:
    server, tmp = spooled
    status, _ = _send(server, _head(path, "application/json", None), 8 * SMALL_BODY_BYTES, chunked=True)
    assert status.startswith("HTTP/1.1 413"), status
    assert list(tmp.iterdir()) == []


@pytest.mark.server
def test_the_owner_still_uploads_more_than_the_small_limit(spooled: tuple[Server, Path], instance: Instance) -> None:
    import requests

    server, _ = spooled
    body = b"Pligt test data, plain text.\n" * (4 * SMALL_BODY_BYTES // 29)
    published = requests.post(
        server.url + "/api/items",
        params={"filename": "stor.txt", "visibility": "public"},
        data=body,
        auth=instance.owner_auth,
        timeout=30,
    )
    assert published.status_code == 201, published.text
    assert requests.get(published.headers["Location"], timeout=10).content == body


def test_a_small_request_is_still_taken(server: Server) -> None:
    import requests

    filed = requests.post(
        server.url + "/access/requests",
        json={
            "institution": "Det Kgl. Bibliotek",
            "contact_name": "Netarkivet",
            "contact_email": "netarkivet@example.dk",
            "legal_basis": "Pligtafleveringsloven § 10",
        },
        timeout=10,
    )
    assert filed.status_code == 201, filed.text
