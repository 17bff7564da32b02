"""Shared fixtures: an initialised instance, the app on it, a clock tests control,
sample files, and a real `pligt serve` process."""

from __future__ import annotations

import io
import os
import pty
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from flask.testing import FlaskClient

from archive import Archive
from deposit.instance import Initialised
from deposit.instance import init_instance
from deposit.settings import Settings
from deposit.settings import load_settings
from deposit.web import create_app
from deposit.web.services import pligt

pytest_plugins = ["tests.s3_fixtures", "tests.browser_plugin"]

PLIGT = str(Path(sys.executable).with_name("pligt"))


class Clock:
    """A clock the tests move forward; the archive asks it for 'now'."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Instance:
    settings: Settings
    owner: Initialised

    @property
    def path(self) -> Path:
        return self.settings.instance

    @property
    def owner_auth(self) -> tuple[str, str]:
        return (self.owner.username, self.owner.password)


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    settings = load_settings(tmp_path / "instance", env={})
    return Instance(settings, init_instance(settings))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(instance: Instance, clock: Clock):  # noqa: ANN201
    return make_app(instance.settings, clock)


class BufferedClient(FlaskClient):
    """The test client: an English-speaking browser that reads each response whole and
    closes it (as a WSGI server does). Tests of the Danish pages ask for Danish."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.environ_base.setdefault("HTTP_ACCEPT_LANGUAGE", "en")

    def open(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(settings: Settings, clock: Clock):  # noqa: ANN201
    """Build the app for tests: testing mode, buffered test client."""
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True
    app.test_client_class = BufferedClient
    return app


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    return app.test_client()


@pytest.fixture
def archive(app) -> Archive:  # noqa: ANN001
    with app.app_context():
        return pligt().archive


# -- reading pages ---------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def links(html: str) -> list[str]:
    """Return the targets of every plain <a href> link of a page, percent-decoded."""
    parser = _Links()
    parser.feed(html)
    return [unquote(href) for href in parser.hrefs]


# -- sample files ---------------------------------------------------------------


def pdf_bytes(text: str = "Pligt brochure", pad: int = 0) -> bytes:
    """A small but well-formed PDF (libmagic says application/pdf)."""
    body = f"%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\n".encode() + b"%" + b"x" * pad + b"\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


#: A plain start for random test data: about 1 % of purely random blobs look like a
#: DOS program to libmagic (a jump instruction first) and would be refused.
BINARY_HEADER = b"Pligt test data, not a program.\n\x00\x01"


def binary_bytes(size: int) -> bytes:
    """Random bytes of ``size`` that libmagic calls application/octet-stream."""
    return (BINARY_HEADER + os.urandom(max(0, size - len(BINARY_HEADER))))[:size]


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "not a pdf")
    return buffer.getvalue()


def elf_bytes() -> bytes:
    return Path(shutil.which("true") or "/bin/true").read_bytes()


def pe_bytes() -> bytes:
    """The start of a Windows PE executable: an MZ header pointing at a PE header."""
    header = bytearray(b"MZ" + b"\x90\x00" + b"\x00" * 56)
    header[0x3C:0x40] = (64).to_bytes(4, "little")
    return bytes(header) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200


# -- a real server process ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_lines(self, containing: str, at_least: int = 1, timeout: float = 5) -> list[str]:
        """The server log's lines with ``containing``, once there are ``at_least`` of them.

        The access log is written every half second (deposit/server.py), so a test
        waits for it a little, as someone tailing the log would.
        """
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log.read_text().splitlines() if containing in line]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)


def start_server(
    instance_path: Path, log: Path, *extra: str, env: dict[str, str] | None = None, port: int | None = None
) -> Server:
    """Start `pligt serve` as a real process and wait until /healthz answers."""
    port = port or free_port()
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [PLIGT, "serve", "--instance", str(instance_path), "--port", str(port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pligt serve exited with {process.returncode}: {log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(url, process, log)
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"pligt serve did not come up: {log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def server(instance: Instance, tmp_path: Path) -> Iterator[Server]:
    running = start_server(instance.path, tmp_path / "server.log")
    yield running
    stop_server(running)


def run_on_terminal(*args: str) -> tuple[int, bytes]:
    """Run the `pligt` command with stderr on a pseudo-terminal; return its exit code and what it showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([PLIGT, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:  # read while it runs, until the child closes the terminal
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return process.wait(timeout=60), seen


def assert_json_error(response, status: int, *words: str) -> dict:  # noqa: ANN001
    """Assert a JSON error answer with ``status`` whose description has every word; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == status
    for word in words:
        assert word in body["description"], body["description"]
    return body


def run_cli(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `pligt` command as a user would."""
    return subprocess.run(
        [PLIGT, *args],
        input=input.decode() if input else None,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


# -- the access-request workflow, as a test shortcut ----------------------------------

REQUEST_FIELDS = {
    "institution": "Det Kgl. Bibliotek",
    "contact_name": "Netarkivet Høstning",
    "contact_email": "netarkivet@example.dk",
    "legal_basis": "",
    "message": "Vi anmoder om adgang til beskyttet materiale.",
}


def issue_credential(archive: Archive, valid_days: int = 365):  # noqa: ANN201
    """File, approve and release a request; return (credential, password) as the crawler gets them."""
    request = archive.access.file(dict(REQUEST_FIELDS))
    approval = archive.access.approve(request.id, valid_days=valid_days)
    archive.access.release(approval.release_token)
    return approval.credential, approval.password


# -- a real SMTP server on loopback ------------------------------------------------------


class Mailbox:
    """Messages a real SMTP server (aiosmtpd) received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=default))
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """Start an SMTP server on 127.0.0.1; yield its mailbox and port."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def smtp_env(port: int) -> dict[str, str]:
    """PLIGT_* settings that send mail through the test SMTP server."""
    return {
        "PLIGT_SMTP_HOST": "127.0.0.1",
        "PLIGT_SMTP_PORT": str(port),
        "PLIGT_SMTP_STARTTLS": "false",
        "PLIGT_SMTP_SENDER": "pligt@publisher.example.dk",
        "PLIGT_OWNER_EMAIL": "owner@publisher.example.dk",
    }
