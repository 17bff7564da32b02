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

``--stores postgresql-s3`` keeps every publisher's catalog in a schema of one
database of a throw-away PostgreSQL cluster (durable, as a production server
runs) and its files under a prefix of one bucket (Object Lock) of a moto S3
server, both on loopback; the default keeps them in each publisher's folder
(SQLite and files). ``--keep FOLDER`` makes the deployment there once and
measures it again on later runs (local stores only: making a thousand
publishers takes minutes).

The machine's load average is printed first and last: the figures mean little
on a machine busy with other work. Run with scripts/bench-hosting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
SCRIPTS = Path(__file__).resolve().parent
#: What a made deployment keeps of its making, for --keep: each publisher's file paths.
PATHS_FILE = "bench-paths.json"
#: The processes whose CPU time is shown for the busy harvest, by name (the server's, and the stores').
WATCHED: dict[str, int] = {}


def pdf(text: str) -> bytes:
    return f"%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".encode()


def make(
    folder: Path, publishers: int, versions: int, toml: str = 'scheme = "http"\n', jobs: int = 1
) -> tuple[Deployment, dict[str, list[str]]]:
    """Create the deployment (``toml``: its deployment.toml); return it and each publisher's file paths.

    :param jobs: processes that make publishers side by side.
    """
    folder.mkdir(parents=True)
    (folder / "deployment.toml").write_text(toml, encoding="utf-8")
    deployment = load_deployment(folder)
    paths: dict[str, list[str]] = {}
    started = time.perf_counter()
    work = [(folder, i, versions) for i in range(publishers)]
    with multiprocessing.Pool(jobs) as pool:
        for name, files in pool.imap(make_one, work, chunksize=4):
            paths[name] = files
            if len(paths) % 100 == 0:
                print(f"  made {len(paths)} publishers ({time.perf_counter() - started:.0f} s)", flush=True)
    (folder / PATHS_FILE).write_text(json.dumps(paths), encoding="utf-8")
    return deployment, paths


def make_one(work: tuple[Path, int, int]) -> tuple[str, list[str]]:
    """Add the publisher number ``i`` with ``versions`` public files; return its name and their paths."""
    folder, i, versions = work
    deployment = load_deployment(folder)
    name, _ = add_publisher(deployment, f"p{i:04d}.example", f"owner@p{i:04d}.example")
    archive = build_archive(deployment.publisher_settings(name, env={}))
    try:
        return name, [
            version_path(archive.publish([pdf(f"{name} {n}")], filename=f"file-{n}.pdf", visibility=PUBLIC).version)
            for n in range(versions)
        ]
    finally:
        archive.catalog.close()


def made_or_make(folder: Path, args: argparse.Namespace, toml: str) -> tuple[Deployment, dict[str, list[str]]]:
    """The deployment in ``folder`` if an earlier run made it there (--keep), else a new one."""
    if (folder / PATHS_FILE).is_file():
        paths = json.loads((folder / PATHS_FILE).read_text(encoding="utf-8"))
        print(f"measuring the {len(paths)} publishers made earlier in {folder}", flush=True)
        return load_deployment(folder), paths
    print(f"making {args.publishers} publishers x {args.versions} versions in {folder}", flush=True)
    return make(folder, args.publishers, args.versions, toml, args.jobs)


