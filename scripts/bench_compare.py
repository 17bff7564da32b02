"""Pligt beside nginx: the figures issue 7 sets targets for, measured side by side in one run.

Run it through ``scripts/bench`` (which installs nginx, wrk, wget, curl and
.venv). In a temporary folder it

1. generates a data set: small 4 KiB text files (1,000 for the harvest and the
   small-file load, 10,000 for the index), a 100 MiB file and a 1 GiB file of
   random bytes (``--quick``: 200 and 2,000 small files, a 128 MiB upload, no
   1 GiB file);
2. makes two Pligt instances (``pligt init --json``): "main" with the 1,000
   items and "index" with the 10,000, all PROTECTED. The catalog rows and the
   stored files are written in-process through the catalog (one transaction,
   no libmagic or fsync per file, which would take minutes for 10,000 items);
   the large files go through the owner API, as an owner would upload them.
   A crawler credential comes from the access workflow in-process (file,
   approve, release);
3. starts nginx (2 workers, sendfile, auth_basic with the same usernames and
   passwords in an htpasswd file, autoindex) on the same files, and
   ``pligt serve`` exactly as it runs by default (no proxy in front);
4. measures, on loopback, each on both servers: an authenticated 4 KiB GET
   under wrk (req/s, p99), a 100 MiB GET under wrk (MiB/s), the 4 KiB rate
   again while 16 curl clients fetch the 100 MiB file at 500 KB/s, RSS growth
   of the whole process tree while a 1 GiB file is received and served, the
   1 GiB upload against ``sha256sum``, a recursive wget harvest with a WARC,
   and the time to fetch the protected index beside nginx's autoindex;
5. prints one table with the ratios and the issue's targets.

``--profile DIR`` instead runs py-spy on the Pligt workers while wrk loads the
4 KiB download and then the protected index, saves the collapsed stacks in DIR
and prints the top frames by own and by total time.

Everything it starts is stopped, and the folder removed, at the end (also on
Ctrl-C or SIGTERM); ``--keep`` keeps the folder.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import gzip
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import Failed  # noqa: E402
from bench_memory import MiB  # noqa: E402
from bench_memory import Phase  # noqa: E402
from bench_memory import Sampler  # noqa: E402
from bench_memory import clean_env  # noqa: E402
from bench_memory import free_port  # noqa: E402
from bench_memory import init_instance  # noqa: E402
from bench_memory import measure  # noqa: E402
from bench_memory import start_server  # noqa: E402
from bench_memory import stop_server  # noqa: E402
from bench_memory import tree_rss  # noqa: E402

SMALL = 4096
REALM = "Pligt legal deposit"
REQUEST_FIELDS = {
    "institution": "Det Kgl. Bibliotek",
    "contact_name": "Netarkivet Høstning",
    "contact_email": "netarkivet@example.dk",
    "legal_basis": "",
    "message": "Benchmark: access to the protected material.",
}
SLOW_CLIENTS = 16
SLOW_RATE = 500_000  # bytes/s: Netarkivet's per-host politeness limit
SLOW_CHUNK = 16 * 1024
#: Every child process runs at most this long (a safety net; each step is shorter).
STEP_TIMEOUT = 600


@dataclass(frozen=True)
class Plan:
    quick: bool
    harvest_items: int
    index_items: int
    wrk_seconds: int
    big_seconds: int
    warm_seconds: int
    upload_mib: int
    memory: bool
    index_fetches: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 200, 2000, 4, 3, 1, 128, False, 5)
        return cls(False, 1000, 10_000, 10, 10, 2, 1024, True, 7)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the data set ------------------------------------------------------------------------


def small_body(i: int) -> bytes:
    """4 KiB of text, different for every file (so every digest differs)."""
    line = f"Pligt benchmark file {i:05d}: material subject to legal deposit.\n".encode()
    return (line * (SMALL // len(line) + 1))[:SMALL]


def small_name(i: int) -> str:
    return f"f{i:05d}.txt"


def write_small(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / small_name(i)).write_bytes(small_body(i))


def write_random(path: Path, size: int) -> str:
    """Random bytes behind a fixed header, so that libmagic always calls them data; return the SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"PLIGT-BENCH-DATA\n"
    digest = hashlib.sha256(header)
    with path.open("wb") as out:
        out.write(header)
        left = size - len(header)
        while left:
            chunk = os.urandom(min(4 * MiB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


# -- the Pligt instance ------------------------------------------------------------------


@dataclass
class Instance:
    path: Path
    owner: tuple[str, str]
    crawler: tuple[str, str]


def make_instance(path: Path, env: dict[str, str], count: int) -> Instance:
    """``pligt init``, then ``count`` protected items and a crawler credential, in-process."""
    from archive.archive import _version_facts
    from archive.retention import retain_until
    from deposit import build_archive
    from deposit.settings import load_settings

    owner = init_instance(path, env)
    archive = build_archive(load_settings(path, env={}))
    root = archive.storage.root  # type: ignore[attr-defined]  # local storage
    now = archive.clock()
    until = retain_until(now, archive.retention_days)
    with archive.catalog.transaction():
        for i in range(count):
            body = small_body(i)
            slug = small_name(i).removesuffix(".txt")
            key = f"{slug}/{secrets.token_hex(12)}"
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            target.chmod(0o444)
            version = archive.catalog.add_version(
                slug=slug,
                title=f"Benchmark file {i}",
                visibility="protected",
                filename=small_name(i),
                size=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
                content_type="text/plain; charset=utf-8",
                storage_key=key,
                published_at=now,
                retain_until=until,
            )
            archive.catalog.append_audit("version.published", _version_facts(version), None, now)
    request = archive.access.file(dict(REQUEST_FIELDS))
    approval = archive.access.approve(request.id, valid_days=30)
    _, credential, password = archive.access.release(approval.release_token)
    return Instance(path, owner, (credential.username, password))


@dataclass
class Pligt:
    process: subprocess.Popen[bytes]
    base: str

    @property
    def pid(self) -> int:
        return self.process.pid


def start_pligt(instance: Path, env: dict[str, str], log_path: Path) -> Pligt:
    """``pligt serve`` with its defaults (2 gthread workers, 32 threads each); only the port is ours."""
    port = free_port()
    process = start_server(instance, port, env, log_path)
    deadline = time.monotonic() + 30
    while len(workers(process.pid)) < 2:  # both workers, not only the first to answer /healthz
        if time.monotonic() > deadline:
            stop_server(process)
            raise Failed(f"pligt serve did not start its workers in 30 s:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    return Pligt(process, f"http://127.0.0.1:{port}")


def workers(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


# -- nginx -------------------------------------------------------------------------------


def htpasswd_line(username: str, password: str) -> str:
    """An apr1 (Apache MD5) entry, htpasswd's default, which nginx's auth_basic checks."""
    result = run(["htpasswd", "-n", "-i", "-m", username], input=password)
    return result.stdout.strip()


def start_nginx(folder: Path, www: Path, users: list[tuple[str, str]]) -> tuple[subprocess.Popen[bytes], int, int]:
    """nginx on two loopback ports: ``main`` (root: www) and ``harvest`` (root: www/harvest)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "htpasswd").write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "temp" / sub).mkdir(parents=True, exist_ok=True)
    main_port, harvest_port = free_port(), free_port()
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    server = """
    server {{
        listen 127.0.0.1:{port};
        root {root};
        autoindex on;
        auth_basic "{realm}";
        auth_basic_user_file {folder}/htpasswd;
    }}"""
    config = f"""
{user}
worker_processes 2;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder}/access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 15;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    {server.format(port=main_port, root=www, realm=REALM, folder=folder)}
    {server.format(port=harvest_port, root=www / "harvest", realm=REALM, folder=folder)}
}}
"""
    conf = folder / "nginx.conf"
    conf.write_text(config)
    with (folder / "stderr.log").open("wb") as out:
        process = subprocess.Popen(
            ["nginx", "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failed(
                f"nginx exited with {process.returncode}: {(folder / 'error.log').read_text(errors='replace')}"
            )
        try:
            requests.get(f"http://127.0.0.1:{main_port}/", timeout=1)
            requests.get(f"http://127.0.0.1:{harvest_port}/", timeout=1)
            return process, main_port, harvest_port
        except requests.ConnectionError:
            time.sleep(0.1)
    stop_server(process)
    raise Failed("nginx did not come up in 15 s")


# -- running tools -------------------------------------------------------------------------


def run(args: list[str], *, timeout: float = STEP_TIMEOUT, input: str | None = None, **kwargs: object):  # noqa: ANN201
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input, check=True, **kwargs)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZES = {"B": 1 / MiB, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0**2}


@dataclass
class Wrk:
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
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    args += ["-H", f"Authorization: Basic {token}", url]
    out = run(args, timeout=seconds + 60).stdout

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


def curl_upload(url: str, auth: tuple[str, str], path: Path, netrc_dir: Path) -> tuple[float, dict]:
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
    return seconds, json.loads(body)


def curl_get(url: str, netrc: Path) -> int:
    """Download to /dev/null; return the bytes received."""
    result = run(
        ["curl", "-sS", "--fail", "--netrc-file", str(netrc), "-o", "/dev/null", "-w", "%{size_download}", url]
    )
    return int(result.stdout)


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
        parts = urlsplit(url)
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        head = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Basic {token}\r\n"
            "User-Agent: bench-slow-client\r\nConnection: close\r\n\r\n"
        ).encode()
        self.received = [0] * SLOW_CLIENTS
        for n in range(SLOW_CLIENTS):
            thread = threading.Thread(
                target=self._client, args=(n, parts.hostname, parts.port, head, seconds), daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _client(self, n: int, host: str, port: int, head: bytes, seconds: float) -> None:
        began = time.monotonic()
        deadline = began + seconds
        with socket.create_connection((host, port), timeout=20) as sock:
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
        self.stop.set()
        self.finish()


def wget_harvest(start: str, home: Path, out: Path) -> tuple[float, int, int, int]:
    """A recursive harvest with a WARC, credentials from .netrc after the challenge.

    Returns wall seconds, wget's exit code, the number of HTTP responses in the
    WARC and of distinct 4 KiB benchmark files that ended up on disk.

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
    # Saved names differ (Pligt's "latest" links redirect): count the distinct benchmark files by content.
    items = set()
    for path in (out / "mirror").rglob("*"):
        if path.is_file() and path.stat().st_size == SMALL:
            match = re.match(rb"Pligt benchmark file (\d+):", path.read_bytes()[:64])
            if match:
                items.add(int(match.group(1)))
    files = len(items)
    return seconds, result.returncode, fetched, files


def timed_fetches(url: str, auth: tuple[str, str], count: int) -> tuple[list[float], int, dict[str, str]]:
    """Fetch a page ``count`` times on one keep-alive connection; return the times in ms."""
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


def sha256sum_seconds(path: Path) -> float:
    best = float("inf")
    for _ in range(2):
        began = time.monotonic()
        run(["sha256sum", str(path)])
        best = min(best, time.monotonic() - began)
    return best


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    pligt: float | None
    nginx: float | None
    unit: str
    #: ("min" | "max", bound) on the ratio pligt/nginx, or on pligt itself with "abs-max".
    target: tuple[str, float] | None = None
    target_text: str = ""
    nginx_label: str = ""
    note: str = ""
    #: Set when combining runs: the median of the runs' own ratios, and those ratios.
    ratio_override: float | None = None
    run_ratios: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.ratio_override is not None:
            return self.ratio_override
        if self.pligt is None or self.nginx is None or self.nginx == 0:
            return None
        return self.pligt / self.nginx

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.pligt is None:
            return None
        kind, bound = self.target
        if kind == "abs-max":
            return self.pligt < bound
        if self.ratio is None:
            return None
        return self.ratio >= bound if kind == "min" else self.ratio <= bound


@dataclass
class Results:
    plan: Plan
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        log(f"{row.metric}: Pligt {fmt(row.pligt)} {row.unit}, nginx {fmt(row.nginx)}")


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def machine() -> dict[str, str]:
    def first_line(args: list[str]) -> str:
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "not installed"
        text = (result.stdout or result.stderr).strip()
        return text.splitlines()[0] if text else "?"

    import gunicorn

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "load": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{psutil.virtual_memory().total / 1024**3:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gunicorn": gunicorn.__version__,
        "flask": _dist_version("flask"),
        "werkzeug": _dist_version("werkzeug"),
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]).split(" Copyright")[0],
        "wget": first_line(["wget", "--version"]),
        "curl": first_line(["curl", "--version"]),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def measure_tree(pid: int, name: str, size: int, action: Callable[[], None]) -> Phase:
    sampler = Sampler(pid)
    sampler.start()
    try:
        return measure(sampler, name, size, action)
    finally:
        sampler.stop()


