"""Proving the stored bytes intact and handing the collection over, on a realistic instance.

`pligt fixity`, `pligt export --warc` (read back with warcio and checked by
`warcio check`, every record fetched again from a running server) and
`pligt backup` / `pligt restore` onto a fresh instance that then serves the
same bytes at the same paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest
import requests
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders

from tests.support.pages import links
from tests.support.realistic import END
from tests.support.realistic import World
from tests.support.realistic import copy_instance
from tests.support.realistic import dump
from tests.support.realistic import fake_env
from tests.support.realistic import pligt_at
from tests.support.realistic import pligt_json
from tests.support.realistic import shared_world
from tests.support.realistic import stored_files
from tests.support.servers import start_server
from tests.support.servers import stop_server

pytestmark = pytest.mark.external

NOW = END + timedelta(days=1)
WARCIO = str(Path(sys.executable).with_name("warcio"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return shared_world(tmp_path_factory.mktemp("world") / "instance")


@pytest.fixture
def inst(world: World, tmp_path: Path) -> Path:
    return copy_instance(world, tmp_path / "instance")


def retained(instance: Path) -> dict[str, dict[str, Any]]:
    """Every retained version by storage key, with its slug."""
    slugs = {i["id"]: i["slug"] for i in dump(instance, "items")["items"]}
    return {
        v["storage_key"]: {**v, "slug": slugs[v["item_id"]]}
        for v in dump(instance, "versions")["versions"]
        if v["withdrawn_at"] is None
    }


def flip_middle_byte(path: Path) -> None:
    os.chmod(path, 0o644)  # stored objects are read-only
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def owner_listing(url: str, world: World) -> list[dict[str, Any]]:
    """Every version the owner API lists, with the absolute URL the server gives it."""
    response = requests.get(url + "/api/items", auth=("owner", world.owner_password), timeout=10)
    assert response.status_code == 200, response.text
    return [{**v, "slug": item["slug"]} for item in response.json()["items"] for v in item["versions"]]


def fetch(url: str, world: World, visibility: str) -> requests.Response:
    auth = ("owner", world.owner_password) if visibility == "protected" else None
    response = requests.get(url, auth=auth, timeout=30)
    assert response.status_code == 200, (url, response.status_code)
    return response


# -- pligt fixity -------------------------------------------------------------------------


def test_fixity_passes_on_an_intact_instance_and_is_audited(inst: Path) -> None:
    versions = retained(inst)
    report = pligt_json(NOW, "fixity", "--instance", str(inst))
    assert report == {
        "ok": True,
        "checked": len(versions),
        "bytes_read": sum(v["size"] for v in versions.values()),
        "missing": [],
        "corrupt": [],
        "unexpected": [],
        "orphaned": [],
        "debris": [],
        "sha1_recorded": 0,  # every version was published with its SHA-1
    }
    assert len(versions) == 38
    log = dump(inst, "audit_log")["audit_log"]
    assert log[-1]["action"] == "fixity.checked"
    assert json.loads(log[-1]["data"]) == report

    said = pligt_at(NOW, "fixity", "--instance", str(inst))
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(f"checked {len(versions)} versions")
    assert dump(inst, "audit_log")["audit_log"][-1]["action"] == "fixity.checked"
    assert pligt_at(NOW, "audit", "verify", "--instance", str(inst)).returncode == 0


def test_fixity_names_the_corrupt_the_missing_the_unexpected_and_the_orphaned_object(inst: Path) -> None:
    versions = retained(inst)
    by_size = sorted(versions.values(), key=lambda v: v["size"])
    corrupt, missing = by_size[-1], by_size[len(by_size) // 2]
    assert corrupt["size"] > 1024 * 1024  # the flipped byte lies beyond the first chunk read
    files = inst / "files"
    flip_middle_byte(files / corrupt["storage_key"])
    assert (files / corrupt["storage_key"]).stat().st_size == corrupt["size"]
    os.chmod(files / missing["storage_key"], 0o644)
    (files / missing["storage_key"]).unlink()
    unexpected = "kontakt-os/hvem.txt"  # not a key Pligt makes: never removed by --repair
    (files / unexpected).write_bytes(b"Hvem har lagt denne fil her?\n")
    orphan = "kontakt-os/0123456789abcdef01234567"  # a publish's key the catalog never listed
    (files / orphan).write_bytes(b"%PDF-1.4 stored, never committed\n")
    os.utime(files / orphan, (0, (NOW - timedelta(hours=2)).timestamp()))  # past the grace period

    said = pligt_at(NOW, "fixity", "--instance", str(inst))
    assert said.returncode not in (0, None)
    assert said.stdout.startswith(f"checked {len(versions) - 1} versions")
    lines = said.stdout.splitlines()
    [corrupt_line] = [ln for ln in lines if ln.startswith("corrupt: ")]
    assert f"{corrupt['slug']} v{corrupt['number']}" in corrupt_line and corrupt["storage_key"] in corrupt_line
    [missing_line] = [ln for ln in lines if ln.startswith("missing: ")]
    assert f"{missing['slug']} v{missing['number']}" in missing_line and missing["storage_key"] in missing_line
    assert f"unexpected: {unexpected}" in lines
    [orphan_line] = [ln for ln in lines if ln.startswith("orphaned: ")]
    assert orphan in orphan_line and "never reached the catalog" in orphan_line
    [error] = said.stderr.splitlines()
    assert error.startswith("pligt: error:") and "4 problem" in error and "--repair" in error

    result = pligt_at(NOW, "fixity", "--json", "--instance", str(inst))
    assert result.returncode == said.returncode
    report = json.loads(result.stdout)
    assert set(report) == {
        *("ok", "checked", "bytes_read", "missing", "corrupt", "unexpected", "orphaned", "debris", "sha1_recorded")
    }
    assert report["ok"] is False
    assert report["checked"] == len(versions) - 1
    assert [m for m in report["missing"] if missing["storage_key"] in m] == report["missing"] != []
    assert len(report["corrupt"]) == 1 and corrupt["storage_key"] in report["corrupt"][0]
    assert report["unexpected"] == [unexpected]
    [orphaned] = report["orphaned"]
    assert orphaned["key"] == orphan and orphaned["abandoned"] and orphaned["retained_until"] is None
    # The missing version was its item's only file: its folder is empty now (reported, not a problem).
    [folder] = report["debris"]
    assert (folder["kind"], folder["name"]) == ("empty folder", missing["slug"])
    entry = dump(inst, "audit_log")["audit_log"][-1]
    assert entry["action"] == "fixity.checked"
    assert json.loads(entry["data"]) == report
    assert pligt_at(NOW, "audit", "verify", "--instance", str(inst)).returncode == 0


# -- pligt export --warc ------------------------------------------------------------------


#: What the WSGI server and the connection add (not Pligt's answer: the export leaves them out).
TRANSPORT = {"server", "connection", "keep-alive", "date"}


def answer_headers(headers: Any) -> list[tuple[str, str]]:
    """A response's headers (a record's or a live one's) without the transport's, in a comparable order."""
    pairs = headers.headers if isinstance(headers, StatusAndHeaders) else headers.items()
    return sorted((k.lower(), v) for k, v in pairs if k.lower() not in TRANSPORT)


@pytest.mark.server
def test_warc_export_holds_every_retained_version_as_served_and_passes_warcio_check(
    world: World, inst: Path, tmp_path: Path
) -> None:
    versions = retained(inst)
    by_sha = {v["sha256"]: v for v in versions.values()}
    assert len(by_sha) == len(versions)
    warc = tmp_path / "pligt.warc.gz"
    server = start_server(inst, tmp_path / "server.log", env=fake_env(NOW))
    crawler = world.crawlers["a_active"]
    try:
        listed = owner_listing(server.url, world)
        urls = {v["url"]: v for v in listed if v["withdrawn_at"] is None}
        gone = [v for v in listed if v["withdrawn_at"] is not None]
        assert len(urls) == len(versions) and len(gone) == len(world.withdrawn)

        exported = pligt_json(NOW, "export", "--warc", str(warc), "--base-url", server.url, "--instance", str(inst))
        pages = ["/", "/protected/", "/static/pligt.css", "/favicon.ico", "/robots.txt", "/sitemap.xml"]
        assert exported == {
            "warc": str(warc),
            "records": len(versions) + len(pages),
            "versions": len(versions),
            "pages": len(pages),
        }
        assert not list(tmp_path.glob("*.partial"))

        with warc.open("rb") as stream:
            records = []
            for record in ArchiveIterator(stream):
                payload = record.content_stream().read()
                records.append((record.rec_type, record.rec_headers, record.http_headers, payload))
        assert records[0][0] == "warcinfo"
        assert all(rec_headers.protocol == "WARC/1.1" for _, rec_headers, _, _ in records)
        responses = records[1:]
        assert [kind for kind, _, _, _ in responses] == ["response"] * (len(versions) + len(pages))
        page_records = responses[: len(pages)]
        version_records = responses[len(pages) :]

        # The pages as the server answers them: the indexes (the protected one as the crawler
        # sees it with its credentials), their stylesheet, what a crawler asks for first.
        assert [r[1].get_header("WARC-Target-URI") for r in page_records] == [server.url + p for p in pages]
        for _, rec_headers, http_headers, payload in page_records:
            uri = rec_headers.get_header("WARC-Target-URI")
            auth = (crawler.username, crawler.password) if "/protected/" in uri else None
            served = requests.get(uri, auth=auth, timeout=30)
            assert served.status_code == 200, uri
            assert payload == served.content, uri
            assert http_headers.get_statuscode() == "200"
            # Expires (the icon's: a week from the answer) moves on with the clock; the rest is the same.
            recorded, live = answer_headers(http_headers), answer_headers(served.headers)
            assert [h for h in recorded if h[0] != "expires"] == [h for h in live if h[0] != "expires"], uri
            if expires := http_headers.get_header("Expires"):
                ahead = parsedate_to_datetime(expires) - parsedate_to_datetime(http_headers.get_header("Date"))
                assert timedelta(days=7) <= ahead <= timedelta(days=7, seconds=5), uri
            assert parsedate_to_datetime(http_headers.get_header("Date")) >= NOW
        index = set(links(page_records[0][3].decode()))
        protected_index = set(links(page_records[1][3].decode()))
        for uri, version in urls.items():
            path = unquote(urlsplit(uri).path)
            assert (path in index) == (version["visibility"] == "public"), path
            assert path in protected_index, path

        seen = set()
        for _, rec_headers, http_headers, payload in version_records:
            uri = rec_headers.get_header("WARC-Target-URI")
            assert uri in urls, uri  # exactly the URL the server gives the version
            seen.add(uri)
            version = urls[uri]
            assert hashlib.sha256(payload).hexdigest() == version["sha256"]
            assert len(payload) == version["size"]
            assert rec_headers.get_header("WARC-Payload-Digest") == version["sha1"]  # as Heritrix's CDX has it
            assert http_headers.get_statuscode() == "200"
            served = fetch(uri, world, version["visibility"])
            assert served.content == payload
            # Every header the server sends for that URL, Content-Disposition first of all.
            assert answer_headers(http_headers) == answer_headers(served.headers), uri
            assert http_headers.get_header("Content-Disposition") == served.headers["Content-Disposition"]
            assert http_headers.get_header("Date") == http_headers.get_header("Last-Modified")
        assert seen == set(urls)
        for version in gone:  # withdrawn versions are not handed over
            path = f"/files/{version['slug']}/v{version['version']}/"
            assert not any(path in uri for uri in seen), path
    finally:
        stop_server(server)

    check = subprocess.run([WARCIO, "check", "-v", str(warc)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert sum("WARC-Record-ID" in ln for ln in lines) == len(versions) + len(pages) + 1
    assert sum(ln.strip() == "digest pass" for ln in lines) == len(versions) + len(pages) + 1
    assert not any("fail" in ln for ln in lines)


def test_warc_export_refuses_an_existing_file_and_leaves_it_alone(inst: Path, tmp_path: Path) -> None:
    target = tmp_path / "aflevering.warc.gz"
    target.write_bytes(b"en tidligere eksport\n")
    result = pligt_at(NOW, "export", "--warc", str(target), "--instance", str(inst))
    assert result.returncode not in (0, None)
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and str(target) in line
    assert target.read_bytes() == b"en tidligere eksport\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["aflevering.warc.gz", "instance"])


def test_export_and_backup_name_a_missing_object_and_leave_nothing_behind(inst: Path, tmp_path: Path) -> None:
    versions = retained(inst)
    missing = next(v for v in versions.values() if v["slug"] == "kontakt-os")
    os.chmod(inst / "files" / missing["storage_key"], 0o644)
    (inst / "files" / missing["storage_key"]).unlink()
    out = tmp_path / "out"
    out.mkdir()

    exports = (("export", "--warc", str(out / "pligt.warc.gz")), ("export", "--wacz", str(out / "pligt.wacz")))
    for args in (*exports, ("backup", str(out / "backup"))):
        result = pligt_at(NOW, *args, "--instance", str(inst))
        assert result.returncode not in (0, None), args
        [line] = result.stderr.splitlines()  # one line, no traceback
        assert line.startswith("pligt: error:") and "kontakt-os" in line, line
        assert missing["storage_key"] in line, line
    leftovers = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    assert leftovers == []  # no half export, no half backup (it would hold personal data)


def test_export_refuses_a_corrupt_version_naming_it_and_leaves_nothing_behind(inst: Path, tmp_path: Path) -> None:
    corrupt = next(v for v in retained(inst).values() if v["slug"] == "kontakt-os")
    flip_middle_byte(inst / "files" / corrupt["storage_key"])

    for target in (tmp_path / "pligt.warc.gz", tmp_path / "pligt.wacz"):
        kind = "--wacz" if target.suffix == ".wacz" else "--warc"
        result = pligt_at(NOW, "export", kind, str(target), "--instance", str(inst))
        assert result.returncode not in (0, None), kind
        [line] = result.stderr.splitlines()
        assert "kontakt-os" in line and f"not the published {corrupt['sha1']}" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instance"]


def test_export_into_a_folder_that_does_not_exist_is_a_clear_error(inst: Path, tmp_path: Path) -> None:
    target = tmp_path / "findes-ikke" / "pligt.warc.gz"
    result = pligt_at(NOW, "export", "--warc", str(target), "--instance", str(inst))
    assert result.returncode not in (0, None)
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and "findes-ikke" in line, line


# -- pligt backup / restore ---------------------------------------------------------------


@pytest.mark.server
def test_backup_while_serving_then_restore_serves_the_same_bytes_at_the_same_urls(
    world: World, inst: Path, tmp_path: Path
) -> None:
    versions = retained(inst)
    backup_dir = tmp_path / "backup"
    restored = tmp_path / "restored-instance"
    crawler = world.crawlers["a_active"]
    server = start_server(inst, tmp_path / "server.log", env=fake_env(NOW))
    stop, fetched = threading.Event(), []

    def harvest(urls: list[str]) -> None:
        """The crawler keeps fetching (each fetch writes a download record) during the backup."""
        while not stop.is_set():
            for url in urls:
                response = requests.get(url, auth=(crawler.username, crawler.password), timeout=30)
                fetched.append(response.status_code)

    try:
        original = owner_listing(server.url, world)
        listed = [v for v in original if v["withdrawn_at"] is None]
        load = threading.Thread(target=harvest, args=([v["url"] for v in listed],))
        load.start()
        try:
            while len(fetched) < 5 and load.is_alive():  # the server is busy writing download records
                time.sleep(0.02)
            at_start = len(fetched)
            summary = pligt_json(NOW, "backup", str(backup_dir), "--instance", str(inst))
            during = len(fetched) - at_start
        finally:
            stop.set()
            load.join()
    finally:
        stop_server(server)
    assert during > 0 and set(fetched) == {200}
    assert summary["versions"] == len(versions)
    assert summary["bytes"] == sum(v["size"] for v in versions.values())
    manifest = json.loads((backup_dir / "manifest.json").read_text(encoding="utf-8"))
    assert {o["key"] for o in manifest["objects"]} == set(versions)

    result = pligt_json(NOW, "restore", str(backup_dir), "--instance", str(restored))
    assert result["versions"] == len(versions)
    assert pligt_at(NOW, "audit", "verify", "--instance", str(restored)).returncode == 0
    head = pligt_json(NOW, "audit", "head", "--instance", str(restored))
    assert head["head"] == summary["audit_head"]

    server = start_server(restored, tmp_path / "restored.log", env=fake_env(NOW))
    try:
        again = owner_listing(server.url, world)  # the owner's old password still works
        assert [facts(v) for v in again] == [facts(v) for v in original]
        for version in listed:
            path = urlsplit(version["url"]).path
            served = fetch(server.url + path, world, version["visibility"])
            assert hashlib.sha256(served.content).hexdigest() == version["sha256"], path
    finally:
        stop_server(server)
    assert stored_files(restored) == {k: v["sha256"] for k, v in versions.items()}


def facts(version: dict[str, Any]) -> tuple[Any, ...]:
    """What a listed version is, with its URL's path (the host differs between servers)."""
    path = urlsplit(version["url"]).path if "url" in version else None
    return (version["slug"], version["version"], version["sha256"], version["withdrawn_at"], path)


