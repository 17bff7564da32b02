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
5. measures crawler patterns over the small files (``patterns``): the deposit
   crawler's own (HTTP/1.0, a connection per request, credentials up front), and
   other clients' 401-then-200 per URL and 304 revisit, on Pligt, nginx and
   copyparty (installed into a virtual environment of its own in the temporary
   folder; left out, with a note, if it cannot be installed);
6. prints one table with the ratios and the issue's targets.

``--profile DIR`` instead runs py-spy on the Pligt workers while wrk loads the
4 KiB download and then the protected index, saves the collapsed stacks in DIR
and prints the top frames by own and by total time.

``--catalog postgresql`` keeps both instances' catalogs in databases of a
throw-away PostgreSQL cluster on loopback (tests/support/postgres.py) instead
of SQLite files; everything else is the same, so the two tables compare.

Everything it starts is stopped, and the folder removed, at the end (also on
Ctrl-C or SIGTERM); ``--keep`` keeps the folder.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import MiB
from .common import log
from .dataset import Instance
from .dataset import make_instance
from .dataset import write_random
from .dataset import write_small
from .measure import SLOW_CLIENTS
from .measure import Slow
from .measure import Wrk
from .measure import curl_get
from .measure import curl_upload
from .measure import sha256sum_seconds
from .measure import timed_fetches
from .measure import wget_harvest
from .measure import wrk
from .patterns import PATTERNS
from .patterns import PatternRun
from .patterns import Target
from .patterns import check
from .patterns import copyparty_server
from .patterns import small_paths
from .patterns import validators
from .patterns import write_script
from .patterns import wrk_pattern
from .report import Results
from .report import Row
from .report import fmt
from .rss import Phase
from .rss import Sampler
from .rss import measure_tree
from .rss import tree_rss
from .servers import Nginx
from .servers import Pligt
from .servers import clean_env
from .servers import start_nginx
from .servers import start_pligt
from .servers import worker_pids

#: What to call, in reverse order, to stop everything a run started.
Stack = list[Callable[[], None]]


@dataclass(frozen=True)
class Plan:
    """How big and how long: the full run, or ``--quick``."""

    quick: bool
    harvest_items: int
    index_items: int
    wrk_seconds: int
    big_seconds: int
    warm_seconds: int
    upload_mib: int
    memory: bool
    index_fetches: int
    #: "sqlite" or "postgresql" (a throw-away cluster on loopback, one database per instance).
    catalog: str = "sqlite"

    @classmethod
    def make(cls, quick: bool, catalog: str = "sqlite") -> Plan:
        if quick:
            return cls(True, 200, 2000, 4, 3, 1, 128, False, 5, catalog)
        return cls(False, 1000, 10_000, 10, 10, 2, 1024, True, 7, catalog)

    @property
    def upload_name(self) -> str:
        return "big1g.bin" if self.upload_mib == 1024 else f"upload{self.upload_mib}.bin"


@dataclass
class Bench:
    """Everything one run has set up, for its steps to measure."""

    plan: Plan
    work: Path
    results: Results
    stack: Stack
    env: dict[str, str]
    main: Instance
    index: Instance
    netrc: Path
    nginx: Nginx
    server: Pligt
    upload_sha256: str

    @property
    def www(self) -> Path:
        return self.work / "www"

    @property
    def auth(self) -> tuple[str, str]:
        return self.main.crawler

    @property
    def upload_url(self) -> str:
        return f"{self.server.base}/api/items?visibility=protected&filename="


def prepare(plan: Plan, work: Path, results: Results, stack: Stack) -> Bench:
    """The data set, both Pligt instances, the crawler's .netrc, nginx, and Pligt on "main"."""
    env = clean_env(plan.upload_mib * MiB)
    www = work / "www"
    log(f"generating the data set in {work}")
    write_small(www / "harvest", plan.harvest_items)
    write_small(www / "index", plan.index_items)
    write_random(www / "big" / "big100.bin", 100 * MiB)
    upload_sha256 = write_random(www / "big" / plan.upload_name, plan.upload_mib * MiB)

    catalogs: list[str | None] = [None, None]
    if plan.catalog == "postgresql":
        from tests.support.postgres import start_cluster

        cluster = start_cluster(durable=True)
        stack.append(cluster.remove)
        catalogs = [cluster.new_database(), cluster.new_database()]
        log(f"PostgreSQL {cluster.bin.parts[-2]} on 127.0.0.1:{cluster.port} for the catalogs")
    log(f"making the Pligt instances ({plan.harvest_items:,} and {plan.index_items:,} protected items)")
    main = make_instance(work / "main", env, plan.harvest_items, catalogs[0])
    index = make_instance(work / "index", env, plan.index_items, catalogs[1])
    home = work / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {main.crawler[0]} password {main.crawler[1]}\n")
    netrc.chmod(0o600)

    nginx = start_nginx(work / "nginx", www, [main.crawler, index.crawler])
    stack.append(nginx.stop)
    log(f"nginx on {nginx.base} and :{nginx.harvest.rsplit(':', 1)[1]}")
    server = start_pligt(main.path, env, work / "pligt-main.log")
    stack.append(server.stop)
    log(f"pligt serve on {server.base}, workers {worker_pids(server.pid)}")
    return Bench(plan, work, results, stack, env, main, index, netrc, nginx, server, upload_sha256)


