"""No IP address is ever persisted (MISSION, non-negotiable 4).

A real `pligt serve` is used, from a distinctive client address (127.0.0.9), the
way everyone uses it: pages, the request form and its JSON twin, failed and successful
Basic auth, a lock-out, downloads (whole, ranged, abandoned), a wget crawl, the owner's
API, errors (401, 404, 429). Then every file of the instance and the server's log are
searched for that address, as text and as its four packed bytes."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests

from pligt.instance import build_archive
from tests.support.access import REQUEST_FIELDS
from tests.support.app import Instance
from tests.support.data import pdf_bytes
from tests.support.mail import Mailbox
from tests.support.mail import smtp_env
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

CLIENT_IP = "127.0.0.9"
NEEDLES = (
    CLIENT_IP.encode(),
    socket.inet_aton(CLIENT_IP),  # b"\x7f\x00\x00\x09"
    CLIENT_IP.encode("utf-16-le"),
    b"7f000009",
)
#: The client's address as a trusted proxy forwards it (X-Forwarded-For).
FORWARDED_IP = "198.51.100.77"


class Client:
    """HTTP from 127.0.0.9 to the server on 127.0.0.1, one connection per request."""

    def __init__(self, server: Server) -> None:
        parts = urlsplit(server.url)
        assert parts.hostname is not None and parts.port is not None
        self.host, self.port = parts.hostname, parts.port
        self.cookie: str | None = None

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=(CLIENT_IP, 0))

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if self.cookie:
            headers["Cookie"] = self.cookie
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            assert connection.sock.getsockname()[0] == CLIENT_IP
            data = response.read()
        finally:
            connection.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            self.cookie = value.split(";", 1)[0]
        return response.status, response.headers, data

    def json(self, method: str, path: str, payload: object = None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        if payload is None:
            status, _, data = self.request(method, path, **kwargs)
        else:
            body = json.dumps(payload).encode()
            status, _, data = self.request(method, path, body, {"Content-Type": "application/json"}, **kwargs)
        return status, json.loads(data)


def hidden_token(html: bytes) -> str:
    match = re.search(rb'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1).decode()


def text_of(html: bytes, element_id: str) -> str:
    match = re.search(rb'id="' + element_id.encode() + rb'">([^<]*)<', html)
    assert match, element_id
    return match.group(1).decode()


def needles(address: str) -> tuple[bytes, ...]:
    """An IPv4 address as text, packed bytes, UTF-16 and hex."""
    packed = socket.inet_aton(address)
    return (address.encode(), packed, address.encode("utf-16-le"), packed.hex().encode())


def leaks(paths: list[Path], searched: tuple[bytes, ...] = NEEDLES) -> list[str]:
    """Every file among ``paths`` (folders searched whole) holding the client's address."""
    found: list[str] = []
    for root in paths:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found.extend(f"{path}: {needle!r}" for needle in searched if needle in data)
    return found


def instance_files(instance: Instance) -> list[str]:
    return sorted(p.name for p in instance.path.rglob("*") if p.is_file())


@pytest.fixture
def serving(instance: Instance, tmp_path: Path, smtp: tuple[Mailbox, int]) -> Iterator[tuple[Server, Mailbox]]:
    mailbox, smtp_port = smtp
    env = {
        **smtp_env(smtp_port),
        "PLIGT_WORKERS": "1",  # the in-memory throttles are per worker
        "PLIGT_REQUESTS_PER_HOUR_PER_CLIENT": "3",
        "PLIGT_AUTH_MAX_FAILURES": "3",
    }
    server = start_server(instance.path, tmp_path / "server.log", env=env)
    try:
        yield server, mailbox
    finally:
        stop_server(server)


