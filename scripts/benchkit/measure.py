"""The measurements, each against any server: wrk, slow clients, a wget harvest, curl and requests."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from .common import STEP_TIMEOUT
from .common import Failed
from .common import MiB
from .common import run
from .dataset import SMALL

SLOW_CLIENTS = 16
SLOW_RATE = 500_000  # bytes/s: Netarkivet's per-host politeness limit
SLOW_CHUNK = 16 * 1024

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZES = {"B": 1 / MiB, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0**2}


def basic(auth: tuple[str, str]) -> str:
    """The value of a Basic ``Authorization`` header."""
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


# -- wrk -------------------------------------------------------------------------------------


@dataclass
class Wrk:
    """What one wrk run reported."""

    requests_per_s: float
    mib_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    bad_status: int
    output: str


def wrk(url: str, auth: tuple[str, str], seconds: int, connections: int, threads: int = 2) -> Wrk:
    """Run wrk with a pre-emptive Basic header; parse its --latency report."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    args += ["-H", f"Authorization: {basic(auth)}", url]
    return parse_wrk(run(args, timeout=seconds + 60).stdout)


def parse_wrk(out: str) -> Wrk:
    """Read the figures of wrk's --latency report."""

    def number(pattern: str, default: float | None = None) -> float:
        match = re.search(pattern, out)
        if match is None:
            if default is not None:
                return default
            raise Failed(f"cannot read {pattern!r} in wrk's output:\n{out}")
        return float(match.group(1))

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.MULTILINE)
        if match is None:
            raise Failed(f"no {percent}% latency in wrk's output:\n{out}")
        return float(match.group(1)) * _UNITS[match.group(2)]

    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Wrk(
        requests_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        mib_per_s=float(transfer.group(1)) * _SIZES[transfer.group(2)] if transfer else 0.0,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        requests=int(number(r"(\d+) requests in")),
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        bad_status=int(number(r"Non-2xx or 3xx responses: (\d+)", 0)),
        output=out,
    )


# -- curl ------------------------------------------------------------------------------------


def curl_upload(url: str, auth: tuple[str, str], path: Path, netrc_dir: Path) -> tuple[float, dict[str, Any]]:
    """POST a file as a streamed body (curl -T, 64 KiB buffers); return seconds and the JSON answer."""
    netrc = netrc_dir / "owner.netrc"
    netrc.write_text(f"machine 127.0.0.1 login {auth[0]} password {auth[1]}\n")
    netrc.chmod(0o600)
    began = time.monotonic()
    result = run(
        ["curl", "-sS", "--netrc-file", str(netrc), "-X", "POST", "-T", str(path), "-H", "Expect:"]
        + ["-H", "Content-Type: application/octet-stream", "-w", "\n%{http_code}", url]
    )
    seconds = time.monotonic() - began
    body, _, status = result.stdout.rpartition("\n")
    if status != "201":
        raise Failed(f"upload of {path.name} answered {status}: {body[:500]}")
    answer: dict[str, Any] = json.loads(body)
    return seconds, answer


def curl_get(url: str, netrc: Path) -> int:
    """Download to /dev/null; return the bytes received."""
    result = run(
        ["curl", "-sS", "--fail", "--netrc-file", str(netrc), "-o", "/dev/null", "-w", "%{size_download}", url]
    )
    return int(result.stdout)


def sha256sum_seconds(path: Path) -> float:
    """The best of two runs of ``sha256sum`` over ``path``, in seconds: the reference for an upload."""
    best = float("inf")
    for _ in range(2):
        began = time.monotonic()
        run(["sha256sum", str(path)])
        best = min(best, time.monotonic() - began)
    return best


# -- slow clients ----------------------------------------------------------------------------