def bench(plan: Plan, work: Path, results: Results, stack: Stack) -> None:
    """Set up, then measure step by step, each step on both servers."""
    b = prepare(plan, work, results, stack)
    measure_harvest(b)  # first: the main instance holds only the small items yet
    small = measure_small(b)
    measure_patterns(b)
    big = measure_big(b)
    measure_slow_clients(b, small, big)
    uploaded, up = measure_large_upload(b)
    if up is not None:
        measure_memory(b, uploaded, up)
    b.server.stop()
    measure_index(b)


def check_wrk(results: Results, what: str, *runs: Wrk) -> None:
    """Note any socket errors or bad answers in wrk runs of Pligt and nginx."""
    for name, result in zip(("Pligt", "nginx"), runs, strict=True):
        if result.errors or result.bad_status:
            results.notes.append(
                f"{what}: {name} had {result.errors} socket errors and {result.bad_status} non-2xx/3xx answers "
                f"of {result.requests} requests"
            )


# -- the steps -------------------------------------------------------------------------------


def measure_harvest(b: Bench) -> None:
    """(f) A recursive wget harvest with a WARC, of nginx's autoindex and of Pligt's /protected/."""
    plan, home = b.plan, b.netrc.parent
    log("wget harvest from nginx's autoindex")
    n = wget_harvest(f"{b.nginx.harvest}/", home, b.work / "harvest-nginx")
    log("wget harvest from Pligt's /protected/")
    p = wget_harvest(f"{b.server.base}/protected/", home, b.work / "harvest-pligt")
    quick_note = (
        "; the target is for 1,000 items: with 200, Pligt's one scrypt check of the crawler's "
        "password (~0.1 s) weighs five times as much"
    )
    b.results.add(
        Row(
            f"wget harvest of {plan.harvest_items:,} items, WARC (s)",
            p.seconds,
            n.seconds,
            "s",
            None if plan.quick else ("max", 1.5),
            "(full run: ≤ 1.5×)" if plan.quick else "≤ 1.5×",
            note=f"HTTP responses in the WARC: Pligt {p.responses:,}, nginx {n.responses:,}; "
            f"items harvested {p.files:,} / {n.files:,}" + (quick_note if plan.quick else ""),
        )
    )
    if p.files != plan.harvest_items or n.files != plan.harvest_items:
        b.results.notes.append(
            f"harvest incomplete: Pligt {p.files}, nginx {n.files} of {plan.harvest_items} files "
            f"(wget exit {p.returncode}/{n.returncode})"
        )


@dataclass
class Pair:
    """The same file on both servers, and what wrk measured on each."""

    pligt_url: str
    nginx_url: str
    pligt: Wrk
    nginx: Wrk


def measure_small(b: Bench) -> Pair:
    """(a) An authenticated 4 KiB GET under wrk: rate and latency."""
    plan = b.plan
    small_pligt = f"{b.server.base}/files/f00000/v1/f00000.txt"
    small_nginx = f"{b.nginx.base}/harvest/f00000.txt"
    for url in (small_pligt, small_nginx):
        wrk(url, b.auth, plan.warm_seconds, 16)
    n_small = wrk(small_nginx, b.auth, plan.wrk_seconds, 16)
    p_small = wrk(small_pligt, b.auth, plan.wrk_seconds, 16)
    check_wrk(b.results, "4 KiB", p_small, n_small)
    b.results.add(
        Row(
            "4 KiB GET, auth, wrk -t2 -c16 (req/s)",
            p_small.requests_per_s,
            n_small.requests_per_s,
            "req/s",
            ("min", 0.5),
            "≥ 0.5×",
        )
    )
    b.results.add(Row("4 KiB GET p99 latency (ms)", p_small.p99_ms, n_small.p99_ms, "ms", ("max", 3.0), "≤ 3×"))
    b.results.add(Row("4 KiB GET p50 latency (ms)", p_small.p50_ms, n_small.p50_ms, "ms"))
    return Pair(small_pligt, small_nginx, p_small, n_small)


