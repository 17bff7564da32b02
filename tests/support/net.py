"""A free loopback port, and a server process that is not handed over until it answers.

Used by the tests, the benchmarks and the screenshot script alike: one way to
start a real server and to know it is up.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path


class ServerDidNotStart(RuntimeError):
    """The process exited, or never answered, within its time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str, timeout: float = 1) -> bool:
    """Tell whether an HTTP server answers ``url`` at all (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


def start_process(
    argv: Sequence[str],
    log: Path,
    probe_url: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output in ``log``; return it once ``probe_url`` answers.

    :raises ServerDidNotStart: with the log's text, if it exits or stays silent.
    """
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(f"{argv[0]} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        if answers(probe_url):
            return process
        time.sleep(0.1)
    stop_process(process)
    output = log.read_text(errors="replace")
    raise ServerDidNotStart(f"{argv[0]} did not answer {probe_url} in {timeout:g} s:\n{output}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a started server: SIGTERM, then SIGKILL if it does not go in ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