@contextlib.contextmanager
def shared_stores(root: Path, stores: str) -> Any:
    """A throw-away PostgreSQL database and/or moto bucket (``stores``); yield deployment.toml and the env."""
    sys.path[:0] = [str(SCRIPTS.parent), str(SCRIPTS)]
    from benchkit.servers import FAKE_AWS
    from benchkit.servers import make_bucket
    from benchkit.servers import start_moto

    from tests.support.postgres import start_cluster

    cluster = moto = None
    toml = 'scheme = "http"\n'
    try:
        if "postgresql" in stores:
            cluster = start_cluster(durable=True)
            WATCHED["postgresql"] = int((cluster.folder / "data" / "postmaster.pid").read_text().split()[0])
            toml += f'catalog = "{cluster.new_database()}"\n'
        if "s3" in stores:
            moto, endpoint = start_moto(root / "moto.log")
            WATCHED["moto (S3)"] = moto.pid
            bucket = make_bucket(endpoint)  # sets the fake credentials in this process too
            toml += (
                f'storage = "s3://{bucket}/pligt"\n[settings]\ns3_endpoint_url = "{endpoint}"\n'
                's3_region = "eu-north-1"\ns3_addressing_style = "path"\n'
            )
        yield toml, FAKE_AWS
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(30)
        if cluster is not None:
            cluster.remove()