def measure_patterns(b: Bench) -> None:
    """(h) The deposit crawler's patterns over every small file, on Pligt, nginx and copyparty."""
    plan, count = b.plan, b.plan.harvest_items
    folder = b.work / "patterns"
    folder.mkdir()
    targets = [
        Target("pligt", b.server.base, small_paths("", count, pligt=True), [], []),
        Target("nginx", b.nginx.base, small_paths("/harvest", count, pligt=False), [], []),
    ]
    copyparty = copyparty_server(b.work, b.www / "harvest", b.auth, b.stack)
    if copyparty is not None:
        targets.append(Target("copyparty", copyparty.base, small_paths("/harvest", count, pligt=False), [], []))
    for target in targets:
        validators(target, b.auth, revisit=target.name != "copyparty")
    runs: dict[tuple[str, str], PatternRun] = {}
    for pattern in PATTERNS:
        for target in targets:
            if pattern == "revisit" and target.name == "copyparty":
                continue  # no ETag to revisit with
            script = write_script(folder, target, pattern, b.auth)
            log(f"pattern {pattern} on {target.name}")
            wrk_pattern(script, target.base, plan.warm_seconds)
            result = runs[(target.name, pattern)] = wrk_pattern(script, target.base, plan.wrk_seconds)
            problem = check(result, pattern)
            if problem:
                b.results.notes.append(f"pattern {pattern} on {target.name}: {problem}")
    if copyparty is not None:
        copyparty.stop()

    def rate(server: str, pattern: str) -> float | None:
        found = runs.get((server, pattern))
        return found.requests_per_s if found else None

    def beside(pattern: str) -> str:
        other = rate("copyparty", pattern)
        return f"copyparty {fmt(other)} req/s" if other is not None else "copyparty not measured"

    urls = f"{count:,} URLs"
    crawler = runs[("pligt", "crawler")]
    b.results.add(
        Row(
            f"deposit crawler: HTTP/1.0, a connection per request, credentials up front, {urls} (req/s)",
            rate("pligt", "crawler"),
            rate("nginx", "crawler"),
            "req/s",
            ("min", 0.5),
            "≥ 0.5×",
            note=f"{beside('crawler')}; Pligt p99 {crawler.wrk.p99_ms:.1f} ms, "
            f"nginx p99 {runs[('nginx', 'crawler')].wrk.p99_ms:.1f} ms",
        )
    )
    b.results.add(
        Row(
            "deposit crawler beside copyparty (req/s)",
            rate("pligt", "crawler"),
            rate("copyparty", "crawler"),
            "req/s",
            ("min", 1.0),
            "ahead of copyparty",
            nginx_label="copyparty",
        )
    )
    b.results.add(
        Row(
            "other clients: 401 then 200 per URL, HTTP/1.0 (req/s)",
            rate("pligt", "heritrix-close"),
            rate("nginx", "heritrix-close"),
            "req/s",
            note=f"each URL twice, a TCP connection per request; {beside('heritrix-close')}",
        )
    )
    b.results.add(
        Row(
            "other clients: 304 revisit, credentials + If-None-Match (req/s)",
            rate("pligt", "revisit"),
            rate("nginx", "revisit"),
            "req/s",
        )
    )


def measure_big(b: Bench) -> Pair:
    """The 100 MiB file, uploaded by the owner; then (b) a 100 MiB GET under wrk."""
    plan = b.plan
    secs, answer = curl_upload(b.upload_url + "big100.bin", b.main.owner, b.www / "big" / "big100.bin", b.work)
    b.results.add(Row("upload 100 MiB, owner API (MiB/s)", 100 / secs, None, "MiB/s"))
    big_pligt = answer["version"]["url"]
    big_nginx = f"{b.nginx.base}/big/big100.bin"
    for url in (big_pligt, big_nginx):
        wrk(url, b.auth, plan.warm_seconds, 2)
    n_big = wrk(big_nginx, b.auth, plan.big_seconds, 4)
    p_big = wrk(big_pligt, b.auth, plan.big_seconds, 4)
    check_wrk(b.results, "100 MiB", p_big, n_big)
    b.results.add(
        Row("100 MiB GET, wrk -t2 -c4 (MiB/s)", p_big.mib_per_s, n_big.mib_per_s, "MiB/s", ("min", 0.9), "≥ 0.9×")
    )
    return Pair(big_pligt, big_nginx, p_big, n_big)