def bench(plan: Plan, work: Path, results: Results, stack: list[Callable[[], None]]) -> None:
    env = clean_env(plan.upload_mib * MiB)
    www = work / "www"

    log(f"generating the data set in {work}")
    write_small(www / "harvest", plan.harvest_items)
    write_small(www / "index", plan.index_items)
    write_random(www / "big" / "big100.bin", 100 * MiB)
    upload_name = "big1g.bin" if plan.upload_mib == 1024 else f"upload{plan.upload_mib}.bin"
    upload_sha256 = write_random(www / "big" / upload_name, plan.upload_mib * MiB)

    log(f"making the Pligt instances ({plan.harvest_items:,} and {plan.index_items:,} protected items)")
    main = make_instance(work / "main", env, plan.harvest_items)
    index = make_instance(work / "index", env, plan.index_items)

    home = work / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {main.crawler[0]} password {main.crawler[1]}\n")
    netrc.chmod(0o600)

    nginx, nginx_port, harvest_port = start_nginx(work / "nginx", www, [main.crawler, index.crawler])
    stack.append(lambda: stop_server(nginx))
    ngx = f"http://127.0.0.1:{nginx_port}"
    log(f"nginx on {ngx} and :{harvest_port}")
    server = start_pligt(main.path, env, work / "pligt-main.log")
    stack.append(lambda: stop_server(server.process))
    log(f"pligt serve on {server.base}, workers {workers(server.pid)}")
    auth = main.crawler

    # (f) the harvest, first: the main instance holds only the small items yet.
    log("wget harvest from nginx's autoindex")
    n_secs, n_rc, n_urls, n_files = wget_harvest(f"http://127.0.0.1:{harvest_port}/", home, work / "harvest-nginx")
    log("wget harvest from Pligt's /protected/")
    p_secs, p_rc, p_urls, p_files = wget_harvest(f"{server.base}/protected/", home, work / "harvest-pligt")
    results.add(
        Row(
            f"wget harvest of {plan.harvest_items:,} items, WARC (s)",
            p_secs,
            n_secs,
            "s",
            None if plan.quick else ("max", 1.5),
            "(full run: ≤ 1.5×)" if plan.quick else "≤ 1.5×",
            note=f"HTTP responses in the WARC: Pligt {p_urls:,}, nginx {n_urls:,}; "
            f"items harvested {p_files:,} / {n_files:,}"
            + (
                "; the target is for 1,000 items: with 200, Pligt's one scrypt check of the crawler's "
                "password (~0.1 s) weighs five times as much"
                if plan.quick
                else ""
            ),
        )
    )
    if p_files != plan.harvest_items or n_files != plan.harvest_items:
        results.notes.append(
            f"harvest incomplete: Pligt {p_files}, nginx {n_files} of {plan.harvest_items} files "
            f"(wget exit {p_rc}/{n_rc})"
        )

    # (a) authenticated 4 KiB GET
    small_pligt = f"{server.base}/files/f00000/v1/f00000.txt"
    small_nginx = f"{ngx}/harvest/f00000.txt"
    for url in (small_pligt, small_nginx):
        wrk(url, auth, plan.warm_seconds, 16)
    n_small = wrk(small_nginx, auth, plan.wrk_seconds, 16)
    p_small = wrk(small_pligt, auth, plan.wrk_seconds, 16)
    check_wrk(results, "4 KiB", p_small, n_small)
    results.add(
        Row(
            "4 KiB GET, auth, wrk -t2 -c16 (req/s)",
            p_small.requests_per_s,
            n_small.requests_per_s,
            "req/s",
            ("min", 0.5),
            "≥ 0.5×",
        )
    )
    results.add(Row("4 KiB GET p99 latency (ms)", p_small.p99_ms, n_small.p99_ms, "ms", ("max", 3.0), "≤ 3×"))
    results.add(Row("4 KiB GET p50 latency (ms)", p_small.p50_ms, n_small.p50_ms, "ms"))

    # the 100 MiB file, uploaded by the owner
    upload_url = f"{server.base}/api/items?visibility=protected&filename="
    secs, answer = curl_upload(upload_url + "big100.bin", main.owner, www / "big" / "big100.bin", work)
    results.add(Row("upload 100 MiB, owner API (MiB/s)", 100 / secs, None, "MiB/s"))
    big_pligt = answer["version"]["url"]
    big_nginx = f"{ngx}/big/big100.bin"

    # (b) 100 MiB GET
    for url in (big_pligt, big_nginx):
        wrk(url, auth, plan.warm_seconds, 2)
    n_big = wrk(big_nginx, auth, plan.big_seconds, 4)
    p_big = wrk(big_pligt, auth, plan.big_seconds, 4)
    check_wrk(results, "100 MiB", p_big, n_big)
    results.add(
        Row("100 MiB GET, wrk -t2 -c4 (MiB/s)", p_big.mib_per_s, n_big.mib_per_s, "MiB/s", ("min", 0.9), "≥ 0.9×")
    )

    # (c) the 4 KiB rate while 16 slow clients fetch the 100 MiB file
    loaded: dict[str, Wrk] = {}
    slow_rates: dict[str, float] = {}
    for name, small_url, big_url in (("nginx", small_nginx, big_nginx), ("pligt", small_pligt, big_pligt)):
        slow = Slow()
        stack.append(slow.kill)
        lead = 2
        slow.start(big_url, auth, lead + plan.wrk_seconds + 1)
        time.sleep(lead)
        loaded[name] = wrk(small_url, auth, plan.wrk_seconds, 16)
        got = slow.finish()
        slow_rates[name] = statistics.mean(got) / (lead + plan.wrk_seconds + 1) / 1000
    check_wrk(results, "4 KiB with slow clients", loaded["pligt"], loaded["nginx"])
    results.add(
        Row(
            f"4 KiB req/s while {SLOW_CLIENTS} clients fetch 100 MiB at 500 KB/s",
            loaded["pligt"].requests_per_s,
            loaded["nginx"].requests_per_s,
            "req/s",
            note=f"slow clients' mean rate: Pligt {slow_rates['pligt']:.0f} KB/s, nginx {slow_rates['nginx']:.0f} KB/s",
        )
    )
    p_drop = 100 * (1 - loaded["pligt"].requests_per_s / p_small.requests_per_s)
    n_drop = 100 * (1 - loaded["nginx"].requests_per_s / n_small.requests_per_s)
    results.add(
        Row("drop of the 4 KiB rate under slow clients (%)", p_drop, n_drop, "%", ("abs-max", 33.4), "Pligt ≤ 33 %")
    )

    # (e) and (d): the large upload (RSS sampled), sha256sum of the same file, and serving it
    source = www / "big" / upload_name
    size = plan.upload_mib * MiB
    uploaded: dict = {}

    def upload() -> None:
        seconds, answer = curl_upload(upload_url + upload_name, main.owner, source, work)
        uploaded.update(answer, seconds=seconds)

    log(f"uploading {plan.upload_mib:,} MiB through the owner API")
    if plan.memory:
        up = measure_tree(server.pid, "upload", size, upload)
    else:
        upload()
    sha_secs = sha256sum_seconds(source)
    up_rate = plan.upload_mib / uploaded["seconds"]
    sha_rate = plan.upload_mib / sha_secs
    if uploaded["version"]["sha256"] != upload_sha256:
        results.notes.append("the uploaded file's digest differs from the source's")
    results.add(
        Row(
            f"upload {plan.upload_mib:,} MiB, owner API (MiB/s)",
            up_rate,
            sha_rate,
            "MiB/s",
            ("min", 0.5),
            "≥ 0.5× sha256sum",
            nginx_label="sha256sum",
        )
    )
    if plan.memory:
        down_url = uploaded["version"]["url"]
        p_down = measure_tree(server.pid, "download", size, lambda: curl_get(down_url, netrc))
        n_down = measure_tree(nginx.pid, "download", size, lambda: curl_get(f"{ngx}/big/{upload_name}", netrc))
        results.add(
            Row(
                "RSS growth receiving 1 GiB (MiB)",
                up.growth / MiB,
                None,
                "MiB",
                ("abs-max", 50),
                "< 50 MiB",
                note=f"Pligt tree before {up.rss_before / MiB:.0f} MiB, peak {up.rss_peak / MiB:.0f} MiB",
            )
        )
        results.add(
            Row(
                "RSS growth serving 1 GiB (MiB)",
                p_down.growth / MiB,
                n_down.growth / MiB,
                "MiB",
                ("abs-max", 50),
                "< 50 MiB",
                note=f"1 GiB GET with curl: Pligt {p_down.mib_per_s:,.0f} MiB/s, nginx {n_down.mib_per_s:,.0f} MiB/s",
            )
        )
        rss_pligt, _ = tree_rss(server.pid)
        rss_nginx, _ = tree_rss(nginx.pid)
        results.add(Row("RSS of the whole server after the run (MiB)", rss_pligt / MiB, rss_nginx / MiB, "MiB"))

    stop_server(server.process)

    # (g) the protected index with many items beside nginx's autoindex
    log(f"protected index with {plan.index_items:,} items")
    server = start_pligt(index.path, env, work / "pligt-index.log")
    stack.append(lambda: stop_server(server.process))
    n_times, n_size, _ = timed_fetches(f"{ngx}/index/", index.crawler, plan.index_fetches)
    sampler = Sampler(server.pid)
    sampler.start()
    before = sampler.settled(0.5)
    p_times, p_size, p_headers = timed_fetches(f"{server.base}/protected/", index.crawler, plan.index_fetches)
    peak, _ = sampler.peak_since(0)
    sampler.stop()
    streamed = "chunked" if p_headers.get("Transfer-Encoding") == "chunked" else "one buffer (Content-Length)"
    results.add(
        Row(
            f"protected index, {plan.index_items:,} items, median of {plan.index_fetches} (ms)",
            statistics.median(p_times),
            statistics.median(n_times),
            "ms",
            ("max", 2.0),
            "≤ 2×",
            note=f"page {p_size / 1e6:.2f} MB vs {n_size / 1e6:.2f} MB; Pligt sends it as {streamed}; "
            f"Pligt RSS +{(peak - before) / MiB:.0f} MiB while rendering",
        )
    )
    stop_server(server.process)