def get(port: int, host: str, path: str) -> int:
    """One HTTP/1.0 request on a new connection, as the deposit crawler sends it; return the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's workers, PostgreSQL's backends)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(p for child in children for p in _tree(int(child)))]


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) of ``pid`` and its descendants so far."""
    ticks = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """The machine's busy and total CPU time so far (every process, other people's work included)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """The resident memory of ``pid`` and its children (gunicorn's workers), in MiB."""
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def harvest(port: int, host: str, paths: list[str], pace: float | None, stop: Any = None, seconds: float = 0) -> float:
    """Fetch every path (again and again while ``stop`` is unset, or for ``seconds``); return the requests a second.

    :param pace: requests a second (None: as fast as answered), kept to a schedule: a slow
        answer is not followed by a full pause, so the pace holds while the server keeps up.
    """
    count, started = 0, time.perf_counter()
    due = started + random.random() / pace if pace else started  # noqa: S311 - a spread over a second
    while True:
        for path in ["/", *paths]:
            if pace:
                time.sleep(max(0.0, due - time.perf_counter()))
                due += 1 / pace
            status = get(port, host, path)
            if status != 200:
                raise RuntimeError(f"{host}{path}: {status}")
            count += 1
            if stop is not None and stop.is_set():
                return count / (time.perf_counter() - started)
        if stop is None and time.perf_counter() - started >= seconds:
            return count / (time.perf_counter() - started)


def background(port: int, paths: dict[str, list[str]], pace: float, stop: Any, rates: Any) -> None:
    """Harvest every publisher in ``paths`` at ``pace`` requests a second each, until ``stop`` is set.

    Each harvest's achieved rate goes into ``rates``: a server that cannot keep
    the pace shows there, not as a flattering ratio of the measured harvest.
    """

    def one(name: str, files: list[str]) -> None:
        try:
            rates.put(harvest(port, name, files, pace, stop))
        except (OSError, RuntimeError) as e:  # a refused or failed request: this harvest counts as stopped
            print(f"  background harvest of {name} failed: {e}", flush=True)
            rates.put(0.0)

    threads = [threading.Thread(target=one, args=(name, files), daemon=True) for name, files in paths.items()]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishers", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--recent", type=int, default=50, help="publishers used at once (and harvested meanwhile)")
    parser.add_argument("--pace", type=float, default=3.0, help="requests a second of each background harvest")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the measured harvest")
    parser.add_argument("--seconds", type=float, default=3.0, help="each round at least (the harvest again and again)")
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument(
        "--stores",
        choices=("local", "postgresql-s3", "postgresql", "s3"),
        default="local",
        help="local: SQLite and files in each publisher's folder; postgresql-s3: a schema and a prefix each "
        "(postgresql, s3: one of them)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes that make the publishers")
    parser.add_argument("--starts", type=int, default=3, help="times the server is started (the median counts)")
    parser.add_argument("--keep", type=Path, default=None, help="make the deployment here once, reuse it later")
    args = parser.parse_args()
    if args.keep is not None and args.stores != "local":
        parser.error("--keep is for local stores only (the database and the bucket are throw-away)")
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    root = Path(tempfile.mkdtemp(prefix="pligt-bench-hosting-", dir=args.tmpdir))
    try:
        with contextlib.ExitStack() as stack:
            toml, env = 'scheme = "http"\n', {}
            if args.stores != "local":
                toml, env = stack.enter_context(shared_stores(root, args.stores))
                print(f"stores: {args.stores} (PostgreSQL: a schema each in one database; S3 on moto: a prefix each)")
            deployment, paths = made_or_make(args.keep or root / "deployment", args, toml)
            run(deployment, paths, args, root, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(
    deployment: Deployment, paths: dict[str, list[str]], args: argparse.Namespace, root: Path, env: dict[str, str]
) -> None:
    """Start ``pligt serve --deployment``, measure, stop it."""
    names = sorted(paths)
    starts = []
    for attempt in range(args.starts):
        port = free_port()
        started = time.perf_counter()
        with (root / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [PLIGT, "serve", "--deployment", str(deployment.folder), "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )
        wait_healthy(port)
        starts.append(time.perf_counter() - started)
        if attempt < args.starts - 1:
            server.terminate()
            server.wait(30)
    print(
        f"start: {statistics.median(starts):.2f} s to the first answer (median of {len(starts)}: "
        f"{', '.join(f'{s:.2f}' for s in starts)})",
        flush=True,
    )
    try:
        WATCHED["pligt serve"] = server.pid
        measure(port, server.pid, names, paths, args)
        print(f"load average {os.getloadavg()}", flush=True)
    finally:
        server.terminate()
        server.wait(30)


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
    for _ in range(4):  # each worker gets its own requests (the kernel spreads connections): in use in both
        for name in recent:
            get(port, name, "/")
    print(f"resident memory with {len(recent)} recently used: {rss_mib(pid):.0f} MiB", flush=True)
    measured = names[-1]
    before = [harvest(port, measured, paths[measured], None, seconds=args.seconds) for _ in range(args.rounds)]
    # The others are harvested by a process of their own: their threads would take this one's GIL.
    stop, rates = multiprocessing.Event(), multiprocessing.Queue()
    others = multiprocessing.Process(
        target=background, args=(port, {n: paths[n] for n in recent}, args.pace, stop, rates)
    )
    others.start()
    time.sleep(5)  # every background harvest under way, at its pace
    cpu = {name: cpu_seconds(pid) for name, pid in WATCHED.items()}
    machine, started = machine_busy(), time.perf_counter()
    busy = statistics.median(
        harvest(port, measured, paths[measured], None, seconds=args.seconds) for _ in range(args.rounds)
    )
    elapsed = time.perf_counter() - started
    used = {name: (cpu_seconds(pid) - cpu[name]) / elapsed for name, pid in WATCHED.items()}
    now = machine_busy()
    share = (now[0] - machine[0]) / (now[1] - machine[1]) * (os.cpu_count() or 1)
    stop.set()
    achieved = [rates.get(timeout=60) for _ in recent]
    others.join(60)
    # Alone before and after: on a shared machine, other work comes and goes meanwhile.
    after = [harvest(port, measured, paths[measured], None, seconds=args.seconds) for _ in range(args.rounds)]
    alone = statistics.median(before + after)
    print(f"one publisher's harvest alone: {alone:.0f} requests/s (median of {len(before + after)} rounds)")
    print(
        f"one publisher's harvest while {len(recent)} others are harvested at {args.pace:g} req/s each: "
        f"{busy:.0f} requests/s ({busy / alone:.2f} x alone); the others' pace: "
        f"median {statistics.median(achieved):.2f}, min {min(achieved):.2f} req/s"
    )
    print(
        "CPU meanwhile, in cores: "
        + ", ".join(f"{name} {value:.2f}" for name, value in used.items())
        + f"; the whole machine {share:.2f} of {os.cpu_count()} (the clients and other work included)"
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
