"""End to end: a real `pligt serve`, harvested twice by an imitation of the crawler, in two patterns.

The imitation (tests/support/heritrix.py) by default does what the real Heritrix did in
tests/test_heritrix_real.py: credentials only after the first 401 on a server, then with every
request; no conditional requests, so the second harvest downloads everything whole again. The
other pattern (``ISSUE_12``, other clients' way) answers a 401 for every protected URL, keeps
each URL's ETag and Last-Modified and revisits with If-None-Match / If-Modified-Since. Both take
each payload's SHA-1 as Heritrix writes it. Everything the owner does goes through the `pligt`
command; the institution's request goes through HTTP.

After the second harvest (a new credential from `pligt rotate`) the proof-of-deposit report shows
every version held by the institution's request, with the SHA-1 the crawler computed: revisits
confirmed by 304s in the conditional pattern, two whole downloads in Heritrix's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.parse import unquote

import pytest

from tests.support.heritrix import HERITRIX
from tests.support.heritrix import ISSUE_12
from tests.support.heritrix import Crawl
from tests.support.heritrix import Fetch
from tests.support.heritrix import Heritrix
from tests.support.heritrix import HttpAuthenticationCredential
from tests.support.heritrix import Profile
from tests.support.heritrix import challenges
from tests.support.heritrix import server_key
from tests.support.heritrix import sha1_digest
from tests.support.net import free_port
from tests.support.net import start_process
from tests.support.net import stop_process

PLIGT = str(Path(sys.executable).with_name("pligt"))
#: What a version's file name keeps unescaped in its URL (werkzeug's router, pligt/links.py).
PATH_SAFE = "!$&'()*+,;=:@~"
REQUEST = {
    "institution": "Det Kgl. Bibliotek",
    "contact_name": "Netarkivet Høstning",
    "contact_email": "netarkivet@example.dk",
    "message": "Anmodning efter pligtafleveringslovens § 10.",
}


def pligt(*args: str) -> Any:  # the command's JSON
    """Run the `pligt` command with --json; return what it printed, parsed."""
    result = subprocess.run(
        [PLIGT, *args, "--json"], capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ)
    )
    assert result.returncode == 0, f"pligt {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout)


def pdf(text: str, pad: int = 0) -> bytes:
    body = f"%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\n".encode() + b"%" + b"x" * pad + b"\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


#: What the owner publishes: (file name, bytes, visibility, slug). Two versions of "kursus" are
#: both retained; the large file is served by sendfile, the others from memory.
FILES = [
    ("Brochure 2026.pdf", pdf("brochure"), "--public", "brochure"),
    ("prisliste.csv", b"vare;pris\nkursus;1200\nbog;300\n", "--public", "prisliste"),
    ("Årsrapport æøå 2026.pdf", pdf("aarsrapport", pad=200_000), "--protected", "aarsrapport"),
    (
        "Kursusmateriale for øvede.txt",
        b"Beskyttet materiale, kun for pligtaflevering.\n" * 40,
        "--protected",
        "kursus",
    ),
    ("opdatering.txt", b"Fortrolig opdatering\n", "--protected", "kursus"),
    ("data.bin", b"Pligt test data, not a program.\n\x00\x01" + os.urandom(300_000), "--protected", "raadata"),
]


@dataclass
class Site:
    """A published instance served by `pligt serve`, and the institution's access request."""

    instance: Path
    base: str
    process: subprocess.Popen[bytes]
    #: `pligt items --json`: every retained version.
    versions: list[dict[str, Any]]
    #: The bytes of each version, by (slug, number).
    payloads: dict[tuple[str, int], bytes]
    request_id: int = 0

    @property
    def domain(self) -> str:
        """The credential's domain as the institution types it: host:port."""
        return server_key(self.base)

    def credential(self, handed: dict[str, Any]) -> HttpAuthenticationCredential:
        return HttpAuthenticationCredential(self.domain, handed["realm"], handed["username"], handed["password"])


@dataclass
class Harvests:
    """Two harvests by one crawl job: the first, and a revisit after `pligt rotate`."""

    site: Site
    profile: Profile
    first: Crawl
    revisit: Crawl
    approved: dict[str, Any]
    rotated: dict[str, Any]
    old_password_status: int = 0
    notes: list[str] = field(default_factory=list)


