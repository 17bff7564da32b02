"""The deposit crawler itself, Heritrix 3 from Maven Central, harvests a real `pligt serve`.

The institution files its request through the web form; the owner approves it with `pligt
approve`; the institution opens the release page and pastes the HttpAuthenticationCredential bean
it shows into the job's credential store, unchanged. Heritrix runs that job (NetarchiveSuite's
settings, no waits) while another client guesses the crawler's password and others flood the
server anonymously. Then the owner rotates the credential (`pligt rotate --show --json`) and a
second job runs with the bean from that; a third goes over HTTPS, through the Caddy `pligt
deploy` configures. Everything is read from what Heritrix itself kept: the request and response
records of its WARC files and its crawl.log. A job at Netarkivet's own pace, with a file big
enough to take about a minute, runs with ``-m slow``.
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest
import requests

from pligt.links import crawler_domain
from tests.support.access import REQUEST_FIELDS
from tests.support.caddy import local_caddyfile
from tests.support.cli import invoke
from tests.support.cli import run_cli
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process
from tests.support.real_heritrix import FAST
from tests.support.real_heritrix import NETARKIVET
from tests.support.real_heritrix import Exchange
from tests.support.real_heritrix import Harvest
from tests.support.real_heritrix import Pace
from tests.support.real_heritrix import launch
from tests.support.servers import Server
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parent.parent
#: The public name of the HTTPS test server: a name with a dot, as a real one has (the crawler's
#: Java sends it as SNI, which Caddy needs), resolved to loopback by the job's own hosts file.
HTTPS_HOST = "deposit.pligt.test"


def pdf(text: str, pad: int = 0) -> bytes:
    body = f"%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\n".encode() + b"%" + b"x" * pad + b"\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


#: (file name, bytes, visibility, slug): two retained versions of "kursus", awkward names.
FILES = [
    ("Brochure 2026.pdf", pdf("brochure"), "--public", "brochure"),
    ("prisliste.csv", b"vare;pris\nkursus;1200\nbog;300\n", "--public", "prisliste"),
    ("Årsrapport æøå 2026.pdf", pdf("aarsrapport", pad=300_000), "--protected", "aarsrapport"),
    ("Kursusmateriale for øvede.txt", b"Beskyttet materiale, kun for pligtaflevering.\n" * 40, "--protected", "kursus"),
    ("opdatering.txt", b"Fortrolig opdatering\n", "--protected", "kursus"),
    ("data.bin", b"Pligt test data.\n\x00\x01" + bytes(range(256)) * 2000, "--protected", "raadata"),
]


def pligt(*args: str) -> Any:
    """Run the installed `pligt` command with --json; return what it printed, parsed."""
    result = run_cli(*args, "--json")
    assert result.returncode == 0, f"pligt {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout)


@dataclass
class Site:
    """A published instance, served by a real `pligt serve`."""

    instance: Path
    server: Server
    versions: list[dict[str, Any]]
    payloads: dict[tuple[str, int], bytes]

    @property
    def base(self) -> str:
        return self.server.url


@dataclass
class Job:
    """One Heritrix job and the credential it was given."""

    harvest: Harvest
    #: What the owner's side handed over: domain, realm, username, password, heritrix_credential.
    handed: dict[str, Any]
    credential_id: int


@dataclass
class Flood:
    """Other clients hammering the server while a job runs: statuses each of them got."""

    guesses: Counter[int] = field(default_factory=Counter)
    anonymous: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Harvests:
    site: Site
    request_id: int
    first: Job
    second: Job
    flood: Flood
    old_password_status: int


def publish(folder: Path, files: list[tuple[str, bytes, str, str]]) -> tuple[Path, dict[tuple[str, int], bytes]]:
    instance = folder / "instance"
    pligt("init", "--instance", str(instance))
    payloads: dict[tuple[str, int], bytes] = {}
    for name, data, visibility, slug in files:
        path = folder / "files" / slug / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        [version] = pligt("add", "--instance", str(instance), visibility, "--slug", slug, str(path))
        payloads[(version["slug"], version["version"])] = data
    return instance, payloads


def make_site(folder: Path, files: list[tuple[str, bytes, str, str]]) -> Iterator[Site]:
    instance, payloads = publish(folder, files)
    server = start_server(instance, folder / "server.log")
    try:
        yield Site(instance, server, pligt("items", "--instance", str(instance)), payloads)
    finally:
        stop_server(server)


def file_request(base: str) -> int:
    """The institution's staff file a request through the web service at ``base``; return its id."""
    response = requests.post(f"{base}/access/requests", json=REQUEST_FIELDS, timeout=30)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def shown(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:code|a)>', page, re.S)
    assert found, f"{element_id} not on the release page"
    return html.unescape(found.group(1))


