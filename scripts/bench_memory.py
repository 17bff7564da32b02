"""Memory benchmark: does the server's memory stay flat while a large file goes up and down?

Run it through ``scripts/bench-memory`` (which sets up .venv). It

1. makes a temporary instance (``pligt init --json``) and a file of random
   bytes (default 1 GiB; a ``.bin`` name, which libmagic accepts as data);
2. starts ``pligt serve`` with one gunicorn worker on a free loopback port;
3. uploads the file through the owner API as a streamed request body, then
   downloads it again in 1 MiB chunks and compares SHA-256 with the source;
4. samples the resident memory (RSS) of the gunicorn master and its workers
   every 0.2 s throughout, and prints a table: throughput of each transfer
   and how far RSS rose above where it stood before.

Everything it made is removed afterwards (``--keep`` keeps it). It exits 1 if
the bytes that came back differ, or anything else failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import psutil
import requests

MiB = 1024 * 1024
PLIGT = Path(sys.executable).with_name("pligt")
SAMPLE_SECONDS = 0.2
#: The server's default upload limit; larger benchmark files raise it.
DEFAULT_MAX_UPLOAD = 2 * 1024 * MiB


class Failed(Exception):
    """The benchmark could not complete, or the bytes did not survive the round trip."""


# -- memory sampling -------------------------------------------------------------------


def tree_rss(pid: int) -> tuple[int, set[int]]:
    """The summed RSS of a process and all its descendants, and their pids."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, set()
    total, pids = 0, set()
    for process in processes:
        try:
            total += process.memory_info().rss
            pids.add(process.pid)
        except psutil.NoSuchProcess:
            continue
    return total, pids


@dataclass
class Sampler:
    """Samples a process tree's RSS every ``interval`` seconds in a thread."""

    pid: int
    interval: float = SAMPLE_SECONDS
    samples: list[tuple[float, int]] = field(default_factory=list)
    pids_seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> int:
        rss, pids = tree_rss(self.pid)
        with self._lock:
            self.samples.append((time.monotonic(), rss))
            self.pids_seen |= pids
        return rss

    def peak_since(self, since: float) -> tuple[int, float]:
        """The highest RSS sampled since ``since``, and when (seconds after ``since``)."""
        with self._lock:
            rss, at = max(((rss, t) for t, rss in self.samples if t >= since), key=lambda s: s[0], default=(0, since))
        return rss, at - since

    def settled(self, seconds: float = 1.0) -> int:
        """RSS after a short quiet period: the mean of the samples taken in it."""
        start = time.monotonic()
        time.sleep(seconds)
        self.sample()
        with self._lock:
            values = [rss for t, rss in self.samples if t >= start]
        return round(sum(values) / len(values))


@dataclass
class Phase:
    name: str
    size: int
    seconds: float
    rss_before: int
    rss_peak: int
    rss_after: int
    #: When the peak was sampled, in seconds after the phase began.
    peak_at: float

    @property
    def mib_per_s(self) -> float:
        return self.size / MiB / self.seconds

    @property
    def growth(self) -> int:
        return self.rss_peak - self.rss_before


def measure(sampler: Sampler, name: str, size: int, action: Callable[[], None]) -> Phase:
    before = sampler.settled()
    began = time.monotonic()
    action()
    seconds = time.monotonic() - began
    sampler.sample()
    peak, peak_at = sampler.peak_since(began)
    after = sampler.settled()
    return Phase(name, size, seconds, before, max(peak, after), after, peak_at)


# -- the instance, the file, the server ------------------------------------------------