def test_no_ip_address_is_written_anywhere(instance: Instance, serving: tuple[Server, Mailbox], tmp_path: Path) -> None:
    server, mailbox = serving
    client = Client(server)
    owner = instance.owner_auth
    protected = pdf_bytes("beskyttet kursusmateriale", pad=2 * 1024 * 1024)
    assert not [needle for needle in NEEDLES if needle in protected]

    # Pages anyone reads, and errors.
    for path, expected in (
        ("/", 200),
        ("/robots.txt", 200),
        ("/sitemap.xml", 200),
        ("/healthz", 200),
        ("/protected/", 401),
        ("/no/such/page", 404),
        ("/files/nothing/v1/x.pdf", 401),  # without credentials, an unknown item is challenged like a protected one
        ("/access/release/" + "x" * 43, 404),
    ):
        assert client.request("GET", path)[0] == expected, path

    # The owner publishes through the API.
    for name, data, visibility in (
        ("brochure.pdf", pdf_bytes("brochure"), "public"),
        ("kursus.pdf", protected, "protected"),
    ):
        query = urlencode({"filename": name, "visibility": visibility})
        status, _, body = client.request("POST", f"/api/items?{query}", data, auth=owner)
        assert status == 201, body
    assert client.request("GET", "/api/items", auth=owner)[0] == 200
    assert client.request("GET", "/api/items", auth=("owner", "wrong"))[0] == 401

    # A request through the form (with the session cookie), then as JSON, then throttled.
    status, _, page = client.request("GET", "/access/")
    assert status == 200
    assert client.cookie and client.cookie.startswith("pligt_session=")
    form = urlencode({**REQUEST_FIELDS, "csrf_token": hidden_token(page)}).encode()
    status, _, filed = client.request("POST", "/access/", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 201, filed
    form_request = int(text_of(filed, "request-id"))
    status, created = client.json("POST", "/access/requests", {**REQUEST_FIELDS, "institution": "Statsbiblioteket"})
    assert status == 201
    status, third = client.json("POST", "/access/requests", {**REQUEST_FIELDS, "institution": "Tredje"})
    assert status == 201
    status, _, body = client.request("POST", "/access/", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 429, body
    status, throttled = client.json("POST", "/access/requests", REQUEST_FIELDS)
    assert status == 429
    # The throttle told 127.0.0.9 from 127.0.0.1: the server did see the distinctive address.
    other = requests.post(server.url + "/access/requests", json=REQUEST_FIELDS, timeout=10)
    assert other.status_code == 201
    assert mailbox.wait_for(4)

    # The owner decides: one shown at once, one released through the emailed link, one denied.
    status, listed = client.json("GET", "/api/requests", auth=owner)
    assert status == 200
    assert len(listed["requests"]) == 4
    status, shown = client.json("POST", f"/api/requests/{form_request}/approve", {"show": True}, auth=owner)
    assert status == 200, shown
    crawler = (shown["username"], shown["password"])
    status, emailed = client.json("POST", f"/api/requests/{created['id']}/approve", {"valid_days": 30}, auth=owner)
    assert status == 200 and emailed["release_emailed_to"] == REQUEST_FIELDS["contact_email"]
    status, _ = client.json("POST", f"/api/requests/{third['id']}/deny", {"reason": "dublet"}, auth=owner)
    assert status == 200
    text = mailbox.wait_for(5)[-1].get_content()
    link = urlsplit(next(word for word in text.split() if "/access/release/" in word)).path
    status, _, release_page = client.request("GET", link)
    assert status == 200
    token = urlencode({"csrf_token": hidden_token(release_page)}).encode()
    status, _, released = client.request("POST", link, token, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    second_crawler = (text_of(released, "username"), text_of(released, "password"))
    assert client.request("GET", link)[0] == 410

    # Basic auth: right, wrong, a guesser refused; downloads whole, ranged, HEAD, abandoned.
    file_path = "/files/kursus/v1/kursus.pdf"
    assert client.request("GET", "/protected/", auth=crawler)[0] == 200
    assert client.request("GET", "/protected/", auth=(crawler[0], "wrong"))[0] == 401
    status, _, data = client.request("GET", file_path, auth=crawler)
    assert status == 200 and data == protected
    status, _, data = client.request("GET", file_path, headers={"Range": "bytes=0-99"}, auth=second_crawler)
    assert status == 206 and data == protected[:100]
    assert client.request("HEAD", file_path, auth=second_crawler)[0] == 200
    connection = client.connect()
    connection.request(
        "GET",
        file_path,
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{second_crawler[0]}:{second_crawler[1]}".encode()).decode()
        },
    )
    response = connection.getresponse()
    assert response.status == 200
    response.read(64 * 1024)
    connection.close()
    assert client.request("GET", file_path, auth=("crawler-00000000", "wrong"))[0] == 401
    status, headers, _ = client.request("GET", "/protected/", auth=(second_crawler[0], "guess"))
    assert status == 429 and headers["Retry-After"]  # this client failed 3 times (counted as an HMAC only)
    assert client.request("GET", "/protected/", auth=second_crawler)[0] == 200  # a verified password still passes

    # A crawl, as the deposit institution's crawler does it.
    crawl = subprocess.run(
        [
            "wget",
            f"--bind-address={CLIENT_IP}",
            "--recursive",
            "--level=5",
            "--no-verbose",
            "--tries=1",
            f"--user={crawler[0]}",
            f"--password={crawler[1]}",
            "--directory-prefix",
            str(tmp_path / "crawl"),
            f"{server.url}/",
            f"{server.url}/protected/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crawl.returncode in (0, 8), crawl.stderr
    crawled = [p.read_bytes() for p in (tmp_path / "crawl").rglob("*") if p.is_file()]
    assert protected in crawled, crawl.stderr

    # The owner's view of all this.
    for path in ("/api/credentials", "/api/harvest", "/api/audit", "/api/audit/verify"):
        status, answer = client.json("GET", path, auth=owner)
        assert status == 200, (path, answer)
    status, _answer = client.json("POST", f"/api/credentials/{shown['credential']}/revoke", auth=owner)
    assert status == 200
    assert client.request("GET", file_path, auth=crawler)[0] == 401
    assert (
        client.request("POST", "/api/requests/1/approve", b"{}", {"Origin": "https://evil.example"}, auth=owner)[0]
        == 403
    )

    # While the server runs (the catalog's -wal and -shm exist), and after it stopped.
    time.sleep(0.5)  # downloads are recorded as their responses close
    log = tmp_path / "server.log"
    assert any(name.endswith("-wal") for name in instance_files(instance)), instance_files(instance)
    assert leaks([instance.path, log]) == []
    stop_server(server)
    assert log.read_text().count('"GET /protected/ HTTP/1.1" 200') >= 2  # the log is written, without addresses
    assert leaks([instance.path, log]) == []
    for message in mailbox.messages:
        assert not [needle for needle in NEEDLES if needle in message.as_bytes()]


def test_a_malformed_request_does_not_log_the_address(instance: Instance, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = start_server(instance.path, log, env={"PLIGT_WORKERS": "1"})
    try:
        client = Client(server)
        for raw in (
            b"NOT HTTP AT ALL\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            b"\x16\x03\x01\x00\xa5",
        ):
            with socket.create_connection(
                (client.host, client.port), timeout=10, source_address=(CLIENT_IP, 0)
            ) as sock:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
        assert client.request("GET", "/")[0] == 200
    finally:
        stop_server(server)

    assert leaks([instance.path, log]) == [], log.read_text()


def test_a_forwarded_client_address_is_used_only_in_memory(
    instance: Instance, tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    """Behind a trusted proxy the request form's throttle counts the forwarded address; nothing keeps it."""
    _, smtp_port = smtp
    archive = build_archive(instance.settings)
    archive.publish([pdf_bytes("offentlig")], filename="offentlig.pdf", visibility="public")
    archive.publish([pdf_bytes("beskyttet")], filename="beskyttet.pdf", visibility="protected")
    log = tmp_path / "server.log"
    env = {
        **smtp_env(smtp_port),
        "PLIGT_WORKERS": "1",
        "PLIGT_TRUSTED_PROXIES": "1",
        "PLIGT_REQUESTS_PER_HOUR_PER_CLIENT": "2",
    }
    server = start_server(instance.path, log, env=env)
    forwarded = {"X-Forwarded-For": FORWARDED_IP, "X-Forwarded-Proto": "https"}
    try:
        with requests.Session() as http:
            http.headers.update(forwarded)
            assert http.get(f"{server.url}/access/", timeout=30).status_code == 200
            filed = [
                http.post(f"{server.url}/access/requests", json=REQUEST_FIELDS, timeout=30).status_code
                for _ in range(3)
            ]
            assert filed == [201, 201, 429]  # the throttle did count this client
            assert http.get(f"{server.url}/files/offentlig/v1/offentlig.pdf", timeout=30).status_code == 200
            assert (
                http.get(f"{server.url}/files/beskyttet/v1/beskyttet.pdf", auth=("nobody", "wrong"), timeout=30)
            ).status_code == 401
    finally:
        stop_server(server)

    assert log.read_text().count('"POST /access/requests HTTP/1.1"') == 3  # the log was written
    assert leaks([instance.path, log], needles(FORWARDED_IP)) == [], log.read_text()
