"""The proof of deposit (issue 12, part 3; issue 21, part 4): per access request across all its
credentials, "held" only after a whole download (a later 304 is a revisit of it, a 304 alone
is "named", not held), how each download is tied to the deposit crawler (and how strongly),
and each version's SHA-1 as Heritrix writes it, through the archive API, the CLI, the owner
API, the console and the WARC export; and a catalog from before all this, upgraded."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from warcio.archiveiterator import ArchiveIterator

from pligt.core import Archive
from pligt.core import open_backend
from pligt.core.catalog import _MIGRATIONS
from pligt.core.errors import ConfigurationError
from pligt.core.models import Credential
from pligt.core.models import Version
from pligt.core.proof.receipts import record_harvest
from pligt.instance import build_archive
from pligt.settings import load_settings
from tests.support.access import REQUEST_FIELDS
from tests.support.access import issue_credential
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.cli import run_cli
from tests.support.data import pdf_bytes
from tests.support.servers import start_server
from tests.support.servers import stop_server

#: What the Royal Danish Library's crawler sends (kb.dk's page on its harvests).
NETARKIVET_UA = "Mozilla/5.0 (compatible; heritrix/3.4.0 +https://www.kb.dk/netarkivindsamling/) Firefox/57"
#: Another web archive's Heritrix: a crawler, but not the deposit institution's.
OTHER_HERITRIX_UA = "Mozilla/5.0 (compatible; heritrix/3.4.0-20190418 +http://arquivo.pt)"


def heritrix_sha1(data: bytes) -> str:
    """The payload digest as Heritrix writes it in its WARC and CDX files."""
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()  # noqa: S324 - the format's digest


KURSUS = pdf_bytes("kursus", pad=3000)
NOTER = pdf_bytes("noter")
BROCHURE = pdf_bytes("brochure")


@pytest.fixture
def deposit(archive: Archive) -> tuple[Credential, tuple[str, str]]:
    """Two protected versions and a public one, and the institution's crawler credential."""
    archive.publish([KURSUS], filename="kursus.pdf", visibility="protected")
    archive.publish([NOTER], filename="noter.pdf", visibility="protected")
    archive.publish([BROCHURE], filename="brochure.pdf", visibility="public")
    credential, password = issue_credential(archive)
    return credential, (credential.username, password)


def version(archive: Archive, slug: str) -> Version:
    return archive.item_versions(slug)[-1]


def report(archive: Archive) -> dict[tuple[int, str], dict[str, Any]]:
    """The harvest report as the archive gives it, by (request, slug)."""
    return {(r.request_id, r.version.slug): r.to_dict() for r in archive.harvest()}


def cli_report(instance: Instance) -> list[dict[str, Any]]:
    result = run_cli("harvest", "--json", "--instance", str(instance.path))
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def cli_text(instance: Instance) -> list[str]:
    result = run_cli("harvest", "--instance", str(instance.path))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def line_of(lines: list[str], slug: str) -> str:
    """The text report's line for version 1 of ``slug`` (of the first request)."""
    return next(ln for ln in lines if ln.startswith(f"  {slug} v1 "))


def console(client: FlaskClient, instance: Instance) -> str:
    """The console's items page, signed in as the owner does (the form's token, then the password)."""
    form = client.get("/admin/login").text
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', form)
    assert token, form
    signed_in = client.post("/admin/login", data={"password": instance.owner.password, "csrf_token": token.group(1)})
    assert signed_in.status_code == 302, signed_in.text
    page = client.get("/admin/")
    assert page.status_code == 200
    return page.text


# -- per access request, across its credentials ---------------------------------------------