def clean_env(size: int) -> dict[str, str]:
    """The caller's environment without PLIGT_* settings, so that only the defaults count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLIGT_")}
    if size > DEFAULT_MAX_UPLOAD:
        env["PLIGT_MAX_UPLOAD_BYTES"] = str(size)
    return env


def init_instance(path: Path, env: dict[str, str]) -> tuple[str, str]:
    result = subprocess.run(
        [str(PLIGT), "init", "--instance", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise Failed(f"pligt init failed ({result.returncode}): {result.stderr.strip()}")
    made = json.loads(result.stdout)
    return made["username"], made["password"]


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    left = size
    with path.open("wb") as out:
        while left:
            chunk = os.urandom(min(MiB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(instance: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PLIGT), "serve", "--instance", str(instance), "--host", "127.0.0.1", "--port", str(port)]
            + ["--workers", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failed(f"pligt serve exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    stop_server(process)
    raise Failed(f"pligt serve did not come up in 30 s:\n{log.read_text(errors='replace')}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the benchmark -----------------------------------------------------------------------


@dataclass
class Result:
    size: int
    rss_started: int
    rss_warm: int
    upload: Phase
    download: Phase
    source_sha256: str
    stored_sha256: str
    downloaded_sha256: str
    downloaded_bytes: int
    warnings: list[str]
    worker_restarts: int

    @property
    def matched(self) -> bool:
        return self.source_sha256 == self.stored_sha256 == self.downloaded_sha256 and self.downloaded_bytes == self.size


def run(size: int, workdir: Path) -> Result:
    env = clean_env(size)
    instance = workdir / "instance"
    username, password = init_instance(instance, env)
    source = workdir / "big.bin"
    print(f"Writing {size / MiB:,.0f} MiB of random bytes to {source} ...", file=sys.stderr)
    source_sha256 = make_file(source, size)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(instance, port, env, workdir / "server.log")
    sampler = Sampler(server.pid)
    sampler.start()
    session = requests.Session()
    try:
        rss_started = sampler.settled()
        # Warm up what every first request pays once (imports, the owner's slow
        # password hash, the first download), so that the phases show the file's cost.
        session.get(f"{base}/api/items", auth=(username, password), timeout=60).raise_for_status()
        warm = session.post(
            f"{base}/api/items",
            params={"filename": "warm-up.bin", "visibility": "public"},
            data=os.urandom(64 * 1024),
            auth=(username, password),
            timeout=60,
        )
        warm.raise_for_status()
        session.get(warm.json()["version"]["url"], timeout=60).raise_for_status()
        rss_warm = sampler.settled()
        workers_before = sampler.pids_seen.copy()

        published: dict[str, object] = {}

        def upload() -> None:
            with source.open("rb") as body:  # a file object: requests streams it with Content-Length
                response = session.post(
                    f"{base}/api/items",
                    params={"filename": "big.bin", "visibility": "public"},
                    data=body,
                    auth=(username, password),
                    timeout=(10, 900),
                )
            if response.status_code != 201:
                raise Failed(f"upload answered {response.status_code}: {response.text[:500]}")
            published.update(response.json())

        print("Uploading ...", file=sys.stderr)
        up = measure(sampler, "upload", size, upload)
        version = published["version"]
        assert isinstance(version, dict)

        downloaded = hashlib.sha256()
        count = 0

        def download() -> None:
            nonlocal count
            with session.get(str(version["url"]), stream=True, timeout=(10, 900)) as response:
                if response.status_code != 200:
                    raise Failed(f"download answered {response.status_code}: {response.text[:500]}")
                if response.headers.get("Content-Length") != str(size):
                    raise Failed(f"download Content-Length {response.headers.get('Content-Length')}, not {size}")
                for chunk in response.iter_content(MiB):
                    downloaded.update(chunk)
                    count += len(chunk)

        print("Downloading ...", file=sys.stderr)
        down = measure(sampler, "download", size, download)
        restarts = len(sampler.pids_seen - workers_before)
    finally:
        sampler.stop()
        session.close()
        stop_server(server)

    return Result(
        size=size,
        rss_started=rss_started,
        rss_warm=rss_warm,
        upload=up,
        download=down,
        source_sha256=source_sha256,
        stored_sha256=str(version["sha256"]),
        downloaded_sha256=downloaded.hexdigest(),
        downloaded_bytes=count,
        warnings=[str(w) for w in published.get("warnings", [])],  # type: ignore[union-attr]
        worker_restarts=restarts,
    )


def mib(n: int) -> str:
    return f"{n / MiB:,.1f}"


def report(result: Result) -> None:
    print()
    print(
        f"Pligt memory benchmark: {result.size / MiB:,.0f} MiB file, pligt serve --workers 1 (gthread), "
        f"RSS summed over the gunicorn master and its worker, sampled every {SAMPLE_SECONDS} s"
    )
    print(f"RSS after start-up: {mib(result.rss_started)} MiB; after warm-up requests: {mib(result.rss_warm)} MiB")
    print()
    header = (
        "phase",
        "seconds",
        "MiB/s",
        "RSS before MiB",
        "RSS peak MiB",
        "peak at s",
        "RSS after MiB",
        "peak growth MiB",
    )
    rows = [header]
    for p in (result.upload, result.download):
        rows.append(
            (
                p.name,
                f"{p.seconds:.1f}",
                f"{p.mib_per_s:,.1f}",
                mib(p.rss_before),
                mib(p.rss_peak),
                f"{p.peak_at:.1f}",
                mib(p.rss_after),
                f"{p.growth / MiB:+,.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print()
    print(f"server warnings on upload: {'; '.join(result.warnings) or 'none'}")
    print(f"worker restarts during the transfers: {result.worker_restarts}")
    print(f"source sha256:     {result.source_sha256}")
    print(f"stored sha256:     {result.stored_sha256}")
    print(f"downloaded sha256: {result.downloaded_sha256} ({result.downloaded_bytes:,} bytes)")
    print(f"bytes match: {'yes' if result.matched else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the test file in MiB (default 1024)")
    parser.add_argument("--tmpdir", type=Path, help="where to put the instance and the file (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and say where it is)")
    args = parser.parse_args(argv)
    if args.size_mib < 1:
        parser.error("--size-mib must be at least 1")
    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="pligt-bench-", dir=args.tmpdir))
    try:
        free = shutil.disk_usage(workdir).free
        if free < 3 * size:
            raise Failed(f"{workdir} has {free / MiB:,.0f} MiB free; the benchmark needs about {3 * size / MiB:,.0f}")
        result = run(size, workdir)
    except (Failed, requests.RequestException) as e:
        print(f"bench-memory: error: {e}", file=sys.stderr)
        log = workdir / "server.log"
        if log.is_file():
            print("--- server log (last lines) ---", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result)
    if not result.matched:
        print("bench-memory: error: the downloaded bytes differ from the uploaded ones", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