class Slow:
    """Slow clients: each GETs a URL and reads at most ``SLOW_RATE`` bytes/s, for a bounded time.

    (curl's ``--limit-rate`` overshoots several times over a window of seconds,
    so the pace is kept here, with a byte budget per elapsed time.)
    """

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.received: list[int] = []
        self.stop = threading.Event()

    def start(self, url: str, auth: tuple[str, str], seconds: float) -> None:
        """Start :data:`SLOW_CLIENTS` clients on ``url``, each for at most ``seconds``."""
        parts = urlsplit(url)
        head = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {basic(auth)}\r\n"
            "User-Agent: bench-slow-client\r\nConnection: close\r\n\r\n"
        ).encode()
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.received = [0] * SLOW_CLIENTS
        for n in range(SLOW_CLIENTS):
            thread = threading.Thread(target=self._client, args=(n, address, head, seconds), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _client(self, n: int, address: tuple[str, int], head: bytes, seconds: float) -> None:
        began = time.monotonic()
        deadline = began + seconds
        with socket.create_connection(address, timeout=20) as sock:
            sock.sendall(head)
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    return
                allowed = int(SLOW_RATE * (now - began)) - self.received[n]
                if allowed < SLOW_CHUNK:  # read in 16 KiB steps: no busy loop of tiny reads
                    time.sleep(min((SLOW_CHUNK - allowed) / SLOW_RATE, deadline - now))
                    continue
                data = sock.recv(min(allowed, 64 * 1024))
                if not data:
                    return
                self.received[n] += len(data)

    def finish(self) -> list[int]:
        """Wait for the clients (they stop themselves); return the bytes each got."""
        for thread in self.threads:
            thread.join(timeout=60)
        self.threads.clear()
        return list(self.received)

    def kill(self) -> None:
        """Stop the clients now."""
        self.stop.set()
        self.finish()


# -- the harvest and the index ---------------------------------------------------------------


@dataclass
class Harvest:
    """One wget harvest: wall seconds, wget's exit code, HTTP responses in the WARC, files saved."""

    seconds: float
    returncode: int
    responses: int
    files: int


def wget_harvest(start: str, home: Path, out: Path) -> Harvest:
    """A recursive harvest with a WARC, credentials from .netrc after the challenge.

    ``files`` counts the distinct 4 KiB benchmark files that ended up on disk.

    ``--no-directories``: wget saves every file into one folder for both servers.
    Otherwise the mirror copies each server's URL layout, and Pligt's
    ``/files/<slug>/v<n>/<name>`` costs wget two mkdirs per file where nginx's flat
    autoindex costs none: measured, wget's own system time doubled (0.4 → 0.8–1.3 s
    for 1,000 files), a client-side cost that says nothing about the server.
    """
    out.mkdir(parents=True)
    args = ["wget", "--recursive", "--level=5", "--no-directories", "--no-verbose", "--tries=1", "--timeout=20"]
    args += ["--warc-file", str(out / "harvest"), "--directory-prefix", str(out / "mirror"), start]
    env = {**os.environ, "HOME": str(home)}
    began = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=STEP_TIMEOUT, env=env, check=False)
    seconds = time.monotonic() - began
    if result.returncode not in (0, 8):  # 8: some URL answered 4xx (e.g. a page Pligt does not have)
        raise Failed(f"wget exited with {result.returncode}:\n{result.stderr[-2000:]}")
    if not (out / "harvest.warc.gz").is_file():
        raise Failed(f"wget wrote no WARC in {out}")
    with gzip.open(out / "harvest.warc.gz", "rb") as warc:
        fetched = sum(1 for line in warc if line.startswith(b"WARC-Type: response"))
    return Harvest(seconds, result.returncode, fetched, _benchmark_files(out / "mirror"))


def _benchmark_files(mirror: Path) -> int:
    """The distinct benchmark files below ``mirror``, by content (Pligt's "latest" links redirect)."""
    items = set()
    for path in mirror.rglob("*"):
        if path.is_file() and path.stat().st_size == SMALL:
            match = re.match(rb"Pligt benchmark file (\d+):", path.read_bytes()[:64])
            if match:
                items.add(int(match.group(1)))
    return len(items)


def timed_fetches(url: str, auth: tuple[str, str], count: int) -> tuple[list[float], int, dict[str, str]]:
    """Fetch a page ``count`` times on one keep-alive connection; return the times in ms, its size and headers."""
    times = []
    with requests.Session() as session:
        session.auth = auth
        for _ in range(2):  # warm-up: the first slow hash, templates, caches
            session.get(url, timeout=120).raise_for_status()
        for _ in range(count):
            began = time.perf_counter()
            response = session.get(url, timeout=120)
            size = len(response.content)
            times.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
    return times, size, dict(response.headers)