def release(link: str) -> dict[str, str]:
    """Open the single-use release link as the institution does; return what the page shows."""
    with requests.Session() as browser:
        form = browser.get(link, timeout=30)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form.text)
        assert token, form.text
        page = browser.post(link, data={"csrf_token": token.group(1)}, timeout=30)
    assert page.status_code == 200, page.text
    names = ("domain", "realm", "username", "password", "heritrix-credential")
    return {name.replace("-", "_"): shown(page.text, name) for name in names}


def bean_properties(bean: str) -> dict[str, str]:
    root = ET.fromstring(bean)  # noqa: S314 - the bean our own server gave
    return {p.attrib["name"]: p.attrib["value"] for p in root}


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def run_job(
    site: Site, jobs: Path, name: str, handed: dict[str, Any], credential_id: int, pace: Pace, flood: bool = False
) -> tuple[Job, Flood]:
    """Run one Heritrix job with the credential bean handed over; with ``flood``, others hammer the server meanwhile.

    The guesser starts with the crawler (it is locked out before the crawler asks for anything
    protected); the anonymous flood once the job crawls (not while the JVM starts); both end with it.
    """
    floods = Flood()
    hammering = [start_guessing(site, handed["username"], floods)] if flood else []
    hosts = {HTTPS_HOST: "127.0.0.1"} if urlsplit(site.base).hostname == HTTPS_HOST else None
    job = launch(jobs, name, [f"{site.base}/"], handed["heritrix_credential"], pace, timeout=600, hosts=hosts)
    try:
        job.wait_until_crawling()
        hammering += [start_flooding(site, floods)] if flood else []
        harvest = job.wait()
        return Job(harvest, handed, credential_id), floods
    finally:
        for hammer in hammering:
            hammer.end()
        job.stop()


# -- other clients while the crawler harvests --------------------------------------------------------

#: How long the flood may last at most, and how many requests each of its clients may send.
FLOOD_SECONDS = 240
FLOOD_REQUESTS = 20_000


def _hammer(
    site: Site, source: str, paths: list[str], auth: list[str], seen: Counter[int], flood: Flood, stop: threading.Event
) -> None:
    """GET ``paths`` in turn from address ``source`` (each with the next ``auth`` header, if any) until stopped."""
    parts = urlsplit(site.base)
    deadline = time.monotonic() + FLOOD_SECONDS
    for n in range(FLOOD_REQUESTS):
        if stop.is_set() or time.monotonic() > deadline:
            return
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=10, source_address=(source, 0)
        )
        headers = {"Authorization": auth[n % len(auth)]} if auth else {}
        try:
            connection.request("GET", paths[n % len(paths)], headers=headers)
            response = connection.getresponse()
            response.read()
            seen[response.status] += 1
        except (OSError, http.client.HTTPException) as e:
            flood.errors[type(e).__name__] += 1
        finally:
            connection.close()


@dataclass
class Hammering:
    stop: threading.Event
    threads: list[threading.Thread]

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _start(site: Site, clients: list[tuple[str, list[str], list[str], Counter[int]]], flood: Flood) -> Hammering:
    stop = threading.Event()
    threads = [
        threading.Thread(target=_hammer, args=(site, source, paths, auth, seen, flood, stop), daemon=True)
        for source, paths, auth, seen in clients
    ]
    for thread in threads:
        thread.start()
    return Hammering(stop, threads)


def start_guessing(site: Site, username: str, flood: Flood) -> Hammering:
    """A client on 127.0.0.2 guesses passwords for the crawler's username, on a protected file."""
    protected = next(v for v in site.versions if v["visibility"] == "protected")
    guesses = [basic(username, f"guess-{n:05d}") for n in range(FLOOD_REQUESTS)]
    return _start(site, [("127.0.0.2", [version_path(protected)], guesses, flood.guesses)], flood)


