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

With ``--storage s3`` the instance stores its files in S3 instead: the
script starts a moto server (``moto_server``, a real S3 endpoint over HTTP on
127.0.0.1) as its own process, makes a versioned bucket with Object Lock in
eu-north-1, and points the instance at it; uploads then go up as multipart
uploads and downloads come back as ranged GETs. Only the Pligt server's RSS is
measured; moto keeps every object in its own memory, and its peak RSS is
printed apart, for scale.

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
import uuid
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

    def median_between(self, start: float, end: float) -> int:
        """The median RSS sampled between two moments: the level a transfer ran at, spikes aside."""
        with self._lock:
            values = sorted(rss for t, rss in self.samples if start <= t <= end)
        return values[len(values) // 2] if values else 0

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
    #: The median RSS while the phase ran (a short spike does not move it).
    rss_median: int = 0

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
    median = sampler.median_between(began, time.monotonic())  # with the sample just taken
    after = sampler.settled()
    return Phase(name, size, seconds, before, max(peak, after), after, peak_at, median)


# -- the instance, the file, the server ------------------------------------------------


def clean_env(size: int) -> dict[str, str]:
    """The caller's environment without PLIGT_* settings, so that only the defaults count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLIGT_")}
    if size > DEFAULT_MAX_UPLOAD:
        env["PLIGT_MAX_UPLOAD_BYTES"] = str(size)
    return env


# -- S3: a moto server of its own, and a bucket with Object Lock ---------------------------

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
#: Fake credentials for moto; boto3 finds them first, so no real ones are read.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "eu-north-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``moto_server`` on a free loopback port; return it and its endpoint URL."""
    if not MOTO_SERVER.is_file():
        raise Failed(f"{MOTO_SERVER} is missing: install the test extra (pip install -e '.[test]')")
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failed(f"moto_server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            return process, endpoint
        except requests.ConnectionError:
            time.sleep(0.1)
    stop_server(process)
    raise Failed("moto_server did not come up in 30 s")


def make_bucket(endpoint: str) -> str:
    """A versioned bucket with Object Lock in eu-north-1, as Pligt's check demands."""
    import boto3

    os.environ.update(FAKE_AWS)
    name = f"pligt-bench-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="eu-north-1")
    client.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": "eu-north-1"},
        ObjectLockEnabledForBucket=True,
    )
    return name


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    """PLIGT_* settings (and fake credentials) that put the instance's files in the bucket."""
    return {
        **FAKE_AWS,
        "PLIGT_STORAGE": f"s3://{bucket}/bench",
        "PLIGT_S3_ENDPOINT_URL": endpoint,
        "PLIGT_S3_REGION": "eu-north-1",
        "PLIGT_S3_ADDRESSING_STYLE": "path",
    }


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


#: Purely random bytes look like a DOS program to libmagic about 1 % of the time
#: (and would be refused); a plain start keeps them application/octet-stream.
HEADER = b"Pligt benchmark data, not a program.\n\x00\x01"


def random_bytes(size: int) -> bytes:
    return (HEADER + os.urandom(max(0, size - len(HEADER))))[:size]


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    left = size
    with path.open("wb") as out:
        while left:
            chunk = random_bytes(min(MiB, left)) if left == size else os.urandom(min(MiB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(instance: Path, port: int, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``pligt serve`` on 127.0.0.1:``port`` (with ``extra`` options); return once /healthz answers."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PLIGT), "serve", "--instance", str(instance), "--host", "127.0.0.1", "--port", str(port), *extra],
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
    storage: str
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
    #: The moto server's peak RSS (S3 runs only): it holds the objects in memory.
    moto_peak: int | None = None

    @property
    def matched(self) -> bool:
        return self.source_sha256 == self.stored_sha256 == self.downloaded_sha256 and self.downloaded_bytes == self.size


def run(size: int, workdir: Path, storage: str = "local") -> Result:
    env = clean_env(size)
    moto: subprocess.Popen[bytes] | None = None
    moto_sampler: Sampler | None = None
    if storage == "s3":
        moto, endpoint = start_moto(workdir / "moto.log")
        moto_sampler = Sampler(moto.pid)
        moto_sampler.start()
        env.update(s3_env(endpoint, make_bucket(endpoint)))
    try:
        return _run(size, workdir, env, storage, moto_sampler)
    finally:
        if moto_sampler is not None:
            moto_sampler.stop()
        if moto is not None:
            stop_server(moto)


def _run(size: int, workdir: Path, env: dict[str, str], storage: str, moto_sampler: Sampler | None) -> Result:
    instance = workdir / "instance"
    username, password = init_instance(instance, env)
    source = workdir / "big.bin"
    print(f"Writing {size / MiB:,.0f} MiB of random bytes to {source} ...", file=sys.stderr)
    source_sha256 = make_file(source, size)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(instance, port, env, workdir / "server.log", "--workers", "1")
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
            data=random_bytes(64 * 1024),
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
        storage=storage,
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
        moto_peak=moto_sampler.peak_since(0)[0] if moto_sampler is not None else None,
    )


def mib(n: int) -> str:
    return f"{n / MiB:,.1f}"


def report(result: Result) -> None:
    print()
    where = "local files" if result.storage == "local" else "S3 (moto_server on 127.0.0.1, Object Lock bucket)"
    print(
        f"Pligt memory benchmark: {result.size / MiB:,.0f} MiB file stored in {where}, pligt serve --workers 1 "
        f"(gthread), RSS summed over the gunicorn master and its worker, sampled every {SAMPLE_SECONDS} s"
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
        "RSS median MiB",
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
                mib(p.rss_median),
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
    if result.moto_peak is not None:
        print(f"moto_server peak RSS (not Pligt's; moto keeps objects in memory): {mib(result.moto_peak)} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the test file in MiB (default 1024)")
    parser.add_argument("--tmpdir", type=Path, help="where to put the instance and the file (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and say where it is)")
    parser.add_argument(
        "--storage",
        choices=("local", "s3"),
        default="local",
        help="where the instance stores the file: local files (default) or S3 (a moto server the script starts)",
    )
    args = parser.parse_args(argv)
    if args.size_mib < 1:
        parser.error("--size-mib must be at least 1")
    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="pligt-bench-", dir=args.tmpdir))
    try:
        free = shutil.disk_usage(workdir).free
        if free < 3 * size:
            raise Failed(f"{workdir} has {free / MiB:,.0f} MiB free; the benchmark needs about {3 * size / MiB:,.0f}")
        result = run(size, workdir, args.storage)
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
