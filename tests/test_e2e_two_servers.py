"""Two ``pligt serve`` processes (two "machines") on one PostgreSQL catalog and one S3 endpoint.

Each server has an instance folder of its own (a copy of the same pligt.toml
and secret key, as two machines would), on different ports; both point at
one database of the session's PostgreSQL cluster and one bucket of the moto
S3 server. A small load balancer in the test sends each request to the next
server in turn, and to the other when one stops answering, as a health-checked
one would. Checked here: a publication through one is served by the other at
once; a crawl that alternates between them gets every version, and its
downloads land in one report; a revocation through one is refused by the other
at the next request; one server killed (SIGKILL, workers and all) mid-harvest,
the harvest completes through the other without a single 5xx; the audit log
verifies afterwards.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from pligt.instance import build_archive
from pligt.settings import load_settings
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.cli import run_cli
from tests.support.data import pdf_bytes
from tests.support.s3 import Bucket
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.server

FILES = 16
#: Large enough that killing a server leaves responses half sent.
PAD = 1_500_000


@pytest.fixture(autouse=True)
def _fake_aws(aws_env: None) -> None:
    """Fake credentials, and nothing but 127.0.0.1 reachable."""


class Balancer:
    """Round robin over the servers; a server that fails a request is out from then on."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.down: set[str] = set()
        self.failovers = 0
        #: Responses that broke off after their status line (the server died while sending).
        self.cut = 0
        #: The server whose response body is being read right now, if any.
        self.streaming: str | None = None
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def get(self, path: str, auth: tuple[str, str] | None = None, slow: bool = False) -> tuple[int, bytes, str]:
        """GET ``path`` through the next live server; return the status, the whole body and who answered."""
        for _ in range(2 * len(self.servers)):
            with self._lock:
                server = self.servers[next(self._turn) % len(self.servers)]
            if server.url in self.down:
                continue
            started = False
            try:
                with requests.get(server.url + path, auth=auth, timeout=30, stream=True) as response:
                    started, body = True, b""
                    for chunk in response.iter_content(256 * 1024):
                        self.streaming = server.url
                        body += chunk
                        if slow:
                            time.sleep(0.02)
                    self.streaming = None
                    return response.status_code, body, server.url
            except requests.RequestException:
                self.streaming = None
                with self._lock:
                    self.down.add(server.url)
                    self.failovers += 1
                    self.cut += started
        raise AssertionError(f"no server answered {path}")


Fetched = list[tuple[int, bytes, str]]


def crawl(
    balancer: Balancer, paths: list[str], auth: tuple[str, str], *, slow: bool = False, into: Fetched | None = None
) -> Fetched:
    """Fetch every path as Heritrix does: without credentials first, with them after a 401 (into ``into``)."""
    fetched: Fetched = [] if into is None else into
    for path in paths:
        status, body, by = balancer.get(path, slow=slow)
        if status == 401:
            status, body, by = balancer.get(path, auth, slow=slow)
        fetched.append((status, body, by))
    return fetched


def kill_machine(server: Server) -> None:
    """SIGKILL the server's master and every worker, as a machine that fails takes them all."""
    master = psutil.Process(server.process.pid)
    for process in [*master.children(recursive=True), master]:
        process.kill()
    server.process.wait(10)


@pytest.fixture
def machines(tmp_path: Path, postgres_url: str, bucket: Bucket) -> Iterator[tuple[Instance, list[Server]]]:
    """One instance on PostgreSQL and S3, copied to a second "machine", both serving."""
    from pligt.instance import init_instance

    first = tmp_path / "machine-a"
    settings = load_settings(first, env={"PLIGT_CATALOG": postgres_url})
    owner = init_instance(settings, chosen=("catalog",))
    with settings.config_file.open("a", encoding="utf-8") as config:
        config.write(bucket.settings_toml())
    instance = Instance(load_settings(first, env={}), owner)
    second = tmp_path / "machine-b"
    shutil.copytree(first, second)
    servers: list[Server] = []
    try:
        for folder in (first, second):
            servers.append(start_server(folder, tmp_path / f"{folder.name}.log", "--workers", "1", "--threads", "8"))
        yield instance, servers
    finally:
        for server in servers:
            stop_server(server)


