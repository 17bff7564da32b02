"""A realistic instance for the keeping-over-time tests (purge, GDPR, fixity, WARC, backup).

Ten months of a small Danish publisher's deposit server, built through the
archive API and the Flask test client with a clock the builder moves: 31
items (public and protected, Danish file names, some with two or three
versions, one version and one whole item withdrawn after retention), three
people at the deposit institution filing access requests that end up
pending, denied, lapsed, released and revoked, released and expired, or
active, and downloads recorded at many ages. Tests copy the finished folder
and move the ``pligt`` command through time with faketime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import url_for

from pligt.core.models import Version
from pligt.instance import init_instance
from pligt.settings import load_settings
from tests.support.app import Clock
from tests.support.app import make_app
from tests.support.cli import PLIGT
from tests.support.data import pdf_bytes

#: The day the server went live; every moment of the story is counted from here.
T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
#: libfaketime for processes we start ourselves (the faketime command preloads it the same way).
LIBFAKETIME = next(
    (str(p) for p in sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
)


def day(n: float, hours: float = 0, minutes: float = 0) -> datetime:
    return T0 + timedelta(days=n, hours=hours, minutes=minutes)


#: The story ends here; the tests run the CLI at or after it.
END = day(300)

PERSON_A = {
    "institution": "Det Kgl. Bibliotek",
    "contact_name": "Netarkivet Høstning",
    "contact_email": "netarkivet@example.dk",
    "legal_basis": "",
    "message": "Vi anmoder om adgang til beskyttet materiale på jeres websted.",
}
PERSON_B = {
    "institution": "Det Kgl. Bibliotek, Netarkivet",
    "contact_name": "Sofie Holm",
    "contact_email": "sofie.holm@kb.example.dk",
    "legal_basis": "Pligtafleveringsloven § 8",
    "message": "Høstning af beskyttet materiale, anden runde.\nMed venlig hilsen\nSofie",
}
#: Person B once typed her address with capitals: the same person.
PERSON_B_CAPITALS = {**PERSON_B, "contact_email": "Sofie.Holm@KB.example.dk"}
PERSON_C = {
    "institution": "Statsbiblioteket i Aarhus",
    "contact_name": "Jens Ærø",
    "contact_email": "jens.aeroe@sb.example.dk",
    "legal_basis": "",
    "message": "Forespørgsel om adgangskode.",
}

# (file name, visibility, number of versions) — the versions are published on days 0, 30 and 200.
ITEMS: list[tuple[str, str, int]] = [
    ("Brochure 2026.pdf", "public", 3),
    ("Kursusmateriale æøå.pdf", "public", 2),
    ("Prisliste (forår).pdf", "public", 2),
    ("Vilkår & betingelser.pdf", "public", 1),
    ("Årsrapport 2025.pdf", "public", 1),
    ("Ørestad-guide.pdf", "public", 1),
    ("Nyhedsbrev nr. 1.txt", "public", 1),
    ("Kontakt os.txt", "public", 1),
    ("Café-menu.txt", "public", 2),
    ("Rådgivning + sparring.pdf", "public", 1),
    ("Persondatapolitik.pdf", "public", 2),
    ("Kalender [2026].txt", "public", 1),
    ("Fællesskab, frivillighed & foreninger.pdf", "public", 1),
    ("Hvad er pligtaflevering!.pdf", "public", 1),
    ("Kursushæfte — modul 1.pdf", "protected", 3),
    ("Øvelser til kapitel 3.pdf", "protected", 2),
    ("Facit (lærer).pdf", "protected", 1),
    ("Intern vejledning; version 2.txt", "protected", 1),
    ("Spørgeskema + svar.txt", "protected", 1),
    ("Kundens guide 'trin for trin'.pdf", "protected", 1),
    ("Æblemost-opskrift.txt", "protected", 1),
    ("Budget=2026.txt", "protected", 1),
    ("Mødereferat 12. marts.txt", "protected", 1),
    ("Præsentation @ konference.pdf", "protected", 1),
    ("Tjekliste ~ opstart.txt", "protected", 1),
    ("Lønpolitik $ og bonus.pdf", "protected", 1),
    ("Håndbog for nye medarbejdere.pdf", "protected", 2),
    ("Slides – modul 2.pdf", "protected", 1),
    ("Ordliste å–ø.txt", "protected", 1),
    ("Kontrakt-skabelon.pdf", "protected", 1),
]
#: Published on day 280: its retention ends well after the story.
LATE_ITEM = ("Julekatalog 2026.pdf", "public")


def content(filename: str, number: int, index: int) -> bytes:
    """Distinct bytes per version; one file spans several storage chunks."""
    if filename.endswith(".txt"):
        line = f"{filename} version {number}: æble, ørred, åkande — pligtaflevering.\n"
        return (line * (3 + 40 * index)).encode("utf-8")
    pad = 1_500_000 if index == 0 and number == 3 else 300 + 977 * index + 13 * number
    return pdf_bytes(f"{filename} v{number}", pad=pad)


@dataclass
class Request:
    """One access request of the story and the moment it closed (None: still open)."""

    role: str
    id: int
    email: str
    closed: datetime | None
    credentials: list[int] = field(default_factory=list)


@dataclass
class Crawler:
    role: str
    id: int
    username: str
    password: str


@dataclass
class World:
    """What the built instance holds, as the tests need to know it."""

    path: Path
    owner_password: str
    requests: dict[str, Request]
    crawlers: dict[str, Crawler]
    withdrawn: list[tuple[str, int]]
    late_slug: str

    def ids(self, email: str) -> set[int]:
        return {r.id for r in self.requests.values() if r.email.lower() == email.lower()}


def build_world(folder: Path) -> World:
    """Build the instance in ``folder`` and close every connection to it."""
    settings = load_settings(folder, env={})
    owner = init_instance(settings)
    clock = Clock()
    clock.now = T0
    app = make_app(settings, clock)
    archive = app.extensions["pligt"].archive
    desk = archive.access
    client = app.test_client()
    versions: dict[str, list[Version]] = {}

    def at(moment: datetime) -> None:
        assert moment >= clock.now, "the story moves forward only"
        clock.now = moment

    def publish(filename: str, visibility: str, number: int, index: int, slug: str | None = None) -> None:
        published = archive.publish(
            [content(filename, number, index)], filename=filename, visibility=visibility, slug=slug
        ).version
        versions.setdefault(published.slug, []).append(published)

    def path_of(version: Version) -> str:
        with app.test_request_context():
            return url_for("public.version_file", slug=version.slug, number=version.number, filename=version.filename)

    def fetch(crawler: Crawler | None, which: str, count: int) -> None:
        """Fetch ``count`` retained versions (public or protected) as a crawler or anonymously."""
        pool = [vs[-1] for vs in versions.values() if vs[-1].visibility == which and vs[-1].withdrawn_at is None]
        for version in pool[:count]:
            auth = (crawler.username, crawler.password) if crawler else None
            response = client.get(path_of(version), auth=auth)
            assert response.status_code == 200, (version.slug, response.status_code)

    requests: dict[str, Request] = {}
    crawlers: dict[str, Crawler] = {}

    def file(role: str, person: dict[str, str], when: datetime) -> Request:
        at(when)
        made = desk.file(dict(person))
        requests[role] = Request(role, made.id, person["contact_email"], None)
        return requests[role]

    def approve(role: str, when: datetime, valid_days: int, release_at: datetime | None) -> None:
        at(when)
        approval = desk.approve(requests[role].id, valid_days=valid_days)
        requests[role].credentials.append(approval.credential.id)
        if release_at is not None:
            at(release_at)
            _, credential, password = desk.release(approval.release_token)
            crawlers[role] = Crawler(role, credential.id, credential.username, password)

    # Day 0: the publisher uploads everything, a few minutes apart.
    for index, (filename, visibility, _) in enumerate(ITEMS):
        at(day(0, minutes=7 * index))
        publish(filename, visibility, 1, index)
    at(day(0, hours=6))
    fetch(None, "public", 6)

    file("a_denied", PERSON_A, day(1))
    at(day(2))
    desk.deny(requests["a_denied"].id, "Anmodningen kom fra en ukendt afsender; send den igen fra kb.dk.")
    requests["a_denied"].closed = day(2)

    file("a_lapsed", PERSON_A, day(3))
    approve("a_lapsed", day(3, hours=1), 365, None)  # the release link is never opened

    file("b_revoked", PERSON_B, day(5))
    approve("b_revoked", day(5, hours=2), 365, day(6))
    fetch(crawlers["b_revoked"], "protected", 10)
    at(day(7))
    fetch(crawlers["b_revoked"], "public", 4)

    file("a_short", PERSON_A, day(10))
    approve("a_short", day(10, hours=1), 60, day(11))
    fetch(crawlers["a_short"], "protected", 16)

    at(day(12))
    desk.requests()  # the owner looks at the list: the unopened link has lapsed
    requests["a_lapsed"].closed = day(12)

    file("a_active", PERSON_A, day(15))
    approve("a_active", day(15, hours=3), 3000, day(16))
    fetch(crawlers["a_active"], "protected", 16)
    fetch(crawlers["a_active"], "public", 14)

    file("a_pending", PERSON_A, day(20))

    # Day 30: new versions of seven items.
    for index, (filename, visibility, count) in enumerate(ITEMS):
        if count >= 2:
            at(day(30, minutes=5 * index))
            publish(filename, visibility, 2, index)

    at(day(40))
    desk.revoke(crawlers["b_revoked"].id)
    requests["b_revoked"].closed = day(40)

    file("b_active", PERSON_B_CAPITALS, day(45))
    approve("b_active", day(45, hours=1), 3000, day(46))
    fetch(crawlers["b_active"], "protected", 16)

    at(day(50))
    fetch(crawlers["a_short"], "public", 3)
    # The short credential ran out on day 70, 60 days after it was issued.
    requests["a_short"].closed = day(10, hours=1) + timedelta(days=60)

    at(day(100))
    fetch(crawlers["a_active"], "protected", 5)
    fetch(None, "public", 2)

    at(day(150))
    fetch(crawlers["b_active"], "public", 8)
    file("c_denied", PERSON_C, day(150, hours=2))
    at(day(151))
    desk.deny(requests["c_denied"].id, "Kun Det Kgl. Bibliotek er pligtafleveringsinstitution for nettet.")
    requests["c_denied"].closed = day(151)

    # Day 200: third versions; the owner looks at the requests again (the short one is now 'expired').
    for index, (filename, visibility, count) in enumerate(ITEMS):
        if count >= 3:
            at(day(200, minutes=5 * index))
            publish(filename, visibility, 3, index)
    at(day(200, hours=3))
    desk.requests()
    fetch(crawlers["a_active"], "protected", 3)

    # Day 250: retention of the first versions ended long ago; the owner tidies up.
    at(day(250))
    withdrawn = [(s, v.number) for s, vs in versions.items() for v in vs if s == "cafe-menu"]
    archive.withdraw("brochure-2026", 1)
    archive.withdraw("cafe-menu")
    withdrawn.append(("brochure-2026", 1))
    for slug, number in withdrawn:
        versions[slug] = [v for v in versions[slug] if v.number != number]
    versions = {s: vs for s, vs in versions.items() if vs}

    at(day(280))
    publish(*LATE_ITEM, 1, 99)
    late_slug = list(versions)[-1]

    file("b_lapsed_link", PERSON_B, day(285))
    approve("b_lapsed_link", day(285, hours=1), 365, None)  # link expires on day 292, unused

    at(day(290))
    fetch(crawlers["a_active"], "protected", 16)
    fetch(None, "public", 3)
    at(day(295))
    fetch(crawlers["b_active"], "protected", 4)

    file("c_fresh", PERSON_C, day(298))
    approve("c_fresh", day(298, hours=1), 365, None)  # its link is still valid at the end
    at(END)

    archive.catalog.close()
    return World(
        path=folder,
        owner_password=owner.password,
        requests=requests,
        crawlers=crawlers,
        withdrawn=sorted(withdrawn),
        late_slug=late_slug,
    )


_BUILT: list[World] = []


def shared_world(folder: Path) -> World:
    """Build the instance once per test session (in ``folder`` the first time); tests copy it."""
    if not _BUILT:
        _BUILT.append(build_world(folder))
    return _BUILT[0]


def copy_instance(world: World, target: Path) -> Path:
    """Copy the built instance (no connection is open to it) for one test to change."""
    shutil.copytree(world.path, target)
    return target


# -- running the CLI at a moment of our choosing --------------------------------------


def fake_env(moment: datetime) -> dict[str, str]:
    """Environment that makes a child process start its clock at ``moment`` (libfaketime)."""
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": "@" + moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "TZ": "UTC",
        "FAKETIME_DONT_RESET": "1",
    }


def pligt_at(moment: datetime, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``pligt ARGS`` under ``faketime`` as if it were ``moment`` (UTC)."""
    return subprocess.run(
        ["faketime", moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), PLIGT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},
        timeout=120,
        check=False,
    )


def pligt_json(moment: datetime, *args: str) -> Any:
    result = pligt_at(moment, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- looking inside --------------------------------------------------------------------

TABLES = ("items", "versions", "access_requests", "credentials", "releases", "downloads", "audit_log", "owner")


def dump(instance: Path, *tables: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables (all of them by default), read-only, as plain dicts."""
    db = sqlite3.connect(f"file:{instance / 'catalog.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in tables or TABLES}
    finally:
        db.close()


def stored_files(instance: Path) -> dict[str, str]:
    """The SHA-256 of every stored object, by key."""
    root = instance / "files"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