def measure_slow_clients(b: Bench, small: Pair, big: Pair) -> None:
    """(c) The 4 KiB rate again while 16 slow clients fetch the 100 MiB file."""
    plan, lead = b.plan, 2
    seconds = lead + plan.wrk_seconds + 1
    loaded: dict[str, Wrk] = {}
    slow_rates: dict[str, float] = {}
    for name, small_url, big_url in (
        ("nginx", small.nginx_url, big.nginx_url),
        ("pligt", small.pligt_url, big.pligt_url),
    ):
        slow = Slow()
        b.stack.append(slow.kill)
        slow.start(big_url, b.auth, seconds)
        time.sleep(lead)
        loaded[name] = wrk(small_url, b.auth, plan.wrk_seconds, 16)
        slow_rates[name] = statistics.mean(slow.finish()) / seconds / 1000
    check_wrk(b.results, "4 KiB with slow clients", loaded["pligt"], loaded["nginx"])
    b.results.add(
        Row(
            f"4 KiB req/s while {SLOW_CLIENTS} clients fetch 100 MiB at 500 KB/s",
            loaded["pligt"].requests_per_s,
            loaded["nginx"].requests_per_s,
            "req/s",
            note=f"slow clients' mean rate: Pligt {slow_rates['pligt']:.0f} KB/s, nginx {slow_rates['nginx']:.0f} KB/s",
        )
    )
    p_drop = 100 * (1 - loaded["pligt"].requests_per_s / small.pligt.requests_per_s)
    n_drop = 100 * (1 - loaded["nginx"].requests_per_s / small.nginx.requests_per_s)
    b.results.add(
        Row("drop of the 4 KiB rate under slow clients (%)", p_drop, n_drop, "%", ("abs-max", 33.4), "Pligt ≤ 33 %")
    )


def measure_large_upload(b: Bench) -> tuple[dict[str, Any], Phase | None]:
    """(e) The large upload through the owner API (RSS sampled in a full run) beside ``sha256sum``.

    Returns the server's answer and, in a full run, the upload's memory phase.
    """
    plan = b.plan
    source = b.www / "big" / plan.upload_name
    uploaded: dict[str, Any] = {}

    def upload() -> None:
        seconds, answer = curl_upload(b.upload_url + plan.upload_name, b.main.owner, source, b.work)
        uploaded.update(answer, seconds=seconds)

    log(f"uploading {plan.upload_mib:,} MiB through the owner API")
    up = None
    if plan.memory:
        up = measure_tree(b.server.pid, "upload", plan.upload_mib * MiB, upload)
    else:
        upload()
    sha_secs = sha256sum_seconds(source)
    if uploaded["version"]["sha256"] != b.upload_sha256:
        b.results.notes.append("the uploaded file's digest differs from the source's")
    b.results.add(
        Row(
            f"upload {plan.upload_mib:,} MiB, owner API (MiB/s)",
            plan.upload_mib / uploaded["seconds"],
            plan.upload_mib / sha_secs,
            "MiB/s",
            ("min", 0.5),
            "≥ 0.5× sha256sum",
            nginx_label="sha256sum",
        )
    )
    return uploaded, up


def measure_memory(b: Bench, uploaded: dict[str, Any], up: Phase) -> None:
    """(d) RSS growth of both servers' process trees while the large file is received and served."""
    size, name = b.plan.upload_mib * MiB, b.plan.upload_name
    down_url = uploaded["version"]["url"]
    p_down = measure_tree(b.server.pid, "download", size, lambda: curl_get(down_url, b.netrc))
    n_down = measure_tree(b.nginx.pid, "download", size, lambda: curl_get(f"{b.nginx.base}/big/{name}", b.netrc))
    b.results.add(
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
    b.results.add(
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
    rss_pligt, _ = tree_rss(b.server.pid)
    rss_nginx, _ = tree_rss(b.nginx.pid)
    b.results.add(Row("RSS of the whole server after the run (MiB)", rss_pligt / MiB, rss_nginx / MiB, "MiB"))


def measure_index(b: Bench) -> None:
    """(g) The protected index with many items, on a server of its own, beside nginx's autoindex."""
    plan, index = b.plan, b.index
    log(f"protected index with {plan.index_items:,} items")
    server = start_pligt(index.path, b.env, b.work / "pligt-index.log")
    b.stack.append(server.stop)
    n_times, n_size, _ = timed_fetches(f"{b.nginx.base}/index/", index.crawler, plan.index_fetches)
    sampler = Sampler(server.pid)
    sampler.start()
    before = sampler.settled(0.5)
    p_times, p_size, p_headers = timed_fetches(f"{server.base}/protected/", index.crawler, plan.index_fetches)
    peak, _ = sampler.peak_since(0)
    sampler.stop()
    streamed = "chunked" if p_headers.get("Transfer-Encoding") == "chunked" else "one buffer (Content-Length)"
    b.results.add(
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
    server.stop()
