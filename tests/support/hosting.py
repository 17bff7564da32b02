"""A deployment of publishers, made with ``pligt publishers add`` and served by a real ``pligt serve --deployment``.

Every publisher's name resolves, for the tests, to 127.0.0.1: requests go to the
server's loopback port with the publisher's name in the ``Host`` header, as a
client whose DNS points the name at this machine would send them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TypeVar

import requests

from pligt.core import Archive
from pligt.hosting import load_deployment
from pligt.instance import build_archive
from tests.support.cli import PLIGT
from tests.support.cli import invoke
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process

T = TypeVar("T")


@dataclass
class Hosted:
    """A deployment folder, its publishers' owner passwords, and the server that serves them (once started)."""

    folder: Path
    passwords: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, name: str, **options: str) -> dict[str, Any]:
        """``pligt publishers add NAME --json``; remember the owner's password."""
        extra = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        result = invoke(
            "publishers",
            "add",
            "--deployment",
            str(self.folder),
            name,
            "--owner-email",
            f"owner@{name}",
            "--json",
            *extra,
        )
        assert result.exit_code == 0, result.output
        made: dict[str, Any] = json.loads(result.stdout)
        self.passwords[made["name"]] = made["password"]
        return made

    def archive(self, name: str) -> Archive:
        """Open a publisher's archive, as the CLI does (the caller closes its catalog)."""
        deployment = load_deployment(self.folder)
        return build_archive(deployment.publisher_settings(name, env={}))

    def get(self, host: str, path: str = "/", **kwargs: Any) -> requests.Response:
        """GET ``path`` from the server with ``Host: host``."""
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return requests.get(self.url + path, headers=headers, timeout=30, allow_redirects=False, **kwargs)

    def request(self, method: str, host: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Host": host, **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, allow_redirects=False, **kwargs)

    def session(self, host: str) -> requests.Session:
        """A client session that sends ``Host: host`` with each request (cookies kept, as a browser's)."""
        s = requests.Session()
        s.headers["Host"] = host
        return s

    def raw(self, head: bytes, source: str = "127.0.0.1") -> bytes:
        """Send a request head as it is written (no client library tidies it up); return the whole answer.

        :param source: the loopback address the client connects from (a client of its own for the lock-outs).
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=30, source_address=(source, 0)) as sock:
            sock.sendall(head)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def wait_for(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 15) -> T:
    """Read until ``done`` says the value is there (the server writes some things every half second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def make_deployment(folder: Path, *names: str, text: str = 'scheme = "http"\n') -> Hosted:
    """A deployment folder with ``deployment.toml`` holding ``text``, and the publishers ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deployment.toml").write_text(text, encoding="utf-8")
    hosted = Hosted(folder)
    for name in names:
        hosted.add(name)
    return hosted


def serve(hosted: Hosted, log: Path, *extra: str, env: dict[str, str] | None = None, port: int | None = None) -> Hosted:
    """Start ``pligt serve --deployment`` on ``port`` (default: a free one); return once it answers its health check."""
    hosted.port = port or free_port()
    hosted.process = start_process(
        [PLIGT, "serve", "--deployment", str(hosted.folder), "--port", str(hosted.port), *extra],
        log,
        f"{hosted.url}/healthz",
        env={**os.environ, **(env or {})},
    )
    return hosted


def stop(hosted: Hosted) -> None:
    if hosted.process is not None:
        stop_process(hosted.process)