def check_wrk(results: Results, what: str, *runs: Wrk) -> None:
    for name, result in zip(("Pligt", "nginx"), runs, strict=True):
        if result.errors or result.bad_status:
            results.notes.append(
                f"{what}: {name} had {result.errors} socket errors and {result.bad_status} non-2xx/3xx answers "
                f"of {result.requests} requests"
            )


def report(results: Results) -> str:
    plan, lines = results.plan, []
    m = results.machine
    lines.append(
        f"Pligt beside nginx ({'--quick' if plan.quick else 'full run'}), loopback, {m['cores']} cores, {m['cpu']}, "
        f"{m['memory']}, Linux {m['kernel']}"
    )
    lines.append(
        f"Python {m['python']}, gunicorn {m['gunicorn']} (pligt serve defaults: 2 gthread workers × 32 threads), "
        f"Flask {m['flask']}, Werkzeug {m['werkzeug']}; {m['nginx']} (2 workers, sendfile, auth_basic apr1); "
        f"{m['wrk']}; {m['wget']}"
    )
    lines.append(
        f"load average (1, 5, 15 min) at the start: {m['load']}; at the end: {m.get('load_end', '?')} "
        "(other work on the machine shares the 2 cores with both servers and the clients)"
    )
    lines.append("")
    header = ("metric", "Pligt", "nginx / ref", "ratio", "target", "result")
    rows = [header]
    for r in results.rows:
        ref = fmt(r.nginx)
        if r.nginx_label and r.nginx is not None:
            ref = f"{r.nginx_label} {ref}"
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None and r.target and r.target[0] != "abs-max" else ""
        if not ratio and r.ratio is not None and r.unit not in ("%", "MiB"):
            ratio = f"{r.ratio:.2f}×"
        result = {True: "pass", False: "FAIL", None: ""}[r.passed]
        rows.append((r.metric, fmt(r.pligt), ref, ratio, r.target_text, result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"{r.metric}: {r.note}" for r in results.rows if r.note] + results.notes
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


# -- profiling --------------------------------------------------------------------------------


def profile(plan: Plan, work: Path, out: Path, seconds: int, stack: list[Callable[[], None]]) -> None:
    """py-spy on both workers while wrk loads the 4 KiB download, then the protected index.

    Two passes per target: every active (non-idle) thread, which shows where
    requests spend their time, waiting on SQLite included; and ``--gil``, only
    the thread holding the GIL, which shows what the Python CPU goes to.
    """
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise Failed(f"{py_spy} is missing: {sys.executable} -m pip install py-spy")
    env = clean_env(0)
    log(f"making an instance with {plan.index_items:,} protected items")
    instance = make_instance(work / "index", env, plan.index_items)
    server = start_pligt(instance.path, env, work / "pligt.log")
    stack.append(lambda: stop_server(server.process))
    out.mkdir(parents=True, exist_ok=True)
    targets = [
        ("download", f"{server.base}/files/f00000/v1/f00000.txt", 16),
        ("index", f"{server.base}/protected/", 4),
        ("upload", f"{server.base}/api/items?visibility=protected&filename=", 1),
    ]
    source = work / "upload.bin"
    write_random(source, 256 * MiB)
    for name, url, connections in targets:
        settle(server.pid)  # requests queued by the last target's wrk must not leak into this profile
        if name != "upload":
            wrk(url, instance.crawler, 2, connections)  # warm-up, the slow hash in both workers
        for mode, flags in (("active", []), ("gil", ["--gil"])):
            pids = workers(server.pid)
            parts = [work / f"{name}-{mode}-{pid}.txt" for pid in pids]
            spies = [
                subprocess.Popen(
                    [str(py_spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
                    + ["--format", "raw", "--output", str(part), "--nonblocking", *flags],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for pid, part in zip(pids, parts, strict=True)
            ]
            settle(server.pid)
            log(f"profiling {name} ({mode}) for {seconds} s: py-spy on workers {pids}")
            if name == "upload":
                # 256 MiB uploads one after the other, through the owner API, until py-spy is done.
                uploads, began = 0, time.monotonic()
                while any(spy.poll() is None for spy in spies) and time.monotonic() - began < seconds + 30:
                    curl_upload(f"{url}u{mode}{uploads}.bin", instance.owner, source, work)
                    uploads += 1
                figure = f"{uploads * 256 / (time.monotonic() - began):,.0f} MiB/s over {uploads} uploads of 256 MiB"
            else:
                result = wrk(url, instance.crawler, seconds + 2, connections)
                figure = f"wrk -t2 -c{connections}: {result.requests_per_s:,.1f} req/s, p99 {result.p99_ms:.1f} ms"
            for spy in spies:
                _, err = spy.communicate(timeout=60)
                if spy.returncode != 0:
                    raise Failed(f"py-spy failed: {err}")
            merged: Counter[str] = Counter()
            for part in parts:
                for line in part.read_text().splitlines():
                    frames, _, count = line.rpartition(" ")
                    if frames:
                        merged[frames] += int(count)
            saved = out / f"{name}-{mode}.collapsed.txt"
            saved.write_text("".join(f"{frames} {count}\n" for frames, count in sorted(merged.items())))
            print(
                f"\n== {name} ({mode} threads{', GIL holder only' if mode == 'gil' else ''}): {url} "
                f"under {figure}; stacks in {saved} ({saved.stat().st_size / 1024:,.0f} KiB)"
            )
            print_top(merged)


def settle(pid: int, limit: float = 60) -> None:
    """Wait (at most ``limit`` seconds) until the server's workers are idle: under 10 % CPU over half a second."""
    deadline = time.monotonic() + limit
    processes = [psutil.Process(p) for p in workers(pid)]
    while time.monotonic() < deadline:
        for process in processes:
            process.cpu_percent()
        time.sleep(0.5)
        if sum(process.cpu_percent() for process in processes) < 10:
            return


#: Frames every request passes through on its way in (threads, gunicorn's pool, Flask's dispatch,
#: the login decorator): left out of "total", where they would fill the list at 90-100 % each.
_OUTER = (
    "threading.py:",
    "concurrent/futures/thread.py:",
    "gunicorn/workers/gthread.py:ThreadWorker.handle",
    "flask/app.py:Flask.__call__",
    "flask/app.py:Flask.wsgi_app",
    "flask/app.py:Flask.full_dispatch_request",
    "flask/app.py:Flask.dispatch_request",
    "flask_httpauth.py:HTTPAuth.login_required.",
)


def parse_frame(frame: str) -> tuple[str, str]:
    """``func (path/file.py:123)`` as (``file.py:func``, ``file.py:123 func``), paths shortened."""
    match = re.match(r"^(.*) \((.*?)(?::(\d+))?\)$", frame)
    if not match:
        return frame, frame
    func, path, line = match.groups()
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{func}", f"{path}:{line} {func}"


def print_top(stacks: Counter[str], n: int = 10) -> None:
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line, count in stacks.items():
        frames = [parse_frame(f) for f in line.split(";")]
        own[frames[-1][0]] += count
        own_lines[frames[-1][1]] += count
        for function in {f[0] for f in frames}:
            if not function.startswith(_OUTER):
                inclusive[function] += count
    print(f"{total:,} samples, both workers")
    titles = ("own time", "own time, by line", "total time (below gunicorn's handle and Flask's dispatch)")
    for title, counter in zip(titles, (own, own_lines, inclusive), strict=True):
        print(f"-- top {n} by {title}")
        for frame, count in counter.most_common(n):
            print(f"  {100 * count / total:5.1f}%  {frame}")


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="about a minute: fewer items, shorter loads, no 1 GiB file"
    )
    parser.add_argument("--tmpdir", type=Path, help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (and say where it is)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--plot", type=Path, help="draw the ratios from --json's file into this PNG (needs matplotlib)")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="profile the hot paths with py-spy into DIR instead"
    )
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--wait-idle",
        type=int,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the 1-minute load average to fall below 0.5",
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the medians of earlier runs' --json files (and write them to --json, draw --plot)",
    )
    args = parser.parse_args(argv)
    if args.combine:
        data = combine(args.combine)
        print(data["table"])
        if args.json:
            args.json.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        if args.plot:
            plot(data, args.plot)
        return 0
    if args.plot and args.json and args.json.is_file() and not args.profile:
        plot(json.loads(args.json.read_text()), args.plot)
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    deadline = time.monotonic() + args.wait_idle
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5)
    plan = Plan.make(args.quick)
    work = Path(tempfile.mkdtemp(prefix="pligt-bench-compare-", dir=args.tmpdir))
    stack: list[Callable[[], None]] = []
    results = Results(plan, machine())
    began = time.monotonic()
    try:
        need = 3 * plan.upload_mib * MiB + 400 * MiB
        if shutil.disk_usage(work).free < need:
            raise Failed(f"{work} has too little free space; the benchmark needs about {need / MiB:,.0f} MiB")
        if args.profile:
            profile(plan, work, args.profile, args.profile_seconds, stack)
            return 0
        bench(plan, work, results, stack)
    except (Failed, requests.RequestException, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", None) or ""
        print(f"bench: error: {e}\n{detail}", file=sys.stderr)
        for name in ("pligt-main.log", "pligt-index.log", "nginx/error.log"):
            path = work / name
            if path.is_file():
                print(f"--- {name} (last lines) ---", file=sys.stderr)
                print("\n".join(path.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
        return 1
    finally:
        for stop in reversed(stack):
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - clean up the rest all the same
                print(f"bench: while cleaning up: {e}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results.machine["load_end"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    table = report(results)
    print(table)
    print(f"\n(run took {time.monotonic() - began:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(to_json(results), indent=2, ensure_ascii=False) + "\n")
        if args.plot:
            plot(to_json(results), args.plot)
    return 0


def combine(paths: list[Path]) -> dict:
    """Medians over several runs' JSON files: Pligt's and nginx's figures, and the ratio of each run."""
    runs = [json.loads(p.read_text()) for p in paths]
    first = runs[0]
    rows = []
    for n, row in enumerate(first["rows"]):
        same = [run["rows"][n] for run in runs if len(run["rows"]) > n and run["rows"][n]["metric"] == row["metric"]]

        def median(key: str, same: list[dict] = same) -> float | None:
            values = [r[key] for r in same if r[key] is not None]
            return statistics.median(values) if values else None

        absolute = row["unit"] in ("%", "MiB") or (row["target"] and row["target"][0] == "abs-max")
        ratios = [] if absolute else [r["ratio"] for r in same if r["ratio"] is not None]
        combined = Row(
            row["metric"],
            median("pligt"),
            median("nginx"),
            row["unit"],
            tuple(row["target"]) if row["target"] else None,  # type: ignore[arg-type]
            row["target_text"],
            nginx_label="sha256sum" if "sha256sum" in row["target_text"] else "",
        )
        if ratios:
            combined.ratio_override = statistics.median(ratios)
            combined.run_ratios = ratios
            combined.note = f"ratio per run: {', '.join(f'{r:.2f}' for r in ratios)}"
        pligts = [r["pligt"] for r in same if r["pligt"] is not None]
        if not ratios and len(pligts) > 1:
            combined.note = f"Pligt per run: {', '.join(fmt(v) for v in pligts)}"
        rows.append(combined)
    results = Results(Plan.make(first["quick"]), dict(first["machine"]))
    results.rows = rows
    results.machine["load"] = " / ".join(run["machine"]["load"] for run in runs)
    results.machine["load_end"] = " / ".join(run["machine"].get("load_end", "?") for run in runs)
    results.notes = [f"median of {len(runs)} runs; the ratio is the median of each run's own ratio"]
    for run in runs:
        results.notes.extend(run["notes"])
    return to_json(results)


def to_json(results: Results) -> dict:
    return {
        "quick": results.plan.quick,
        "machine": results.machine,
        "rows": [
            {
                "metric": r.metric,
                "pligt": r.pligt,
                "nginx": r.nginx,
                "unit": r.unit,
                "ratio": r.ratio,
                "target": r.target,
                "target_text": r.target_text,
                "passed": r.passed,
                "note": r.note,
                "run_ratios": r.run_ratios,
            }
            for r in results.rows
        ],
        "notes": results.notes,
        "table": report(results),
    }


#: The plot's widest bar, as a multiple of nginx.
SHOWN_MAX = 3.0


def plot(data: dict, path: Path) -> None:
    """Bars: Pligt's figure as a multiple of nginx's (or sha256sum's), "better" always to the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = []
    for row in data["rows"]:
        target = row["target"]
        if row["ratio"] is None or target is None or target[0] == "abs-max":
            continue
        runs = row.get("run_ratios") or [row["ratio"]]
        # Times and latencies: nginx/Pligt, so that 1.0 is nginx and higher is better everywhere.
        if target[0] == "max":
            runs = [1 / r for r in runs]
            bars.append((row["metric"], 1 / row["ratio"], 1 / target[1], row["passed"], min(runs), max(runs)))
        else:
            bars.append((row["metric"], row["ratio"], target[1], row["passed"], min(runs), max(runs)))
    bars.reverse()
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(bars) + 1.8))
    ys = list(range(len(bars)))
    # Bars beyond SHOWN_MAX (the paged index against a whole autoindex) are cut, with their figure.
    values = [min(b[1], SHOWN_MAX) for b in bars]
    ax.barh(ys, values, color=["tab:green" if b[3] else "tab:red" for b in bars])
    for y, (_, value, target, _, low, high) in zip(ys, bars, strict=True):
        if high > low:
            ax.plot([min(low, SHOWN_MAX), min(high, SHOWN_MAX)], [y, y], color="dimgrey", linewidth=1)
        ax.plot([target, target], [y - 0.4, y + 0.4], color="black", linewidth=2)
        cut = " (bar cut)" if max(value, high) > SHOWN_MAX else ""
        ax.text(min(max(value, high), SHOWN_MAX) + 0.02, y, f"{value:.2f}×{cut}", va="center")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, min(SHOWN_MAX + 0.8, max(1.2, max(max(b[1], b[5]) for b in bars) + 0.2)))
    ax.set_yticks(ys, [b[0] for b in bars])
    ax.set_xlabel(
        "Pligt as a multiple of nginx (of sha256sum for the upload); higher is better;\n"
        "times and latencies inverted (nginx's / Pligt's); 1.0 = as good as nginx"
    )
    runs = len(next((row.get("run_ratios") for row in data["rows"] if row.get("run_ratios")), [])) or 1
    ax.set_title(
        f"Pligt beside nginx, median of {runs} run(s) (grey line: range over the runs)\n"
        "black tick = issue 7's target; green = met, red = not met"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
