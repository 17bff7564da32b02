"""Pligt behind PgBouncer in transaction pooling, where any transaction may run on another server connection.

Nothing Pligt relies on may live in a database session: no named prepared
statement (psycopg's own included), no setting it needs on "its" connection.
The catalog contract suite runs through PgBouncer too (tests/test_catalog_contract.py);
here, end to end: two ``pligt serve`` processes through one pooler answer a
crawl the Heritrix way, a revocation is refused by both at the very next
request, parallel approvals give one credential, and the audit log verifies;
and a write keeps its busy timeout whichever server connection it is given.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import requests

from pligt.core.catalog import open_catalog
from pligt.core.catalog.postgresql import WRITE_LOCK
from pligt.core.errors import CatalogBusy
from pligt.instance import build_archive
from pligt.instance import init_instance
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.access import basic_header
from tests.support.access import issue_credential
from tests.support.cli import PLIGT
from tests.support.data import pdf_bytes
from tests.support.pgbouncer import Bouncer
from tests.support.pgbouncer import start_bouncer
from tests.support.postgres import Cluster
from tests.support.servers import start_server
from tests.support.servers import stop_server

FILES = 12
RACERS = 6


@pytest.fixture
def one_connection(postgres: Cluster) -> Iterator[Bouncer]:
    """A PgBouncer of this test's own with one server connection, which every client shares."""
    bouncer = start_bouncer(postgres, pool_size=1)
    yield bouncer
    bouncer.stop()


def test_a_write_keeps_its_busy_timeout_whichever_server_connection_it_is_given(
    postgres: Cluster, one_connection: Bouncer, tmp_path: Path
) -> None:
    database = postgres.new_database()
    waiter = open_catalog(one_connection.url(database), tmp_path, busy_timeout=0.5)
    waiter.migrate()
    # Another client of the pooler changes the session of the one server connection under the waiter.
    with psycopg.connect(one_connection.url(database), autocommit=True) as other:
        other.execute("SET lock_timeout = 0")  # wait for ever
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            waiter.append_audit("test.waiting", {}, None, datetime.now(UTC))
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    with psycopg.connect(database) as holder:  # another app server's write, directly on the database
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        thread.join(15)
        assert not thread.is_alive(), "the write waited past its busy timeout"
    assert isinstance(outcome[0], CatalogBusy), outcome
    waiter.close()


def test_two_servers_through_pgbouncer_serve_revoke_and_decide_as_one(pgbouncer_url: str, tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "instance", env={"PLIGT_CATALOG": pgbouncer_url})
    init_instance(settings, chosen=("catalog",))
    archive = build_archive(settings)
    files = {}
    for n in range(FILES):
        data = pdf_bytes(f"kursus {n}", pad=20_000 * n)
        archive.publish([data], filename=f"kursus-{n}.pdf", slug=f"kursus-{n}", visibility="protected")
        files[f"/files/kursus-{n}/v1/kursus-{n}.pdf"] = data
    credential, password = issue_credential(archive)
    basic = basic_header(credential, password)
    # Two app servers on one instance folder (one machine's files), each with its own pools and main loops.
    servers = [start_server(settings.instance, tmp_path / f"server-{n}.log") for n in range(2)]
    try:
        sessions = [requests.Session() for _ in servers]
        for n, (path, data) in enumerate(files.items()):  # the Heritrix way, alternating servers
            server, session = servers[n % 2], sessions[n % 2]
            challenged = session.get(server.url + path, timeout=30)
            assert challenged.status_code == 401 and "WWW-Authenticate" in challenged.headers
            fetched = session.get(server.url + path, headers={"Authorization": basic}, timeout=30)
            assert fetched.status_code == 200 and fetched.content == data, path
        path = next(iter(files))
        for server, session in zip(servers, sessions, strict=True):  # answered from memory now
            assert session.get(server.url + path, headers={"Authorization": basic}, timeout=30).status_code == 200
        archive.access.revoke(credential.id)
        for server, session in zip(servers, sessions, strict=True):
            assert session.get(server.url + path, headers={"Authorization": basic}, timeout=30).status_code == 401
        request = archive.access.file(dict(REQUEST_FIELDS))
        command = [PLIGT, "approve", str(request.id), "--json", "--instance", str(settings.instance)]
        racers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(RACERS)]
        errors = [racer.communicate(timeout=120)[1].decode() for racer in racers]
        codes = [racer.returncode for racer in racers]
        assert sorted(codes) == [0] + [5] * (RACERS - 1), errors
        assert len([c for c in archive.access.credentials() if c.request_id == request.id]) == 1
    finally:
        for server in servers:
            stop_server(server)
    archive.verify_audit()
    for server in servers:
        log = server.log.read_text(errors="replace")
        assert "Traceback" not in log and "prepared statement" not in log, log[-3000:]
