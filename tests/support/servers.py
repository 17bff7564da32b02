"""A real ``pligt serve`` process on a free loopback port, handed over once it is healthy."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.cli import PLIGT
from tests.support.net import ServerDidNotStart
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_lines(self, containing: str, at_least: int = 1, timeout: float = 5) -> list[str]:
        """The server log's lines with ``containing``, once there are ``at_least`` of them.

        The access log is written every half second (pligt/server/), so a test
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
    """Start `pligt serve` as a real process; return it once /healthz says it is healthy.

    :raises ServerDidNotStart: with the log, if it exits, stays silent, or answers unhealthy.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_process(
        [PLIGT, "serve", "--instance", str(instance_path), "--port", str(port), *extra],
        log,
        url + "/healthz",
        env={**os.environ, **(env or {})},
    )
    server = Server(url, process, log)
    health = requests.get(url + "/healthz", timeout=30)
    if health.status_code != 200:
        stop_server(server)
        raise ServerDidNotStart(f"pligt serve answers {health.status_code} {health.text}:\n{log.read_text()}")
    return server


def stop_server(server: Server) -> None:
    """Stop the server: SIGTERM, then SIGKILL if it lingers."""
    stop_process(server.process)