def versions_listed(server: Server, owner: tuple[str, str]) -> list[dict[str, Any]]:
    response = requests.get(server.url + "/api/items", auth=owner, timeout=30)
    assert response.status_code == 200, response.text
    return [v for item in response.json()["items"] for v in item["versions"] if v["withdrawn_at"] is None]


def test_two_servers_share_one_catalog_and_one_bucket_through_a_harvest_and_a_failure(
    machines: tuple[Instance, list[Server]],
) -> None:
    instance, (a, b) = machines
    owner = instance.owner_auth
    archive = build_archive(load_settings(instance.path, env={}))
    for n in range(FILES):
        archive.publish(
            [pdf_bytes(f"fil {n}", pad=PAD)], filename=f"fil-{n}.pdf", visibility="protected" if n % 2 else "public"
        )
    first, first_password = issue_credential(archive)
    second, second_password = issue_credential(archive)
    archive.catalog.close()

    # A publication through one is served by the other at once.
    published = requests.post(
        a.url + "/api/items",
        params={"filename": "ny.pdf", "visibility": "public"},
        data=pdf_bytes("ny"),
        auth=owner,
        timeout=30,
    )
    assert published.status_code == 201, published.text
    path = "/" + published.headers["Location"].split("/", 3)[3]
    served = requests.get(b.url + path, timeout=30)
    assert served.status_code == 200 and served.content == pdf_bytes("ny")

    # A crawl alternating between them gets every version; its records land in one report.
    listed = versions_listed(b, owner)
    paths = ["/" + v["url"].split("/", 3)[3] for v in listed]
    digests = [v["sha256"] for v in listed]
    balancer = Balancer([a, b])
    fetched = crawl(balancer, paths, (first.username, first_password))
    assert [status for status, _, _ in fetched] == [200] * len(paths)
    assert [hashlib.sha256(body).hexdigest() for _, body, _ in fetched] == digests
    assert {by for _, _, by in fetched} == {a.url, b.url} and balancer.failovers == 0
    deadline = time.monotonic() + 30
    while True:  # each server writes its download records within a second or so
        report = requests.get(a.url + "/api/harvest", auth=owner, timeout=30).json()["harvest"]
        mine = [row for row in report if row["request"] == first.request_id]
        if all(row["complete_at"] or row["anonymous_complete_at"] for row in mine) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # Public files were fetched without credentials (anonymous); protected ones with them, through both.
    assert len(mine) == len(paths) and all(row["complete_at"] or row["anonymous_complete_at"] for row in mine), mine
    credentialed = {by for (_, _, by), v in zip(fetched, listed, strict=True) if v["visibility"] == "protected"}
    assert credentialed == {a.url, b.url}
    assert all(row["complete_at"] for row in mine if row["visibility"] == "protected"), mine

    # A revocation through one is refused by the other at the very next request.
    protected = next(p for p, v in zip(paths, listed, strict=True) if v["visibility"] == "protected")
    assert requests.get(b.url + protected, auth=(first.username, first_password), timeout=30).status_code == 200
    revoked = requests.post(a.url + f"/api/credentials/{first.id}/revoke", auth=owner, timeout=30)
    assert revoked.status_code == 200, revoked.text
    assert requests.get(b.url + protected, auth=(first.username, first_password), timeout=30).status_code == 401

    # One server killed mid-harvest: the harvest completes through the other, without a 5xx.
    harvest: Fetched = []
    crawler = threading.Thread(
        target=crawl, args=(balancer, paths, (second.username, second_password)), kwargs={"slow": True, "into": harvest}
    )
    crawler.start()
    while (len(harvest) < 3 or balancer.streaming != a.url) and crawler.is_alive():
        time.sleep(0.002)
    kill_machine(a)  # while it sends a response of a megabyte and a half, read slowly
    killed_after = len(harvest)
    crawler.join(120)
    assert not crawler.is_alive()
    assert [status for status, _, _ in harvest] == [200] * len(paths)
    assert [hashlib.sha256(body).hexdigest() for _, body, _ in harvest] == digests
    assert balancer.down == {a.url} and balancer.failovers >= 1 and killed_after < len(paths)

    verified = requests.get(b.url + "/api/audit/verify", auth=owner, timeout=30)
    assert verified.status_code == 200 and verified.json()["ok"], verified.text
    checked = run_cli("audit", "verify", "--instance", str(instance.path))
    assert checked.returncode == 0, checked.stderr