def start_flooding(site: Site, flood: Flood) -> Hammering:
    """Two clients (127.0.0.3, .4) send anonymous requests as fast as they are answered."""
    protected = next(v for v in site.versions if v["visibility"] == "protected")
    public = next(v for v in site.versions if v["visibility"] == "public")
    paths = ["/", "/robots.txt", "/protected/", version_path(public), version_path(protected)]
    return _start(site, [(source, paths, [], flood.anonymous) for source in ("127.0.0.3", "127.0.0.4")], flood)


def version_path(version: dict[str, Any]) -> str:
    from urllib.parse import quote

    safe = "!$&'()*+,;=:@~"  # what werkzeug's router leaves unescaped in a path (pligt/links.py)
    return f"/files/{quote(version['slug'], safe='')}/v{version['version']}/{quote(version['filename'], safe=safe)}"


# -- the harvests ---------------------------------------------------------------------------------


def harvest_twice(folder: Path, site: Site, pace: Pace, flood: bool) -> Harvests:
    """Request, approve, release, job one (flooded); rotate, job two."""
    request_id = file_request(site.base)
    approved = pligt("approve", "--instance", str(site.instance), str(request_id))
    assert approved["release_link"], approved
    handed = release(approved["release_link"])
    first, floods = run_job(site, folder / "jobs", "first", handed, approved["credential"], pace, flood)
    rotated = pligt("rotate", "--instance", str(site.instance), str(approved["credential"]), "--show")
    second, _ = run_job(site, folder / "jobs", "second", rotated, rotated["credential"], pace)
    some_protected = site.base + version_path(next(v for v in site.versions if v["visibility"] == "protected"))
    old = requests.get(some_protected, auth=(handed["username"], handed["password"]), timeout=30).status_code
    return Harvests(site, request_id, first, second, floods, old)


@pytest.fixture(scope="module")
def harvests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harvests]:
    folder = tmp_path_factory.mktemp("heritrix")
    for site in make_site(folder, FILES):
        yield harvest_twice(folder, site, FAST, flood=True)


def jobs(harvests: Harvests) -> list[Job]:
    return [harvests.first, harvests.second]


def exchange_of(harvest: Harvest, site: Site, version: dict[str, Any]) -> Exchange:
    """The one response Heritrix wrote for a version, found by its path; its last segment names the file."""
    prefix = f"{site.base}/files/{version['slug']}/v{version['version']}/"
    found = [e for e in harvest.exchanges if e.url.startswith(prefix)]
    assert len(found) == 1, f"{prefix}: {[(e.url, e.status) for e in found]}"
    assert unquote(found[0].url.rsplit("/", 1)[1]) == version["filename"]
    return found[0]


# -- the hand-over -------------------------------------------------------------------------------


def test_the_release_page_and_the_cli_hand_over_the_bean_the_job_ran_with(harvests: Harvests) -> None:
    domain = crawler_domain(harvests.site.base)
    assert domain == f"127.0.0.1:{urlsplit(harvests.site.base).port}"
    for job in jobs(harvests):
        handed = job.handed
        assert bean_properties(handed["heritrix_credential"]) == {
            "domain": domain,
            "realm": handed["realm"],
            "login": handed["username"],
            "password": handed["password"],
        }
        assert handed["domain"] == domain
        beans = (job.harvest.folder / "crawler-beans.cxml").read_text()
        assert handed["heritrix_credential"] in beans


def test_the_crawler_sent_the_handed_over_credential_and_the_old_one_is_refused(harvests: Harvests) -> None:
    for job in jobs(harvests):
        sent = {e.authorization for e in job.harvest.exchanges} - {None}
        assert sent == {basic(job.handed["username"], job.handed["password"])}
    assert harvests.first.handed["username"] != harvests.second.handed["username"]
    assert harvests.old_password_status == 401


# -- how the crawler fetched (each check holds for every job, at any pace) --------------------------


def check_robots_first(site: Site, job: Job) -> None:
    first = job.harvest.exchanges[0]
    assert first.url == f"{site.base}/robots.txt"
    assert first.status == 200
    assert first.authorization is None
    assert "crawl-delay" not in first.payload.decode().lower()
    assert job.harvest.web_log[0].url == first.url