def test_a_rotation_does_not_turn_what_the_request_fetched_into_not_fetched(
    client: FlaskClient, archive: Archive, instance: Instance, clock: Clock, deposit: tuple[Credential, Any]
) -> None:
    old, old_auth = deposit
    assert client.get("/files/kursus/v1/kursus.pdf", auth=old_auth).status_code == 200
    clock.advance(days=90)
    rotated = archive.access.rotate(old.id, 30)
    new = rotated.credential
    assert client.get("/files/kursus/v1/kursus.pdf", auth=old_auth).status_code == 401  # the old one is revoked
    new_auth = (new.username, rotated.password)
    assert client.get("/files/noter/v1/noter.pdf", auth=new_auth).status_code == 200
    assert client.get("/files/kursus/v1/kursus.pdf", auth=new_auth).status_code == 200  # again: the first counts

    rows = report(archive)
    assert set(rows) == {(old.request_id, s) for s in ("kursus", "noter", "brochure")}  # one request, not two
    kursus, noter, brochure = (
        rows[old.request_id, "kursus"],
        rows[old.request_id, "noter"],
        rows[old.request_id, "brochure"],
    )
    assert (kursus["state"], kursus["credential"], kursus["complete_at"]) == ("fetched", old.id, "2026-01-05T12:00:00Z")
    assert (noter["state"], noter["credential"], noter["complete_at"]) == ("fetched", new.id, "2026-04-05T12:00:00Z")
    assert (brochure["state"], brochure["credential"], brochure["complete_at"]) == ("not fetched", None, None)
    for row in rows.values():
        assert row["credentials"] == [old.id, new.id]
        assert row["institution"] == REQUEST_FIELDS["institution"]
    assert kursus["username"] == old.username and noter["username"] == new.username
    assert kursus["attributed_by"] == noter["attributed_by"] == "credential"

    shown = cli_report(instance)
    assert [(r["request"], r["slug"], r["state"], r["credential"]) for r in shown] == [
        (old.request_id, "brochure", "not fetched", None),
        (old.request_id, "kursus", "fetched", old.id),
        (old.request_id, "noter", "fetched", new.id),
    ]
    assert shown[1]["url_path"] == "/files/kursus/v1/kursus.pdf"
    lines = cli_text(instance)
    assert lines[0] == (
        f"Request #{old.request_id} ({REQUEST_FIELDS['institution']}), credentials {old.id}, {new.id}: "
        "2 of 3 versions held (downloaded whole)"
    )
    assert f"held: fetched whole 2026-01-05 12:00 with credential {old.id}" in line_of(lines, "kursus")
    assert f"held: fetched whole 2026-04-05 12:00 with credential {new.id}" in line_of(lines, "noter")
    assert "NOT FETCHED" in line_of(lines, "brochure")


def test_each_request_has_its_own_rows(client: FlaskClient, archive: Archive, deposit: tuple[Credential, Any]) -> None:
    first, auth = deposit
    second, _ = issue_credential(archive)  # another institution's request
    assert client.get("/files/kursus/v1/kursus.pdf", auth=auth).status_code == 200

    rows = report(archive)
    assert rows[first.request_id, "kursus"]["state"] == "fetched"
    assert rows[second.request_id, "kursus"]["state"] == "not fetched"  # the first one's fetch is not the second's
    assert rows[second.request_id, "kursus"]["credentials"] == [second.id]


# -- revisits ----------------------------------------------------------------------------------


