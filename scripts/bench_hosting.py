"""The cost of many publishers on one deployment (issue 24): figures printed, nothing asserted.

Makes a throw-away deployment of ``--publishers`` publishers with ``--versions``
small public files each, then runs ``pligt serve --deployment`` on loopback and
measures:

- start: from the command to the first answer of its health check;
- cold first answer: the front page of publishers no worker has built yet;
- resident memory (master and workers) once ``--recent`` publishers were used;
- one publisher's harvest (every file, a new HTTP/1.0 connection each, as the
  deposit crawler fetches) alone, then while ``--recent`` others are harvested
  at ``--pace`` requests a second each.

The machine's load average is printed first and last: the figures mean little
on a machine busy with other work. Run with scripts/bench-hosting.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from pligt.core.models import PUBLIC
from pligt.hosting import Deployment
from pligt.hosting import add_publisher
from pligt.hosting import load_deployment
from pligt.instance import build_archive
from pligt.links import version_path

PLIGT = str(Path(sys.executable).with_name("pligt"))


def pdf(text: str) -> bytes:
    return f"%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".encode()


def make(folder: Path, publishers: int, versions: int) -> tuple[Deployment, dict[str, list[str]]]:
    """Create the deployment; return it and each publisher's file paths."""
    folder.mkdir(parents=True)
    (folder / "deployment.toml").write_text('scheme = "http"\n', encoding="utf-8")
    deployment = load_deployment(folder)
    paths: dict[str, list[str]] = {}
    started = time.perf_counter()
    for i in range(publishers):
        name, _ = add_publisher(deployment, f"p{i:04d}.example", f"owner@p{i:04d}.example")
        archive = build_archive(deployment.publisher_settings(name, env={}))
        try:
            paths[name] = [
                version_path(archive.publish([pdf(f"{name} {n}")], filename=f"file-{n}.pdf", visibility=PUBLIC).version)
                for n in range(versions)
            ]
        finally:
            archive.catalog.close()
        if (i + 1) % 100 == 0:
            print(f"  made {i + 1} publishers ({time.perf_counter() - started:.0f} s)", flush=True)
    return deployment, paths


def get(port: int, host: str, path: str) -> int:
    """One HTTP/1.0 request on a new connection, as the deposit crawler sends it; return the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def rss_mib(pid: int) -> float:
    """The resident memory of ``pid`` and its children (gunicorn's workers), in MiB."""
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def harvest(port: int, host: str, paths: list[str], pace: float | None, stop: Any = None) -> float:
    """Fetch every path (again and again while ``stop`` is unset); return the requests a second."""
    count, started = 0, time.perf_counter()
    while True:
        for path in ["/", *paths]:
            status = get(port, host, path)
            if status != 200:
                raise RuntimeError(f"{host}{path}: {status}")
            count += 1
            if pace:
                time.sleep(1 / pace)
            if stop is not None and stop.is_set():
                return count / (time.perf_counter() - started)
        if stop is None:
            return count / (time.perf_counter() - started)


def background(port: int, paths: dict[str, list[str]], pace: float, stop: Any) -> None:
    """Harvest every publisher in ``paths`` at ``pace`` requests a second each, until ``stop`` is set."""
    threads = [
        threading.Thread(target=harvest, args=(port, name, files, pace, stop), daemon=True)
        for name, files in paths.items()
    ]
    for thread in threads:
        thread.start()
    stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishers", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--recent", type=int, default=50, help="publishers used at once (and harvested meanwhile)")
    parser.add_argument("--pace", type=float, default=3.0, help="requests a second of each background harvest")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the measured harvest")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    root = Path(tempfile.mkdtemp(prefix="pligt-bench-hosting-", dir=args.tmpdir))
    try:
        print(f"making {args.publishers} publishers x {args.versions} versions in {root}", flush=True)
        deployment, paths = make(root / "deployment", args.publishers, args.versions)
        names = sorted(paths)
        port = free_port()
        started = time.perf_counter()
        with (root / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [PLIGT, "serve", "--deployment", str(deployment.folder), "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_healthy(port)
            print(f"start: {time.perf_counter() - started:.2f} s to the first answer", flush=True)
            measure(port, server.pid, names, paths, args)
            print(f"load average {os.getloadavg()}", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(port: int, pid: int, names: list[str], paths: dict[str, list[str]], args: argparse.Namespace) -> None:
    cold = []
    for name in random.sample(names, min(20, len(names))):
        t = time.perf_counter()
        assert get(port, name, "/") == 200
        cold.append((time.perf_counter() - t) * 1000)
    print(
        f"cold first answer: median {statistics.median(cold):.0f} ms, max {max(cold):.0f} ms ({len(cold)} publishers)"
    )
    recent = names[: args.recent]
    for name in recent:
        get(port, name, "/")
    print(f"resident memory with {len(recent)} recently used: {rss_mib(pid):.0f} MiB", flush=True)
    measured = names[-1]
    alone = statistics.median(harvest(port, measured, paths[measured], None) for _ in range(args.rounds))
    print(f"one publisher's harvest alone: {alone:.0f} requests/s")
    # The others are harvested by a process of their own: their threads would take this one's GIL.
    stop = multiprocessing.Event()
    others = multiprocessing.Process(target=background, args=(port, {n: paths[n] for n in recent}, args.pace, stop))
    others.start()
    time.sleep(2)
    busy = statistics.median(harvest(port, measured, paths[measured], None) for _ in range(args.rounds))
    stop.set()
    others.join(60)
    print(
        f"one publisher's harvest while {len(recent)} others are harvested at {args.pace:g} req/s each: "
        f"{busy:.0f} requests/s ({busy / alone:.2f} x alone)"
    )
    print(f"resident memory now: {rss_mib(pid):.0f} MiB")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("pligt serve --deployment did not answer")


if __name__ == "__main__":
    main()