def check_one_401_then_preemptive(site: Site, job: Job) -> None:
    exchanges = job.harvest.exchanges
    challenged = [n for n, e in enumerate(exchanges) if e.status == 401]
    assert len(challenged) == 1, [(e.url, e.status) for e in exchanges]
    [n] = challenged
    assert exchanges[n].header("WWW-Authenticate") == f'Basic realm="{job.handed["realm"]}", charset="UTF-8"'
    assert all(e.authorization is None for e in exchanges[: n + 1])
    retry = exchanges[n + 1]
    assert (retry.url, retry.status) == (exchanges[n].url, 200)
    assert all(e.authorization is not None for e in exchanges[n + 1 :])
    # Pligt's pages link /protected/ before any version: all of them, public ones included,
    # were fetched with the credential.
    for version in site.versions:
        assert exchange_of(job.harvest, site, version).authorization is not None


def check_plain_http_1_0(job: Job) -> None:
    for e in job.harvest.exchanges:
        assert e.request_line.startswith("GET ") and e.request_line.endswith(" HTTP/1.0"), e.request_line
        assert e.request_headers["Connection"].lower() == "close"
        assert not {"If-None-Match", "If-Modified-Since", "Range", "Accept-Encoding"} & set(e.request_headers)
        assert "heritrix/" in e.request_headers["User-Agent"]
        assert e.header("Transfer-Encoding") is None


def check_every_version_arrived(site: Site, job: Job) -> None:
    for version in site.versions:
        got = exchange_of(job.harvest, site, version)
        assert got.status == 200
        assert got.digest == got.sha1 == version["sha1"]
        assert got.sha256 == version["sha256"]
        assert got.payload == site.payloads[(version["slug"], version["version"])]
        logged = job.harvest.logged(got.url)
        assert (logged.status, logged.size, logged.digest) == (200, version["size"], version["sha1"])


def check_never_refused(job: Job) -> None:
    statuses = Counter(line.status for line in job.harvest.web_log)
    assert set(statuses) == {200}, statuses
    assert {e.status for e in job.harvest.exchanges} == {200, 401}


def test_robots_txt_comes_first_without_a_crawl_delay(harvests: Harvests) -> None:
    for job in jobs(harvests):
        check_robots_first(harvests.site, job)


def test_one_401_then_the_credential_with_every_request_public_ones_too(harvests: Harvests) -> None:
    for job in jobs(harvests):
        check_one_401_then_preemptive(harvests.site, job)


def test_every_request_is_a_plain_http_1_0_get_with_connection_close(harvests: Harvests) -> None:
    for job in jobs(harvests):
        check_plain_http_1_0(job)


# -- what arrived -------------------------------------------------------------------------------


def test_every_retained_version_arrived_whole_with_pligts_sha1(harvests: Harvests) -> None:
    for job in jobs(harvests):
        check_every_version_arrived(harvests.site, job)


def test_the_crawler_was_never_refused_while_others_were(harvests: Harvests) -> None:
    for job in jobs(harvests):
        check_never_refused(job)
    flood = harvests.flood
    # The guesser was locked out (429 on the challenges it asked for) while the crawler harvested
    # with the same username, and the anonymous clients were served all along.
    assert flood.guesses[401] > 0 and flood.guesses[429] > 0, flood
    assert set(flood.guesses) == {401, 429}, flood
    assert set(flood.anonymous) == {200, 401}, flood
    assert sum(flood.anonymous.values()) > 20, flood


def test_harvest_reports_every_version_fetched_by_the_institution_by_its_credential(harvests: Harvests) -> None:
    rows = report(harvests)
    ids = {harvests.first.credential_id, harvests.second.credential_id}
    assert {(r["slug"], r["version"]) for r in rows} == {(v["slug"], v["version"]) for v in harvests.site.versions}
    for row in rows:
        where = f"{row['slug']} v{row['version']}: {row}"
        assert row["state"] in ("fetched", "held"), where
        assert row["attributed_by"] == "credential", where
        assert set(row["credentials"]) == ids, where
        assert row["credential"] in ids, where
        assert row["complete_at"] is not None, where


