"""`pligt serve` as a process: its workers share password checks, and it keeps its port to itself."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import time
from io import BufferedReader
from multiprocessing.context import ForkContext
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from pligt.core.credentials.shared_checks import SharedChecks
from pligt.instance import build_archive
from tests.support.access import issue_credential
from tests.support.app import Instance
from tests.support.cli import run_cli
from tests.support.servers import start_server
from tests.support.servers import stop_server


def worker_connections(server_pid: int, port: int) -> dict[int, int]:
    """How many established connections each worker of the server holds on ``port``."""
    counts = {}
    for worker in psutil.Process(server_pid).children():
        counts[worker.pid] = sum(
            1 for c in worker.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
    return counts


def test_one_slow_password_check_serves_every_worker(instance: Instance, tmp_path: Path) -> None:
    archive = build_archive(instance.settings)
    version = archive.publish([b"Deposit.\n"], filename="report.txt", visibility="protected").version
    credential, password = issue_credential(archive)
    server = start_server(instance.path, tmp_path / "server.log")
    sessions: list[requests.Session] = []
    try:
        url = f"{server.url}/files/{version.slug}/v1/report.txt"
        assert requests.get(url, auth=(credential.username, password), timeout=30).status_code == 200
        # From now on a slow check of this password would fail: only a remembered check can pass.
        with sqlite3.connect(instance.settings.catalog) as db:
            db.execute("UPDATE credentials SET password_hash = 'scrypt$broken' WHERE id = ?", (credential.id,))

        port = urlsplit(server.url).port
        assert port is not None
        while len(sessions) < 64 and min(worker_connections(server.process.pid, port).values()) == 0:
            session = requests.Session()
            sessions.append(session)
            response = session.get(url, auth=(credential.username, password), timeout=30)
            assert (response.status_code, response.content) == (200, b"Deposit.\n")
        assert len(worker_connections(server.process.pid, port)) == 2
        assert min(worker_connections(server.process.pid, port).values()) > 0, "one worker got every connection"
    finally:
        for session in sessions:
            session.close()
        stop_server(server)


def test_a_second_server_on_the_same_port_is_refused(instance: Instance, tmp_path: Path) -> None:
    server = start_server(instance.path, tmp_path / "server.log")
    try:
        port = str(urlsplit(server.url).port)
        second = run_cli("serve", "--instance", str(instance.path), "--port", port)
        assert second.returncode == 7
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "Pligt serves" not in second.stderr
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        stop_server(server)


def test_an_address_that_cannot_be_listened_on_is_a_clear_error(instance: Instance) -> None:
    result = run_cli("serve", "--instance", str(instance.path), "--host", "no-such-host.invalid", "--port", "8000")
    assert result.returncode == 7
    assert "cannot listen on no-such-host.invalid:8000" in result.stderr
    assert "Pligt serves" not in result.stderr


# -- the shared memory itself, across real forks --------------------------------------------


def _remember_in_child(shared: SharedChecks, digest: bytes) -> None:
    shared.put(digest, 42, 60)


def _hold_the_lock_and_die(shared: SharedChecks) -> None:
    shared._lock.acquire()  # as a worker killed inside the critical section
    os._exit(0)


@pytest.fixture
def fork() -> ForkContext:
    return multiprocessing.get_context("fork")  # how gunicorn starts its workers


def test_a_check_remembered_in_one_process_is_found_in_another(fork: ForkContext) -> None:
    shared = SharedChecks()
    digest = shared.digest("crawler", "netarkivet", "secret")
    child = fork.Process(target=_remember_in_child, args=(shared, digest))
    child.start()
    child.join(10)
    assert shared.get(digest) == 42
    assert shared.get(shared.digest("crawler", "netarkivet", "wrong")) is None


def test_remembered_checks_lapse_and_a_full_table_forgets_the_oldest() -> None:
    shared = SharedChecks(slots=4)
    shared.put(b"a" * 32, 1, 0.05)
    time.sleep(0.1)
    assert shared.get(b"a" * 32) is None
    digests = [bytes([n]) * 32 for n in range(1, 7)]
    for n, digest in enumerate(digests):
        shared.put(digest, n, 60 + n)
    assert sum(shared.get(d) is not None for d in digests) == 4
    assert shared.get(digests[-1]) == 5


def test_a_process_that_died_holding_the_lock_costs_a_slow_check_not_a_hang(fork: ForkContext) -> None:
    shared = SharedChecks()
    digest = shared.digest("crawler", "netarkivet", "secret")
    shared.put(digest, 7, 60)
    child = fork.Process(target=_hold_the_lock_and_die, args=(shared,))
    child.start()
    child.join(10)
    began = time.monotonic()
    assert shared.get(digest) is None  # not found: the caller checks the password itself
    shared.put(digest, 7, 60)  # and cannot remember it, without waiting either
    assert time.monotonic() - began < 1


# -- one connection, many requests ----------------------------------------------------------


def read_response(stream: BufferedReader) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response with a Content-Length from a socket file."""
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, stream.read(length)


def test_a_lone_connection_is_served_request_after_request_pipelined_or_not(instance: Instance, tmp_path: Path) -> None:
    archive = build_archive(instance.settings)
    bodies = {n: f"File {n}\n".encode() * (n + 1) for n in range(5)}
    for n, body in bodies.items():
        archive.publish([body], filename=f"f{n}.txt", visibility="public")
    server = start_server(instance.path, tmp_path / "server.log")
    try:
        address = ("127.0.0.1", urlsplit(server.url).port)
        with socket.create_connection(address, timeout=10) as conn, conn.makefile("rb") as stream:
            for _ in range(3):  # one after another, as a harvester asks
                for n, body in bodies.items():
                    conn.sendall(f"GET /files/f{n}/v1/f{n}.txt HTTP/1.1\r\nHost: pligt\r\n\r\n".encode())
                    assert read_response(stream) == (200, body)
            # Several requests in one write (pipelined), and a body nobody reads on the way.
            burst = b"".join(f"GET /files/f{n}/v1/f{n}.txt HTTP/1.1\r\nHost: pligt\r\n\r\n".encode() for n in bodies)
            ignored = b"POST /robots.txt HTTP/1.1\r\nHost: pligt\r\nContent-Length: 5\r\n\r\nhello"
            conn.sendall(ignored + burst)
            assert read_response(stream)[0] == 405
            assert [read_response(stream) for _ in bodies] == [(200, body) for body in bodies.values()]
    finally:
        stop_server(server)