def test_a_304_is_a_revisit_only_after_a_whole_download_and_alone_proves_nothing_held(
    client: FlaskClient, archive: Archive, instance: Instance, clock: Clock, deposit: tuple[Credential, Any]
) -> None:
    old, old_auth = deposit
    kursus, noter = version(archive, "kursus"), version(archive, "noter")
    with client.get("/files/kursus/v1/kursus.pdf", auth=old_auth) as whole:  # closed: the download is recorded
        assert whole.status_code == 200
    archive.record_download(old.id, noter, 304, 0)  # its ETag, from a HEAD: it never took the bytes
    clock.advance(days=90)
    new = archive.access.rotate(old.id, 30).credential
    # The next harvest, with the new credential: both presented their ETags, both got 304 (the
    # HTTP layer records it so).
    archive.record_download(new.id, kursus, 304, 0)
    archive.record_download(new.id, noter, 304, 0)
    clock.advance(days=1)
    archive.record_download(new.id, noter, 304, 0)  # a later one: the latest date is shown

    rows = report(archive)
    got = rows[old.request_id, "kursus"]
    assert (got["state"], got["complete_at"], got["credential"]) == ("fetched", "2026-01-05T12:00:00Z", old.id)
    assert (got["revisit_confirmed_at"], got["revisit_credential"]) == ("2026-04-05T12:00:00Z", new.id)
    named = rows[old.request_id, "noter"]
    assert (named["state"], named["not_modified_at"], named["credential"]) == ("named", "2026-04-06T12:00:00Z", new.id)
    assert (named["fetched_at"], named["complete_at"], named["attributed_by"]) == (None, None, "credential")
    assert (named["revisit_confirmed_at"], named["revisit_credential"]) == (None, None)  # nothing held to revisit

    lines = cli_text(instance)
    assert lines[0].endswith(": 1 of 3 versions held (downloaded whole)")
    assert line_of(lines, "noter").startswith(
        f"  noter v1  NOT TAKEN: answered 304 2026-04-06 12:00 with credential {new.id} "
        "(the client named this version; no whole download is recorded)"
    )
    assert "held" not in line_of(lines, "noter")
    fetched, revisited = (
        f"held: fetched whole 2026-01-05 12:00 with credential {old.id}",
        f"2026-04-05 12:00 with credential {new.id}",
    )
    assert f"{fetched}; revisited (304) {revisited}" in line_of(lines, "kursus")

    api = client.get("/api/harvest", auth=instance.owner_auth)
    assert api.status_code == 200
    by_slug = {r["slug"]: r for r in api.get_json()["harvest"]}
    assert by_slug["noter"] == {**named, "url_path": "/files/noter/v1/noter.pdf", "url": by_slug["noter"]["url"]}
    assert by_slug["noter"]["url"].endswith("/files/noter/v1/noter.pdf")

    page = console(client, instance)
    assert "not taken: only a 304 Not Modified, 2026-04-06" in page
    assert "held" not in page
    assert "2026-01-05" in page  # kursus, fetched whole


def test_a_304_before_the_whole_download_is_no_revisit(
    archive: Archive, clock: Clock, deposit: tuple[Credential, Any]
) -> None:
    credential, _ = deposit
    kursus = version(archive, "kursus")
    archive.record_download(credential.id, kursus, 304, 0)
    clock.advance(hours=1)
    archive.record_download(credential.id, kursus, 200, kursus.size)

    row = report(archive)[credential.request_id, "kursus"]
    assert (row["state"], row["complete_at"], row["revisit_confirmed_at"]) == ("fetched", "2026-01-05T13:00:00Z", None)
    assert row["not_modified_at"] == "2026-01-05T12:00:00Z"


@pytest.mark.parametrize("stamped", [True, False], ids=["recorded in the audit log", "never recorded there"])
def test_a_whole_download_stays_held_after_its_records_are_purged_if_the_audit_log_has_it(
    archive: Archive, instance: Instance, clock: Clock, deposit: tuple[Credential, Any], stamped: bool
) -> None:
    credential, _ = deposit
    kursus, noter = version(archive, "kursus"), version(archive, "noter")
    archive.record_download(credential.id, kursus, 200, kursus.size)
    archive.record_download(credential.id, noter, 304, 0)  # named only
    if stamped:
        record_harvest(archive)  # as `pligt audit stamp` does, from cron
    archive.recorder.flush()  # written, as a server's batch is within half a second, before purge looks
    archive.checkpoints.wait()
    purged = run_cli("purge", "--json", "--instance", str(instance.path))  # download records go after six months
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["download_records_deleted"] == 2
    clock.advance(days=190)
    archive.record_download(credential.id, kursus, 304, 0)  # the next harvest: both answered 304
    archive.record_download(credential.id, noter, 304, 0)

    rows = report(archive)
    got, named = rows[credential.request_id, "kursus"], rows[credential.request_id, "noter"]
    assert named["state"] == "named"  # the log recorded a 304 of it, not a download
    if stamped:
        assert (got["state"], got["complete_at"], got["credential"]) == (
            "fetched",
            "2026-01-05T12:00:00Z",
            credential.id,
        )
        assert got["revisit_confirmed_at"] == "2026-07-14T12:00:00Z"
        assert "held: fetched whole 2026-01-05 12:00" in line_of(cli_text(instance), "kursus")
    else:
        assert (got["state"], got["complete_at"], got["revisit_confirmed_at"]) == ("named", None, None)


