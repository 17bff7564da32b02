"""Malformed requests get a 4xx from a real server, never a 500, and break nothing.

Each case is sent as raw bytes, as an attacker (or an unlucky client) would, to
a real ``pligt serve``; afterwards the server still answers and every version
is still there.
"""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlsplit

import pytest
import requests

from pligt.instance import build_archive
from tests.support.app import Instance
from tests.support.data import pdf_bytes
from tests.support.servers import Server

NESTED = "[" * 5000 + "]" * 5000


def _raw(server: Server, request: bytes, timeout: float = 20) -> bytes:
    """Send ``request`` and return the status line of the answer (b"" if the server just closed)."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return answer.split(b"\r\n", 1)[0]


def _owner(instance: Instance) -> str:
    return "Basic " + base64.b64encode(f"{instance.owner.username}:{instance.owner.password}".encode()).decode()


def _cases(instance: Instance) -> dict[str, bytes]:
    owner = _owner(instance).encode()
    upload = b"POST /api/items?filename=x.txt HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + owner
    upload += b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    return {
        "huge version number": b"GET /files/x/v99999999999999999999/a.pdf HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "huge request number": b"POST /api/requests/" + b"1" + b"0" * 20 + b"/approve HTTP/1.1\r\nHost: localhost"
        b"\r\nAuthorization: " + owner + b"\r\nContent-Length: 0\r\n\r\n",
        "huge credential number": b"POST /api/credentials/" + b"9" * 30 + b"/revoke HTTP/1.1\r\nHost: localhost"
        b"\r\nAuthorization: " + owner + b"\r\nContent-Length: 0\r\n\r\n",
        "host label over 63": b"GET / HTTP/1.1\r\nHost: " + b"a" * 64 + b".example\r\n\r\n",
        "host label over 63, console": b"GET /admin/login HTTP/1.1\r\nHost: " + b"b" * 70 + b".dk\r\n\r\n",
        "host with a space": b"GET /access/ HTTP/1.1\r\nHost: a b\r\n\r\n",
        "chunk size not hex": upload + b"zz\r\nhello\r\n0\r\n\r\n",
        "chunk size negative": upload + b"-1\r\nhello\r\n0\r\n\r\n",
        "chunk without its CRLF": upload + b"5\r\nhelloXX0\r\n\r\n",
        "chunk size beyond any body": upload + b"ffffffffffffffffffff\r\nhello",
        "JSON nested 5000 deep": b"POST /access/requests HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
        b"\r\nContent-Length: " + str(len(NESTED)).encode() + b"\r\n\r\n" + NESTED.encode(),
        "JSON not UTF-8": b"POST /access/requests HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
        b"\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc",
        "path not UTF-8": b"GET /files/\xff\xfe/v1/a.pdf HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "percent-encoded junk": b"GET /files/%ff%fe/v1/%c3%28.pdf HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "page number text": b"GET /?page=TEXT HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "page number huge": b"GET /protected/?page=" + b"9" * 40 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "audit limit huge": b"GET /api/audit?limit="
        + b"9" * 40
        + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
        + owner
        + b"\r\n\r\n",
        "bad basic auth": b"GET /protected/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic !!!notbase64\r\n\r\n",
        "basic auth not UTF-8": b"GET /protected/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic "
        + base64.b64encode(b"\xff\xfe:\xfd")
        + b"\r\n\r\n",
        "range nonsense": b"GET /files/brochure/v1/brochure.pdf HTTP/1.1\r\nHost: localhost\r\n"
        b"Range: bytes=9-1,zz\r\n\r\n",
        "if-modified-since nonsense": b"GET /files/brochure/v1/brochure.pdf HTTP/1.1\r\nHost: localhost\r\n"
        b"If-Modified-Since: yesterday at noon\r\n\r\n",
    }


@pytest.fixture
def site(instance: Instance, server: Server) -> Server:
    build_archive(instance.settings).publish([pdf_bytes("malformed")], filename="brochure.pdf", visibility="public")
    return server


def test_no_malformed_request_gets_a_5xx(site: Server, instance: Instance) -> None:
    """Each is refused (4xx), or, where HTTP says to ignore what is malformed (a Range, a date), served."""
    answers = {name: _raw(site, request) for name, request in _cases(instance).items()}
    server_errors = {name: status for name, status in answers.items() if not status or status.split()[1][:1] == b"5"}
    assert server_errors == {}, answers
    assert requests.get(site.url + "/healthz", timeout=5).status_code == 200
    kept = requests.get(site.url + "/files/brochure/v1/brochure.pdf", timeout=5)
    assert kept.status_code == 200 and kept.content == pdf_bytes("malformed")
    assert "Traceback" not in site.log.read_text()


def test_a_sign_in_redirect_never_carries_a_line_break(instance: Instance, server: Server) -> None:
    session = requests.Session()
    page = session.get(server.url + "/admin/login", timeout=5)
    token = page.text.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
    signed_in = session.post(
        server.url + "/admin/login?next=/admin/items%0d%0aSet-Cookie:%20x=1",
        data={"csrf_token": token, "username": "owner", "password": instance.owner.password},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"].endswith("/admin/")  # not the tampered target
    assert "x" not in session.cookies


def test_a_kept_head_that_is_not_ascii_is_refused_not_a_traceback(instance: Instance) -> None:
    from tests.support.cli import invoke

    build_archive(instance.settings).publish([pdf_bytes("head")], filename="brochure.pdf")
    result = invoke("audit", "verify", "--head", "é" * 64, "--instance", str(instance.path))
    assert result.exit_code == 10, result.stderr
    assert "is not in the log" in result.stderr


def test_a_too_large_json_request_is_answered_in_json(server: Server) -> None:
    refused = requests.post(
        server.url + "/access/requests",
        data=b'{"institution": "' + b"x" * 70_000 + b'"}',
        headers={"Content-Type": "application/json", "Accept": "*/*"},
        timeout=10,
    )
    assert refused.status_code == 413
    assert refused.headers["Content-Type"].startswith("application/json")
    assert refused.json()["code"] == 413