def make_site(folder: Path) -> Iterator[Site]:
    instance = folder / "instance"
    pligt("init", "--instance", str(instance))
    files = folder / "files"
    payloads: dict[tuple[str, int], bytes] = {}
    for name, data, visibility, slug in FILES:
        path = files / slug / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        [version] = pligt("add", "--instance", str(instance), visibility, "--slug", slug, str(path))
        payloads[(version["slug"], version["version"])] = data
    versions = pligt("items", "--instance", str(instance))
    assert len(versions) == len(FILES)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_process(
        [PLIGT, "serve", "--instance", str(instance), "--host", "127.0.0.1", "--port", str(port)],
        folder / "server.log",
        f"{base}/healthz",
    )
    try:
        yield Site(instance, base, process, versions, payloads)
    finally:
        stop_process(process)


def file_request(site: Site) -> int:
    """The institution's staff file a request through HTTP; return its id."""
    request = urllib.request.Request(
        f"{site.base}/access/requests",
        data=json.dumps(REQUEST).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # the test's own server
        assert response.status == 201
        return int(json.load(response)["id"])


def plain_get(url: str, username: str, password: str) -> int:
    """The status of one GET with Basic credentials sent up front."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # the test's own server
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def harvest_twice(site: Site, profile: Profile) -> Harvests:
    """File, approve, crawl; rotate, crawl again with the new credential (same fetch history)."""
    site.request_id = file_request(site)
    approved = pligt("approve", "--instance", str(site.instance), str(site.request_id), "--show")
    crawler = Heritrix([f"{site.base}/"], [site.credential(approved)], profile=profile)
    first = crawler.crawl()
    rotated = pligt("rotate", "--instance", str(site.instance), str(approved["credential"]), "--show")
    crawler.set_credentials([site.credential(rotated)])
    some_protected = next(v for v in site.versions if v["visibility"] == "protected")
    old = plain_get(site.base + version_path(some_protected), approved["username"], approved["password"])
    revisit = crawler.crawl()
    return Harvests(site, profile, first, revisit, approved, rotated, old)


def version_path(version: dict[str, Any]) -> str:
    """The path the indexes link a version under (percent-encoded as pligt/links.py does)."""
    return (
        f"/files/{quote(version['slug'], safe='')}/v{version['version']}/{quote(version['filename'], safe=PATH_SAFE)}"
    )


def fetch_of(crawl: Crawl, version: dict[str, Any]) -> Fetch:
    """The crawl's fetch of a version, found by its path prefix; its last segment names the file."""
    prefix = f"/files/{version['slug']}/v{version['version']}/"
    found = [f for f in crawl.fetches.values() if unquote(f.path).startswith(prefix)]
    assert len(found) == 1, f"{prefix}: {len(found)} fetches; crawled {sorted(crawl.statuses())}"
    [fetch] = found
    assert unquote(fetch.path.rsplit("/", 1)[1]) == version["filename"]
    return fetch


@pytest.fixture(scope="module")
def challenged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harvests]:
    """Issue 12's Heritrix: a challenge for every protected URL, on both harvests."""
    for site in make_site(tmp_path_factory.mktemp("heritrix-issue-12")):
        yield harvest_twice(site, ISSUE_12)


@pytest.fixture(scope="module")
def as_heritrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harvests]:
    """Heritrix as the real one harvests: the credential sent up front after the first success, no conditionals."""
    for site in make_site(tmp_path_factory.mktemp("heritrix-real-pattern")):
        yield harvest_twice(site, HERITRIX)


# -- the crawler itself ------------------------------------------------------------------------


def test_sha1_digest_is_written_as_heritrix_writes_it() -> None:
    assert sha1_digest(b"") == "sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ"
    assert sha1_digest(b"abc") == "sha1:" + base64.b32encode(hashlib.sha1(b"abc").digest()).decode()  # noqa: S324


def test_challenges_are_parsed_by_scheme_with_their_realm() -> None:
    from email.message import Message

    headers = Message()
    headers["WWW-Authenticate"] = 'Digest realm="a, b", nonce="x", Basic realm="Pligt legal deposit", charset="UTF-8"'
    headers["WWW-Authenticate"] = "Bearer"
    found = challenges(headers)
    assert found["basic"] == {"realm": "Pligt legal deposit", "charset": "UTF-8"}
    assert found["digest"]["realm"] == "a, b"
    assert "bearer" in found


# -- the first harvest -------------------------------------------------------------------------


@pytest.mark.server
def test_robots_txt_is_fetched_first_and_every_request_is_a_get(challenged: Harvests) -> None:
    for crawl in (challenged.first, challenged.revisit):
        first = next(iter(crawl.fetches.values()))
        assert first.path == "/robots.txt"
        assert first.statuses == [200]
        assert not first.final.authorized
        assert all(e.request_line.startswith("GET ") for e in crawl.exchanges)


