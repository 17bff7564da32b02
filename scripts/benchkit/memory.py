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
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.net import ServerDidNotStart
from tests.support.net import stop_process

from .common import Failed
from .common import MiB
from .dataset import random_bytes
from .dataset import write_random
from .rss import SAMPLE_SECONDS
from .rss import Phase
from .rss import Sampler
from .rss import measure
from .servers import clean_env
from .servers import init_instance
from .servers import make_bucket
from .servers import s3_env
from .servers import start_moto
from .servers import start_pligt


@dataclass
class Result:
    """What one round trip measured, and the digests to compare."""

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


@dataclass
class Owner:
    """The server's base URL, a session, and the owner's credentials."""

    base: str
    session: requests.Session
    auth: tuple[str, str]


def run(size: int, workdir: Path, storage: str = "local") -> Result:
    """The round trip of ``size`` bytes on an instance in ``workdir``, with local or S3 storage."""
    env = clean_env(size)
    moto: subprocess.Popen[bytes] | None = None
    moto_sampler: Sampler | None = None
    if storage == "s3":
        moto, endpoint = start_moto(workdir / "moto.log")
        moto_sampler = Sampler(moto.pid)
        moto_sampler.start()
        env.update(s3_env(endpoint, make_bucket(endpoint)))
    try:
        result = round_trip(size, workdir, env, storage)
        if moto_sampler is not None:
            result.moto_peak = moto_sampler.peak_since(0)[0]
        return result
    finally:
        if moto_sampler is not None:
            moto_sampler.stop()
        if moto is not None:
            stop_process(moto, timeout=30)


def round_trip(size: int, workdir: Path, env: dict[str, str], storage: str) -> Result:
    """Up and down through one ``pligt serve --workers 1``, its RSS sampled throughout."""
    instance = workdir / "instance"
    owner_auth = init_instance(instance, env)
    source = workdir / "big.bin"
    print(f"Writing {size / MiB:,.0f} MiB of random bytes to {source} ...", file=sys.stderr)
    source_sha256 = write_random(source, size)

    server = start_pligt(instance, env, workdir / "server.log", workers=1)
    sampler = Sampler(server.pid)
    sampler.start()
    owner = Owner(server.base, requests.Session(), owner_auth)
    try:
        rss_started = sampler.settled()
        warm_up(owner)
        rss_warm = sampler.settled()
        workers_before = sampler.pids_seen.copy()
        print("Uploading ...", file=sys.stderr)
        up, published = upload(owner, sampler, source, size)
        version = published["version"]
        print("Downloading ...", file=sys.stderr)
        down, downloaded_sha256, count = download(owner, sampler, str(version["url"]), size)
        restarts = len(sampler.pids_seen - workers_before)
    finally:
        sampler.stop()
        owner.session.close()
        server.stop()
    return Result(
        size=size,
        storage=storage,
        rss_started=rss_started,
        rss_warm=rss_warm,
        upload=up,
        download=down,
        source_sha256=source_sha256,
        stored_sha256=str(version["sha256"]),
        downloaded_sha256=downloaded_sha256,
        downloaded_bytes=count,
        warnings=[str(w) for w in published.get("warnings", [])],
        worker_restarts=restarts,
    )


def warm_up(owner: Owner) -> None:
    """Pay the one-time costs first (imports, the owner's slow hash, the first download): the phases show the file's."""
    session, base = owner.session, owner.base
    session.get(f"{base}/api/items", auth=owner.auth, timeout=60).raise_for_status()
    warm = session.post(
        f"{base}/api/items",
        params={"filename": "warm-up.bin", "visibility": "public"},
        data=random_bytes(64 * 1024),
        auth=owner.auth,
        timeout=60,
    )
    warm.raise_for_status()
    session.get(warm.json()["version"]["url"], timeout=60).raise_for_status()


def upload(owner: Owner, sampler: Sampler, source: Path, size: int) -> tuple[Phase, dict[str, Any]]:
    """Upload the file through the owner API; return the phase and the server's answer."""
    published: dict[str, Any] = {}

    def send() -> None:
        with source.open("rb") as body:  # a file object: requests streams it with Content-Length
            response = owner.session.post(
                f"{owner.base}/api/items",
                params={"filename": "big.bin", "visibility": "public"},
                data=body,
                auth=owner.auth,
                timeout=(10, 900),
            )
        if response.status_code != 201:
            raise Failed(f"upload answered {response.status_code}: {response.text[:500]}")
        published.update(response.json())

    return measure(sampler, "upload", size, send), published


def download(owner: Owner, sampler: Sampler, url: str, size: int) -> tuple[Phase, str, int]:
    """Download the file in 1 MiB chunks; return the phase, the SHA-256 and the bytes received."""
    digest = hashlib.sha256()
    count = 0

    def receive() -> None:
        nonlocal count
        with owner.session.get(url, stream=True, timeout=(10, 900)) as response:
            if response.status_code != 200:
                raise Failed(f"download answered {response.status_code}: {response.text[:500]}")
            if response.headers.get("Content-Length") != str(size):
                raise Failed(f"download Content-Length {response.headers.get('Content-Length')}, not {size}")
            for chunk in response.iter_content(MiB):
                digest.update(chunk)
                count += len(chunk)

    phase = measure(sampler, "download", size, receive)
    return phase, digest.hexdigest(), count


def mib(n: int) -> str:
    """Bytes in MiB, with one decimal."""
    return f"{n / MiB:,.1f}"


_HEADER = (
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


def _cells(p: Phase) -> tuple[str, ...]:
    return (
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


def report(result: Result) -> None:
    """Print the table of both phases, and the digests."""
    print()
    where = "local files" if result.storage == "local" else "S3 (moto_server on 127.0.0.1, Object Lock bucket)"
    print(
        f"Pligt memory benchmark: {result.size / MiB:,.0f} MiB file stored in {where}, pligt serve --workers 1 "
        f"(gthread), RSS summed over the gunicorn master and its worker, sampled every {SAMPLE_SECONDS} s"
    )
    print(f"RSS after start-up: {mib(result.rss_started)} MiB; after warm-up requests: {mib(result.rss_warm)} MiB")
    print()
    rows = [_HEADER, _cells(result.upload), _cells(result.download)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``scripts/bench-memory``."""
    parser = argparse.ArgumentParser(prog="scripts/bench-memory", description=(__doc__ or "").splitlines()[0])
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
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark the command line asks for; return the exit status."""
    args = parse_args(argv)
    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="pligt-bench-", dir=args.tmpdir))
    try:
        free = shutil.disk_usage(workdir).free
        if free < 3 * size:
            raise Failed(f"{workdir} has {free / MiB:,.0f} MiB free; the benchmark needs about {3 * size / MiB:,.0f}")
        result = run(size, workdir, args.storage)
    except (Failed, ServerDidNotStart, requests.RequestException) as e:
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