def test_restore_refuses_a_corrupted_backup_naming_the_object(inst: Path, tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    pligt_json(NOW, "backup", str(backup_dir), "--instance", str(inst))
    objects = sorted(p for p in (backup_dir / "objects").rglob("*") if p.is_file())
    victim = objects[len(objects) // 2]
    flip_middle_byte(victim)
    key = victim.relative_to(backup_dir / "objects").as_posix()
    target = tmp_path / "fresh"

    result = pligt_at(NOW, "restore", str(backup_dir), "--instance", str(target))
    assert result.returncode not in (0, None)
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and key in line and "corrupt" in line
    assert not (target / "catalog.sqlite3").exists()
    assert not any(p.is_file() for p in (target / "files").rglob("*"))  # nothing half-restored


def test_restore_refuses_a_backup_whose_catalog_changed_after_it_was_made(inst: Path, tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    pligt_json(NOW, "backup", str(backup_dir), "--instance", str(inst))
    # Rot in one row (made through SQLite, so the file stays well-formed): a file name changes,
    # and with it the URL the restored server would serve the version at.
    db = sqlite3.connect(backup_dir / "catalog.sqlite3")
    with db:
        changed = db.execute(
            "UPDATE versions SET filename = 'Kontrakt-skabelon (ny).pdf' WHERE filename = 'Kontrakt-skabelon.pdf'"
        ).rowcount
    db.close()
    assert changed == 1
    target = tmp_path / "fresh"

    result = pligt_at(NOW, "restore", str(backup_dir), "--instance", str(target))
    assert result.returncode not in (0, None), result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and "catalog" in line
    assert not (target / "catalog.sqlite3").exists()


def test_one_backup_restores_onto_two_fresh_instances(inst: Path, tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    summary = pligt_json(NOW, "backup", str(backup_dir), "--instance", str(inst))
    for name in ("first", "second"):
        restored = pligt_json(NOW, "restore", str(backup_dir), "--instance", str(tmp_path / name))
        assert restored["versions"] == summary["versions"]
        assert pligt_json(NOW, "audit", "head", "--instance", str(tmp_path / name))["head"] == summary["audit_head"]
    assert stored_files(tmp_path / "first") == stored_files(tmp_path / "second") == stored_files(inst)


def test_restore_refuses_an_instance_that_has_a_catalog(inst: Path, tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    pligt_json(NOW, "backup", str(backup_dir), "--instance", str(inst))
    before, files = dump(inst), stored_files(inst)
    result = pligt_at(NOW, "restore", str(backup_dir), "--instance", str(inst))
    assert result.returncode not in (0, None)
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and "fresh instance" in line
    assert dump(inst) == before and stored_files(inst) == files


def test_backup_refuses_a_folder_that_is_not_empty(inst: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "noter.txt").write_text("gammel backup\n", encoding="utf-8")
    result = pligt_at(NOW, "backup", str(folder), "--instance", str(inst))
    assert result.returncode not in (0, None)
    [line] = result.stderr.splitlines()
    assert line.startswith("pligt: error:") and "not empty" in line
    assert [p.name for p in folder.iterdir()] == ["noter.txt"]
    assert (folder / "noter.txt").read_text(encoding="utf-8") == "gammel backup\n"