def test_a_range_is_partial_and_an_anonymous_304_proves_nothing(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, Any]
) -> None:
    credential, auth = deposit
    assert client.get("/files/kursus/v1/kursus.pdf", auth=auth, headers={"Range": "bytes=0-99"}).status_code == 206
    archive.record_download(None, version(archive, "brochure"), 304, 0)  # someone holds it: who?

    rows = report(archive)
    assert (rows[credential.request_id, "kursus"]["state"], rows[credential.request_id, "kursus"]["credential"]) == (
        "partial",
        credential.id,
    )
    assert rows[credential.request_id, "brochure"]["state"] == "not fetched"
    lines = cli_text(instance)
    assert f"fetched PARTIALLY 2026-01-05 12:00 with credential {credential.id}" in line_of(lines, "kursus")
    assert lines[0].endswith(": 0 of 3 versions held (downloaded whole)")
    assert "partly, 2026-01-05" in console(client, instance)


# -- attribution -----------------------------------------------------------------------------


def test_a_download_on_the_crawlers_connection_is_attributed_to_its_credential(
    client: FlaskClient, archive: Archive, clock: Clock, deposit: tuple[Credential, Any]
) -> None:
    credential, auth = deposit
    brochure = version(archive, "brochure")
    # As the HTTP layer records it: anonymous, on a connection that had carried this credential.
    archive.record_download(credential.id, brochure, 200, brochure.size, via="connection")

    row = report(archive)[credential.request_id, "brochure"]
    assert (row["state"], row["credential"], row["attributed_by"]) == ("fetched", credential.id, "connection")

    clock.advance(hours=1)
    assert client.get("/files/brochure/v1/brochure.pdf", auth=auth).status_code == 200
    row = report(archive)[credential.request_id, "brochure"]
    assert (row["attributed_by"], row["complete_at"]) == ("credential", "2026-01-05T13:00:00Z")  # the stronger wins

    for credential_id, via in ((None, "connection"), (None, "credential"), (credential.id, "user-agent")):
        with pytest.raises(ValueError, match="via="):
            archive.record_download(credential_id, brochure, 200, brochure.size, via=via)