@pytest.mark.server
def test_first_harvest_gets_every_version_protected_ones_after_a_401(challenged: Harvests) -> None:
    realm = challenged.approved["realm"]
    for version in challenged.site.versions:
        fetch = fetch_of(challenged.first, version)
        if version["visibility"] == "public":
            assert fetch.statuses == [200], fetch.target
            assert not fetch.exchanges[0].authorized
            continue
        assert fetch.statuses == [401, 200], fetch.target
        challenge, download = fetch.exchanges
        assert not challenge.authorized
        assert challenges(challenge.headers)["basic"]["realm"] == realm
        assert download.authorized


@pytest.mark.server
def test_no_credentials_are_ever_sent_before_a_challenge(challenged: Harvests) -> None:
    for crawl in (challenged.first, challenged.revisit):
        for fetch in crawl.fetches.values():
            assert not fetch.exchanges[0].authorized, fetch.target
            if len(fetch.exchanges) > 1:
                assert fetch.exchanges[0].status == 401
                assert fetch.exchanges[1].authorized


@pytest.mark.server
def test_every_200_is_the_versions_bytes_type_and_size(challenged: Harvests) -> None:
    for version in challenged.site.versions:
        download = fetch_of(challenged.first, version).final
        assert download.status == 200
        assert download.length == version["size"] == int(download.headers["Content-Length"])
        assert hashlib.sha256(download.payload).hexdigest() == version["sha256"]
        assert download.content_type == version["content_type"]
        assert download.payload == challenged.site.payloads[(version["slug"], version["version"])]


@pytest.mark.server
def test_every_200_payload_digest_is_the_versions_sha1(challenged: Harvests) -> None:
    for version in challenged.site.versions:
        digest = fetch_of(challenged.first, version).digest
        assert digest == sha1_digest(challenged.site.payloads[(version["slug"], version["version"])])
        # `pligt items --json` has each version's "sha1" once issue 12's part 3 lands; until
        # then the digest is checked against the published file's own SHA-1 (above) only.
        if version.get("sha1") is not None:
            assert version["sha1"] == digest


# -- rotation and the revisit ------------------------------------------------------------------


@pytest.mark.server
def test_rotation_gives_the_same_request_a_new_credential(challenged: Harvests) -> None:
    approved, rotated = challenged.approved, challenged.rotated
    assert rotated["request"] == approved["request"] == challenged.site.request_id
    assert rotated["credential"] != approved["credential"]
    assert (rotated["username"], rotated["password"]) != (approved["username"], approved["password"])
    assert rotated["realm"] == approved["realm"]
    assert challenged.old_password_status == 401


@pytest.mark.server
def test_revisit_is_a_304_for_every_unchanged_version(challenged: Harvests) -> None:
    for version in challenged.site.versions:
        earlier = fetch_of(challenged.first, version).final
        fetch = fetch_of(challenged.revisit, version)
        expected = [304] if version["visibility"] == "public" else [401, 304]
        assert fetch.statuses == expected, fetch.target
        asked = fetch.final.request_headers
        assert asked["If-None-Match"] == earlier.headers["ETag"]
        assert asked["If-Modified-Since"] == earlier.headers["Last-Modified"]
        assert fetch.final.length == 0
        assert fetch.final.headers["ETag"] == earlier.headers["ETag"]
        if version["visibility"] == "protected":
            assert fetch.final.authorized
            assert not fetch.exchanges[0].authorized


@pytest.mark.server
def test_a_credential_for_another_realm_is_never_sent(challenged: Harvests) -> None:
    site = challenged.site
    wrong = HttpAuthenticationCredential(site.domain, "Some other realm", "nobody", "nothing")
    crawl = Heritrix([f"{site.base}/"], [wrong]).crawl()
    assert not [e for e in crawl.exchanges if e.authorized]
    assert crawl.by_path("/protected/").statuses == [401]
    for version in site.versions:
        if version["visibility"] == "protected":
            assert version_path(version) not in {f.path for f in crawl.fetches.values()}


# -- the same harvests as the real Heritrix does them ------------------------------------------


@pytest.mark.server
def test_as_heritrix_only_the_first_protected_url_is_challenged(as_heritrix: Harvests) -> None:
    for crawl in (as_heritrix.first, as_heritrix.revisit):
        challenged_urls = [f.target for f in crawl.fetches.values() if f.statuses[0] == 401]
        assert challenged_urls == ["/protected/"], challenged_urls
    for version in as_heritrix.site.versions:
        first = fetch_of(as_heritrix.first, version)
        assert first.statuses == [200], first.target
        assert first.final.authorized  # sent up front, public too: promoted after /protected/ succeeded