def report(harvests: Harvests, timeout: float = 5) -> list[dict[str, Any]]:
    """`pligt harvest --json` for this request, read again until every version shows (records are batched)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [
            r
            for r in pligt("harvest", "--instance", str(harvests.site.instance))
            if r["request"] == harvests.request_id
        ]
        if all(r["complete_at"] for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


# -- at Netarkivet's own pace ---------------------------------------------------------------------

#: About a minute of Netarkivet's per-host bandwidth (500 KB/s, Heritrix's K being 1024 bytes).
BIG = 30_000_000


@pytest.mark.slow
def test_at_netarkivets_pace_a_large_site_arrives_whole_and_never_refused(tmp_path: Path) -> None:
    big = ("Katalog 2026.pdf", pdf("katalog", pad=BIG), "--public", "katalog")
    files = [FILES[0], big, *FILES[1:]]
    for site in make_site(tmp_path, files):
        request_id = file_request(site.base)
        handed = pligt("approve", "--instance", str(site.instance), str(request_id), "--show")
        job, flood = run_job(site, tmp_path / "jobs", "netarkivet", handed, handed["credential"], NETARKIVET, True)

        check_robots_first(site, job)
        check_one_401_then_preemptive(site, job)
        check_plain_http_1_0(job)
        check_every_version_arrived(site, job)
        check_never_refused(job)
        assert flood.guesses[429] > 0 and set(flood.anonymous) == {200, 401}, flood

        # The pace, from crawl.log: each fetch begins at least 300 ms after the one before ended
        # (the 401 and its retry are one fetch), so at most about 3.3 a second; the large file
        # holds the host's next fetch back for its size at 500 KB/s.
        fetched = [(line.began.timestamp(), line.duration_ms / 1000) for line in job.harvest.web_log if line.began]
        assert len(fetched) == len(job.harvest.web_log)
        for (began, took), (next_began, _) in zip(fetched, fetched[1:], strict=False):
            assert next_began - (began + took) >= 0.29, (began, next_began)
        span = fetched[-1][0] - fetched[0][0]
        assert span >= BIG / (500 * 1024) * 0.95, span


# -- over HTTPS, behind the Caddy that `pligt deploy` configures -------------------------------------


def can_listen_on(port: int) -> bool:
    """Tell whether this process may bind 127.0.0.1:``port`` now (a port below 1024 needs root)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.external
@pytest.mark.skipif(shutil.which("caddy") is None, reason="apt-get install caddy")
def test_over_https_on_port_443_behind_caddy_the_handed_over_bean_works_too(tmp_path: Path) -> None:
    """The default port: Pligt hands out ``host:443``, the server key Heritrix files an https URL under."""
    if not can_listen_on(443):
        pytest.skip("127.0.0.1:443 is taken, or this is not root")
    http_port, upstream = free_port(), free_port()
    base = f"https://{HTTPS_HOST}"
    root = tmp_path / "root"
    made = invoke("deploy", "--root", str(root), "--app-dir", str(REPO), "--base-url", base, "--port", str(upstream))
    assert made.exit_code == 0, made.output
    instance = root / "var/lib/pligt/instance"
    payloads = {}
    for name, data, visibility, slug in FILES[:4]:
        path = tmp_path / "files" / slug / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        [version] = pligt("add", "--instance", str(instance), visibility, "--slug", slug, str(path))
        payloads[(version["slug"], version["version"])] = data
    caddyfile = tmp_path / "Caddyfile"
    data_dir = tmp_path / "caddy-data"
    caddyfile.write_text(local_caddyfile((root / "etc/caddy/Caddyfile").read_text(), http_port, data_dir))
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    server = start_server(instance, tmp_path / "pligt.log", port=upstream)
    caddy = start_process(
        ["caddy", "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
        tmp_path / "caddy.log",
        f"http://127.0.0.1:{http_port}/",
        env=env,
    )
    try:
        site = Site(
            instance, Server(base, server.process, server.log), pligt("items", "--instance", str(instance)), payloads
        )
        request_id = file_request(server.url)  # the form, straight to pligt serve
        handed = pligt("approve", "--instance", str(instance), str(request_id), "--show")
        assert handed["domain"] == f"{HTTPS_HOST}:443"
        job, _ = run_job(site, tmp_path / "jobs", "https", handed, handed["credential"], FAST)
        check_robots_first(site, job)
        check_one_401_then_preemptive(site, job)
        check_plain_http_1_0(job)
        check_every_version_arrived(site, job)
        check_never_refused(job)
    finally:
        stop_process(caddy)
        stop_server(server)
