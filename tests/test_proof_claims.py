"""The proof of deposit says only what it can prove (issue 21, part 4), shown through a real `pligt serve`.

"Held" needs a recorded whole download by the institution (any of its request's
credentials): a 200 with every byte sent, or a 206 whose range was the whole file.
A later 304 to it is a revisit of a held version. A 304 without a whole download
is what it is: the client named the version (by an ETag a HEAD gives, or by any
date at or after Last-Modified, one in the future included) and took no byte. A
HEAD, an aborted GET and a range short of the file prove nothing held either.
Each test files its own access request, makes its requests over HTTP to one
running server, waits until the server has written its records (a marker
download after them) and reads `pligt harvest` as the owner would.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
import requests
from werkzeug.http import http_date

from pligt.core import Archive
from pligt.core.models import Credential
from pligt.core.models import Version
from pligt.instance import init_instance
from pligt.settings import load_settings
from pligt.web.services import pligt
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.app import make_app
from tests.support.cli import run_cli
from tests.support.data import pdf_bytes
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.server

#: Larger than what the loopback's socket buffers take in, so a client that stops reading stops the send.
LARGE = 32 * 1024 * 1024
KURSUS = pdf_bytes("kursus", pad=5000)
#: Fetched whole after a test's requests: once its record is written, so are theirs (one worker).
MARKER = pdf_bytes("markør")


@dataclass
class Running:
    """One `pligt serve` (one worker: its download records are written in order) for the module's tests."""

    instance: Instance
    archive: Archive
    server: Server


@dataclass
class Site:
    """The running server's protected version, and one institution's request and credential for it.

    Each test files its own request: the proof of deposit is per request, so the
    tests share the server and the version and still see only their own records.
    """

    running: Running
    version: Version
    credential: Credential
    password: str

    @property
    def archive(self) -> Archive:
        return self.running.archive

    def url_of(self, version: Version) -> str:
        return f"{self.running.server.url}/files/{version.slug}/v{version.number}/{version.filename}"

    @property
    def url(self) -> str:
        return self.url_of(self.version)

    @property
    def auth(self) -> tuple[str, str]:
        return self.credential.username, self.password

    def report(self, marker_auth: tuple[str, str] | None = None) -> dict[str, Any]:
        """The version's row of `pligt harvest --json` for this request, once the server has written its records."""
        marker = self.archive.item_versions("marker")[0]
        assert requests.get(self.url_of(marker), auth=marker_auth or self.auth, timeout=10).status_code == 200
        wait_for_record(self.archive, self.credential.request_id, "marker")
        result = run_cli("harvest", "--json", "--instance", str(self.running.instance.path))
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        [row] = [r for r in rows if r["request"] == self.credential.request_id and r["slug"] == self.version.slug]
        return dict(row)

    def text(self) -> str:
        """The version's line of `pligt harvest` for this request (after :meth:`report`)."""
        result = run_cli("harvest", "--instance", str(self.running.instance.path))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(f"Request #{self.credential.request_id} "))
        return next(ln for ln in lines[start + 1 :] if ln.startswith(f"  {self.version.slug} v{self.version.number} "))


def wait_for_record(archive: Archive, request_id: int, slug: str, timeout: float = 10) -> dict[str, Any]:
    """Wait for the server to write a download record of ``slug`` by a credential of the request; return it."""
    credentials = [c.id for c in archive.access.credentials() if c.request_id == request_id]
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in archive.catalog.downloads_of(credentials) if r["slug"] == slug]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no download record of {slug} by request {request_id}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("proof-claims")
    settings = load_settings(folder / "instance", env={})
    instance = Instance(settings, init_instance(settings))
    clock = Clock()
    clock.now = datetime.now(UTC).replace(microsecond=0)
    app = make_app(instance.settings, clock)
    with app.app_context():
        archive = pligt().archive
    archive.publish([KURSUS], filename="kursus.pdf", slug="kursus", visibility="protected")
    archive.publish([MARKER], filename="marker.pdf", slug="marker", visibility="protected")
    archive.checkpoints.wait()
    server = start_server(instance.path, folder / "server.log", env={"PLIGT_WORKERS": "1"})
    yield Running(instance, archive, server)
    stop_server(server)


@pytest.fixture
def site(running: Running) -> Site:
    credential, password = issue_credential(running.archive)  # a request of its own
    return Site(running, running.archive.item_versions("kursus")[0], credential, password)