@pytest.mark.server
def test_as_heritrix_the_second_harvest_downloads_every_version_whole_again(as_heritrix: Harvests) -> None:
    for version in as_heritrix.site.versions:
        earlier = fetch_of(as_heritrix.first, version)
        again = fetch_of(as_heritrix.revisit, version)
        assert again.statuses == [200], again.target
        assert not {"If-None-Match", "If-Modified-Since"} & set(again.final.request_headers)
        assert again.digest == earlier.digest
        assert again.final.length == version["size"]
        assert again.final.request_headers["Authorization"] == as_heritrix_header(as_heritrix)


def as_heritrix_header(harvests: Harvests) -> str:
    """The Authorization the second harvest sends: the rotated credential's."""
    rotated = harvests.rotated
    return HttpAuthenticationCredential(
        harvests.site.domain, rotated["realm"], rotated["username"], rotated["password"]
    ).header()


# -- the proof of deposit after both harvests -------------------------------------------------

HELD = ("fetched", "held")


def report(harvests: Harvests, timeout: float = 5) -> dict[tuple[str, int], dict[str, Any]]:
    """`pligt harvest --json`: the rows of the harvests' access request, by (slug, version).

    The server writes its download records in batches every half second (pligt/core/batches.py),
    so the report is read again until every version has its revisit, as an owner reading it a
    moment after the harvest would see it.
    """
    deadline = time.monotonic() + timeout
    while True:
        rows = pligt("harvest", "--instance", str(harvests.site.instance))
        mine = {(r["slug"], r["version"]): r for r in rows if r["request"] == harvests.site.request_id}
        if all(r.get("revisit_confirmed_at") for r in mine.values()) or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)


def check_every_version_held(harvests: Harvests) -> None:
    rows = report(harvests)
    first_id, second_id = harvests.approved["credential"], harvests.rotated["credential"]
    assert len(rows) == len(harvests.site.versions)
    for version in harvests.site.versions:
        row = rows[(version["slug"], version["version"])]
        where = f"{version['slug']} v{version['version']}: {row}"
        assert row["state"] in HELD, where
        assert set(row["credentials"]) == {first_id, second_id}, where
        assert row["complete_at"] is not None, where
        assert row["revisit_confirmed_at"] is not None, where
        assert row["sha1"] == fetch_of(harvests.first, version).digest, where
        if version["visibility"] == "protected":
            assert row["attributed_by"] == "credential", where
            assert row["revisit_credential"] == second_id, where
        else:
            # Public: no credential on these requests in issue 12's model, and one TCP
            # connection per request (Connection: close): only the User-Agent can tell.
            assert row["attributed_by"] in ("credential", "connection", "user-agent"), where


@pytest.mark.server
def test_issue_12_harvests_leave_every_version_held_by_the_institution(challenged: Harvests) -> None:
    check_every_version_held(challenged)


@pytest.mark.server
def test_heritrix_harvests_leave_every_version_downloaded_by_the_institution_twice(as_heritrix: Harvests) -> None:
    first_id, second_id = as_heritrix.approved["credential"], as_heritrix.rotated["credential"]
    deadline = time.monotonic() + 5  # download records are written in batches (pligt/core/batches.py)
    while (rows := report(as_heritrix, timeout=0)) and time.monotonic() < deadline:
        if len(rows) == len(as_heritrix.site.versions) and all(r["complete_at"] for r in rows.values()):
            break
        time.sleep(0.2)
    assert len(rows) == len(as_heritrix.site.versions)
    for version in as_heritrix.site.versions:
        row = rows[(version["slug"], version["version"])]
        where = f"{version['slug']} v{version['version']}: {row}"
        assert row["state"] in HELD, where
        assert set(row["credentials"]) == {first_id, second_id}, where
        assert row["credential"] in (first_id, second_id), where
        assert row["attributed_by"] == "credential", where  # public ones too: the credential went up front
        assert row["complete_at"] is not None, where
        assert row["sha1"] == fetch_of(as_heritrix.revisit, version).digest, where


@pytest.mark.server
def test_items_json_has_the_sha1_the_crawler_computed(challenged: Harvests) -> None:
    for version in challenged.site.versions:
        assert version.get("sha1") == fetch_of(challenged.first, version).digest, version