def test_a_listed_crawlers_user_agent_attributes_public_downloads_and_is_not_stored(
    archive: Archive, instance: Instance, deposit: tuple[Credential, Any]
) -> None:
    credential, _ = deposit
    other, _ = issue_credential(archive)
    archive.publish([pdf_bytes("folder")], filename="folder.pdf", visibility="public")
    brochure, folder = version(archive, "brochure"), version(archive, "folder")
    archive.record_download(None, brochure, 200, brochure.size, user_agent=NETARKIVET_UA)
    archive.record_download(None, folder, 200, folder.size, user_agent=OTHER_HERITRIX_UA)  # anyone else's crawler
    archive.record_download(None, folder, 200, folder.size, user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128")

    rows = report(archive)
    for request_id in (credential.request_id, other.request_id):  # nothing tells which institution it was
        named = rows[request_id, "brochure"]
        assert (named["state"], named["attributed_by"], named["crawler"]) == (
            "fetched",
            "user-agent",
            "kb.dk/netarkivindsamling",
        )
        assert (named["credential"], named["complete_at"]) == (None, "2026-01-05T12:00:00Z")
        anonymous = rows[request_id, "folder"]
        assert (anonymous["state"], anonymous["attributed_by"]) == ("not fetched", None)
        assert anonymous["anonymous_complete_at"] == "2026-01-05T12:00:00Z"
    line = line_of(cli_text(instance), "brochure")
    assert "by a client naming itself 'kb.dk/netarkivindsamling' (User-Agent only)" in line

    with sqlite3.connect(instance.settings.catalog) as db:
        stored = db.execute("SELECT * FROM downloads").fetchall()
    db.close()
    assert len(stored) == 3
    assert not [v for row in stored for v in row if isinstance(v, str) and ("Mozilla" in v or "arquivo" in v)]


def test_crawler_user_agents_is_a_setting(instance: Instance) -> None:
    default = build_archive(load_settings(instance.path, env={}))
    assert default.crawler_named_by(NETARKIVET_UA) == "kb.dk/netarkivindsamling"
    assert default.crawler_named_by("Mozilla/5.0 (compatible; heritrix/1.14 +http://netarkivet.dk/website/info.html)")
    assert default.crawler_named_by(OTHER_HERITRIX_UA) is None

    own = build_archive(load_settings(instance.path, env={"PLIGT_CRAWLER_USER_AGENTS": " Arkivbot/2 , arquivo.pt ,"}))
    assert own.crawler_user_agents == ("Arkivbot/2", "arquivo.pt")
    assert own.crawler_named_by("arkivbot/2.1 (+https://example.dk)") == "Arkivbot/2"
    assert own.crawler_named_by(NETARKIVET_UA) is None

    assert build_archive(load_settings(instance.path, env={"PLIGT_CRAWLER_USER_AGENTS": ""})).crawler_user_agents == ()
    with pytest.raises(ConfigurationError, match="crawler_user_agents: 'bot' is shorter"):
        load_settings(instance.path, env={"PLIGT_CRAWLER_USER_AGENTS": "heritrix,bot"})


# -- SHA-1 -----------------------------------------------------------------------------------


def test_every_version_has_the_sha1_heritrix_writes_everywhere(
    client: FlaskClient, archive: Archive, instance: Instance, deposit: tuple[Credential, Any], tmp_path: Path
) -> None:
    credential, _ = deposit
    expected = {"kursus": heritrix_sha1(KURSUS), "noter": heritrix_sha1(NOTER), "brochure": heritrix_sha1(BROCHURE)}
    assert all(
        len(digest) == 5 + 32 and digest == digest.upper().replace("SHA1:", "sha1:") for digest in expected.values()
    )
    assert {v.slug: v.sha1 for v in archive.versions()} == expected

    items = run_cli("items", "--json", "--instance", str(instance.path))
    assert {v["slug"]: v["sha1"] for v in json.loads(items.stdout)} == expected
    api = client.get("/api/items", auth=instance.owner_auth).get_json()
    assert {i["slug"]: i["versions"][0]["sha1"] for i in api["items"]} == expected
    assert {r["slug"]: r["sha1"] for r in cli_report(instance)} == expected
    assert {r.version.slug: r.to_dict()["sha1"] for r in archive.harvest()} == expected
    assert expected["kursus"] in line_of(cli_text(instance), "kursus")

    warc = tmp_path / "deposit.warc.gz"
    exported = run_cli(
        "export", "--warc", str(warc), "--base-url", "https://deposit.example.dk", "--instance", str(instance.path)
    )
    assert exported.returncode == 0, exported.stderr
    digests = {}
    with warc.open("rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type == "response":
                payload = record.content_stream().read()
                digest = record.rec_headers.get_header("WARC-Payload-Digest")
                assert digest == heritrix_sha1(payload)  # what warcio (and a CDX line) says of the bytes
                parts = record.rec_headers.get_header("WARC-Target-URI").split("/")
                if parts[3] == "files":  # a version (the others are the index pages and their requisites)
                    digests[parts[4]] = digest
    assert digests == expected


def test_the_export_stops_at_bytes_that_are_not_what_was_published(
    archive: Archive, instance: Instance, deposit: tuple[Credential, Any], tmp_path: Path
) -> None:
    noter = version(archive, "noter")
    stored = instance.path / "files" / noter.storage_key
    stored.chmod(0o644)
    stored.write_bytes(NOTER.replace(b"noter", b"NOTER"))  # same size, other bytes

    result = run_cli("export", "--warc", str(tmp_path / "x.warc.gz"), "--instance", str(instance.path))
    assert result.returncode == 6, result.stdout
    assert (
        f"have SHA-1 {heritrix_sha1(NOTER.replace(b'noter', b'NOTER'))}, not the published {noter.sha1}"
        in result.stderr
    )
    assert not list(tmp_path.glob("x.warc.gz*"))


# -- a catalog from before ---------------------------------------------------------------------


def old_catalog(instance: Instance) -> dict[str, bytes]:
    """Replace the instance's catalog with one of schema 3 (before SHA-1 and attribution), as it was used.

    Three versions stored as the old code stored them, and one complete download by a credential.
    """
    Path(instance.settings.catalog).unlink()
    storage = open_backend(instance.settings.storage)
    files = {"gammel": pdf_bytes("gammel"), "skadet": pdf_bytes("skadet"), "aaben": pdf_bytes("åben")}
    with sqlite3.connect(instance.settings.catalog) as db:
        for script in _MIGRATIONS[:3]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 3")
        now = "2026-01-05T12:00:00Z"
        for n, (slug, data) in enumerate(files.items(), start=1):
            stored = storage.save(f"{slug}/old{n}", [data])
            visibility = "public" if slug == "aaben" else "protected"
            db.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?)", (n, slug, slug.title(), visibility, now))
            db.execute(
                """INSERT INTO versions (id, item_id, number, filename, size, sha256, content_type, storage_key,
                       published_at, retain_until) VALUES (?, ?, 1, ?, ?, ?, 'application/pdf', ?, ?, ?)""",
                (n, n, f"{slug}.pdf", stored.size, stored.sha256, stored.key, now, "2026-07-07T12:00:00Z"),
            )
        db.execute(
            "INSERT INTO access_requests (id, status, institution, created_at) VALUES (1, 'released', 'KB', ?)", (now,)
        )
        db.execute(
            "INSERT INTO credentials VALUES (1, 1, 'crawler-0ld', 'scrypt$x', ?, '2027-01-05T12:00:00Z', NULL)", (now,)
        )
        db.execute("INSERT INTO downloads VALUES (1, 1, 1, 200, ?, 1, ?)", (len(files["gammel"]), now))
        db.execute("INSERT INTO downloads VALUES (2, NULL, 3, 200, ?, 1, ?)", (len(files["aaben"]), now))
    db.close()
    return files


@pytest.mark.server
def test_a_catalog_from_before_is_upgraded_by_serve_and_its_sha1_filled_in_by_fixity(
    instance: Instance, tmp_path: Path
) -> None:
    files = old_catalog(instance)
    damaged = instance.path / "files" / "skadet" / "old2"
    damaged.chmod(0o644)
    damaged.write_bytes(files["skadet"].replace(b"skadet", b"SKADET"))
    at = str(instance.path)

    refused = run_cli("items", "--instance", at)
    assert refused.returncode == 6
    assert "has schema 3, expected" in refused.stderr and "`pligt serve` upgrades it" in refused.stderr

    stop_server(start_server(instance.path, tmp_path / "server.log"))  # the upgrade, as an owner makes it

    listed = {v["slug"]: v for v in json.loads(run_cli("items", "--json", "--instance", at).stdout)}
    assert {slug: v["sha1"] for slug, v in listed.items()} == dict.fromkeys(files)  # not known yet
    [row] = [r for r in cli_report(instance) if r["slug"] == "gammel"]  # the old record, still the request's
    assert (row["state"], row["credential"], row["attributed_by"], row["sha1"]) == ("fetched", 1, "credential", None)
    assert "sha1 unknown" in line_of(cli_text(instance), "gammel")

    checked = run_cli("fixity", "--json", "--instance", at)
    assert checked.returncode == 9  # the damaged one
    result = json.loads(checked.stdout)
    assert result["sha1_recorded"] == 2
    assert [c.split(":")[0] for c in result["corrupt"]] == ["skadet v1 (skadet/old2)"]

    listed = {v["slug"]: v for v in json.loads(run_cli("items", "--json", "--instance", at).stdout)}
    assert listed["gammel"]["sha1"] == heritrix_sha1(files["gammel"])
    assert listed["aaben"]["sha1"] == heritrix_sha1(files["aaben"])
    assert listed["skadet"]["sha1"] is None  # never the digest of bytes that are not what was published
    rows = {r["slug"]: r for r in cli_report(instance)}
    assert rows["gammel"]["sha1"] == heritrix_sha1(files["gammel"])
    assert (rows["aaben"]["state"], rows["aaben"]["anonymous_complete_at"]) == ("not fetched", "2026-01-05T12:00:00Z")

    again = run_cli("fixity", "--instance", at)
    assert "recorded the SHA-1" not in again.stdout  # once only
    damaged.write_bytes(files["skadet"])
    healed = run_cli("fixity", "--instance", at)
    assert healed.returncode == 0, healed.stdout
    assert "recorded the SHA-1 of 1 versions published before it was kept" in healed.stdout