def large_file() -> Iterator[bytes]:
    head = pdf_bytes("stort")
    yield head
    chunk = b"\0" * (1024 * 1024)
    for _ in range(LARGE // len(chunk)):
        yield chunk


def assert_not_held(row: dict[str, Any], line: str) -> None:
    assert row["complete_at"] is None and row["revisit_confirmed_at"] is None
    assert "held" not in line and "revisit" not in line


# -- a 304 alone ---------------------------------------------------------------------------------


def test_a_future_if_modified_since_gets_a_304_and_proves_nothing(site: Site) -> None:
    # RFC 9110 §13.1.3: the condition is false when Last-Modified is at or before the date, and a
    # date in the future is no longer invalid (RFC 2616 §14.25 said so; RFC 7232 and 9110 dropped
    # it): the 304 is the right answer, as werkzeug's is_resource_modified gives it too.
    future = datetime.now(UTC) + timedelta(days=365)
    answer = requests.get(site.url, auth=site.auth, headers={"If-Modified-Since": http_date(future)}, timeout=10)
    assert answer.status_code == 304

    row = site.report()
    assert row["state"] == "named"
    assert (row["not_modified_credential"], row["attributed_by"]) == (site.credential.id, "credential")
    line = site.text()
    assert_not_held(row, line)
    assert (
        "NOT TAKEN: answered 304" in line and "(the client named this version; no whole download is recorded)" in line
    )


def test_an_etag_from_a_head_names_the_version_and_takes_nothing(site: Site) -> None:
    head = requests.head(site.url, auth=site.auth, timeout=10)
    assert head.status_code == 200
    answer = requests.get(site.url, auth=site.auth, headers={"If-None-Match": head.headers["ETag"]}, timeout=10)
    assert answer.status_code == 304 and answer.content == b""

    row = site.report()
    assert row["state"] == "named"
    assert_not_held(row, site.text())


def test_a_head_alone_is_not_a_fetch(site: Site) -> None:
    assert requests.head(site.url, auth=site.auth, timeout=10).status_code == 200

    row = site.report()
    assert (row["state"], row["fetched_at"], row["not_modified_at"]) == ("not fetched", None, None)
    assert "NOT FETCHED" in site.text()


# -- held, and revisited -------------------------------------------------------------------------


def test_a_304_after_a_whole_download_by_any_of_the_requests_credentials_is_a_revisit(site: Site) -> None:
    whole = requests.get(site.url, auth=site.auth, timeout=10)
    assert whole.status_code == 200 and len(whole.content) == site.version.size
    rotated = site.archive.access.rotate(site.credential.id, 30)  # the same request's next credential
    again = requests.get(
        site.url,
        auth=(rotated.credential.username, rotated.password),
        headers={"If-None-Match": whole.headers["ETag"]},
        timeout=10,
    )
    assert again.status_code == 304

    row = site.report(marker_auth=(rotated.credential.username, rotated.password))
    assert (row["state"], row["credential"]) == ("fetched", site.credential.id)
    assert row["revisit_credential"] == rotated.credential.id and row["revisit_confirmed_at"] >= row["complete_at"]
    line = site.text()
    assert f"held: fetched whole {row['complete_at'][:10]}" in line and f"with credential {site.credential.id}" in line
    assert f"revisited (304) {row['revisit_confirmed_at'][:10]}" in line
    assert f"with credential {rotated.credential.id}" in line and "NOT TAKEN" not in line


@pytest.mark.parametrize(
    ("span", "state"),
    [("bytes=0-99", "partial"), ("bytes=100-", "partial"), ("bytes=0-", "fetched")],
    ids=["the start", "the rest", "the whole file"],
)
def test_a_range_is_a_whole_download_only_if_it_is_the_whole_file(site: Site, span: str, state: str) -> None:
    answer = requests.get(site.url, auth=site.auth, headers={"Range": span}, timeout=10)
    assert answer.status_code == 206

    row = site.report()
    assert (row["state"], row["credential"]) == (state, site.credential.id)
    line = site.text()
    if state == "partial":
        assert_not_held(row, line)
        assert "fetched PARTIALLY" in line


def test_two_ranges_that_cover_the_file_together_are_not_a_whole_download(site: Site) -> None:
    # The records keep how many bytes each answer sent, not which: pieces are not added up.
    first = requests.get(site.url, auth=site.auth, headers={"Range": "bytes=0-99"}, timeout=10)
    rest = requests.get(site.url, auth=site.auth, headers={"Range": "bytes=100-"}, timeout=10)
    assert first.content + rest.content == KURSUS

    row = site.report()
    assert row["state"] == "partial"
    assert_not_held(row, site.text())


# -- an aborted download -------------------------------------------------------------------------


def test_a_get_cut_off_by_the_client_is_partial(site: Site) -> None:
    large = site.archive.publish(large_file(), filename="stort.pdf", slug="stort", visibility="protected").version
    site.version = large
    host, port = site.running.server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            f"GET {site.url.removeprefix(site.running.server.url)} HTTP/1.0\r\nHost: {host}:{port}\r\n"
            f"Authorization: {basic_header(site.credential, site.password)}\r\n\r\n".encode()
        )
        status_line = conn.recv(65536).split(b"\r\n", 1)[0]
        assert status_line.endswith(b" 200 OK"), status_line  # the answer starts, then the client goes
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    record = wait_for_record(site.archive, site.credential.request_id, "stort")  # once the server notices
    assert (record["status"], record["complete"]) == (200, 0)
    assert record["bytes_sent"] < large.size

    row = site.report()
    assert (row["state"], row["credential"]) == ("partial", site.credential.id)
    assert_not_held(row, site.text())
