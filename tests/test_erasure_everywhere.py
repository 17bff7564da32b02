"""An erasure reaches every copy (issue 23): personal fields are sealed per request, and erasing destroys the key.

Each test takes copies the way an owner does (``pligt backup``, ``pg_dump``, a key
backup), erases a person after, brings the old copy back, and then searches the
raw bytes of every file under every folder involved (SQLite pages, free lists and
journals, the PostgreSQL cluster's data and write-ahead log, the dump, the backup)
for the person's name, email and message. The other person stays readable through
the commands, and the archive (versions, credentials, proofs) keeps working.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from pligt.core import Archive
from pligt.core import SqliteCatalog
from pligt.core.catalog import _MIGRATIONS
from pligt.core.catalog.sqlite import SqliteKeyStore
from pligt.core.keeping.backup import backup_keys
from pligt.core.keeping.privacy import Privacy
from pligt.core.proof.audit import GENESIS
from pligt.core.proof.audit import canonical_json
from pligt.core.proof.audit import entry_hash
from pligt.core.proof.audit import seal_personal
from pligt.core.storage import LocalStorage
from pligt.instance import init_instance
from pligt.instance import open_instance
from pligt.settings import load_settings
from tests.support.app import Clock
from tests.support.app import Instance
from tests.support.cli import invoke
from tests.support.postgres import Cluster
from tests.support.s3 import Bucket
from tests.support.servers import start_server
from tests.support.servers import stop_server

#: Two requesters, with values found nowhere else (so a byte search means what it says).
AGNETE = {
    "institution": "Det Kgl. Bibliotek, Netarkivet",
    "contact_name": "Agnete Qvistgaard-Ørum",
    "contact_email": "agnete.qvistgaard@kb.example.dk",
    "legal_basis": "",
    "message": "Agnetes besked om zebrafinke-arkivet 7f3a9",
}
BERTIL = {
    "institution": "Det Kgl. Bibliotek, Netarkivet",
    "contact_name": "Bertil Hjortshøj-Lund",
    "contact_email": "bertil.hjortshoj@kb.example.dk",
    "legal_basis": "",
    "message": "Bertils besked om humlebi-samlingen 2c8e1",
}


def needles(person: dict[str, str]) -> list[bytes]:
    """The values an erasure must leave nowhere: name, email, message (UTF-8, as the engines store text)."""
    return [person[f].encode("utf-8") for f in ("contact_name", "contact_email", "message")]


def files_holding(folders: Iterable[Path], person: dict[str, str]) -> list[str]:
    """Every file under ``folders`` whose raw bytes hold one of the person's values (any ASCII case)."""
    found = []
    wanted = [n.lower() for n in needles(person)]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue  # sockets, links
            try:
                raw = path.read_bytes().lower()
            except FileNotFoundError:
                continue  # a running server's temporary file, gone meanwhile
            found += [f"{path}: {n.decode()}" for n in wanted if n in raw]
    return found


def file_requests(instance: Path, *people: dict[str, str]) -> list[int]:
    """File a request for each person (the core API the web form calls); approve the first."""
    _, archive = open_instance(instance)
    try:
        ids = [archive.access.file(dict(person)).id for person in people]
        archive.access.approve(ids[0])
        return ids
    finally:
        archive.catalog.close()


def publish(instance: Path) -> None:
    _, archive = open_instance(instance)
    try:
        archive.publish([b"%PDF-1.4 kursusmateriale\n"], filename="kursus.pdf", visibility="protected")
    finally:
        archive.catalog.close()


def cli_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def listed(instance: Path) -> dict[str, dict[str, Any]]:
    """`pligt requests --json`, by contact name (erased and unreadable ones under their state)."""
    return {
        r["contact_name"] or f"{r['personal_data']} #{r['id']}": r
        for r in cli_json("requests", "--instance", str(instance))
    }


def new_instance(path: Path, **env: str) -> Instance:
    settings = load_settings(path, env=env)
    return Instance(settings, init_instance(settings, chosen=tuple(k.removeprefix("PLIGT_").lower() for k in env)))


# -- SQLite catalog, local storage ------------------------------------------------------------


def test_backup_erase_restore_leaves_the_erased_person_in_no_file_and_the_other_readable(
    instance: Instance, tmp_path: Path
) -> None:
    inst = instance.path
    publish(inst)
    agnete, bertil = file_requests(inst, AGNETE, BERTIL)
    assert set(listed(inst)) == {AGNETE["contact_name"], BERTIL["contact_name"]}
    backups = tmp_path / "backups"
    assert invoke("backup", "--instance", str(inst), str(backups / "monday")).exit_code == 0

    erased = cli_json("gdpr", "erase", "--email", AGNETE["contact_email"], "--instance", str(inst))
    assert erased["requests_erased"] == [agnete]
    key_backups = tmp_path / "key-backups"  # taken nightly, after the erasure, apart from the backups
    assert invoke("keys", "backup", "--instance", str(inst), str(key_backups)).exit_code == 0

    # The machine is lost: a new one restores Monday's backup with the newest key backup.
    [key_backup] = key_backups.iterdir()
    restored = tmp_path / "restored"
    result = invoke("restore", str(backups / "monday"), "--instance", str(restored), "--keys", str(key_backup))
    assert result.exit_code == 0, result.stderr
    assert "carried over the erasure of 1 request(s) made after this catalog was copied" in result.stdout
    assert f"#{agnete}" in result.stdout

    shown = listed(restored)
    assert set(shown) == {f"erased #{agnete}", BERTIL["contact_name"]}
    assert shown[BERTIL["contact_name"]]["message"] == BERTIL["message"]
    assert shown[BERTIL["contact_name"]]["personal_data"] == "readable"
    assert invoke("audit", "verify", "--instance", str(restored)).exit_code == 0
    exported = json.loads(
        invoke("gdpr", "export", "--email", BERTIL["contact_email"], "--instance", str(restored)).stdout
    )
    assert [r["id"] for r in exported["access_requests"]] == [bertil]
    assert exported["audit_entries"][0]["personal"]["contact_name"] == BERTIL["contact_name"]

    folders = [inst, restored, backups, key_backups]
    assert files_holding(folders, AGNETE) == []
    # Bertil is readable through the commands, yet in clear in no file either: only ever sealed.
    assert files_holding(folders, BERTIL) == []


def test_an_old_backup_restored_without_keys_holds_only_ciphertext_and_says_so(
    instance: Instance, tmp_path: Path
) -> None:
    inst = instance.path
    file_requests(inst, AGNETE, BERTIL)
    assert invoke("backup", "--instance", str(inst), str(tmp_path / "backup")).exit_code == 0
    assert invoke("gdpr", "erase", "--email", AGNETE["contact_email"], "--instance", str(inst)).exit_code == 0

    restored = tmp_path / "restored"
    result = invoke("restore", str(tmp_path / "backup"), "--instance", str(restored))
    assert result.exit_code == 0, result.stderr
    assert "the personal fields of 2 access request(s) are unreadable" in result.stderr

    listing = invoke("requests", "--instance", str(restored))
    assert listing.exit_code == 0
    assert listing.stdout.count("(unreadable: no key)") == 2
    assert "unreadable" in listing.stderr and "key store" in listing.stderr
    # The live key store brings Bertil back, and Agnete's destroyed key carries her erasure over.
    taken = cli_json("keys", "restore", str(inst / "personal_keys.sqlite3"), "--instance", str(restored))
    assert (taken["keys"], taken["tombstones"], taken["erased_since"], taken["without_key"]) == (1, 1, 0, 0)
    assert len(taken["erasures_carried_over"]) == 1
    assert BERTIL["contact_name"] in listed(restored)
    assert files_holding([inst, restored, tmp_path / "backup"], AGNETE) == []


def test_a_rectified_email_is_unreadable_in_every_copy_made_before(instance: Instance, tmp_path: Path) -> None:
    inst = instance.path
    _, bertil = file_requests(inst, AGNETE, BERTIL)
    assert invoke("backup", "--instance", str(inst), str(tmp_path / "backup")).exit_code == 0
    new_email = "bertil.lund@kb.example.dk"
    done = cli_json(
        "gdpr", "rectify", "--email", BERTIL["contact_email"], "--new-email", new_email, "--instance", str(inst)
    )
    assert done == {"requests_rectified": [bertil], "fields": ["contact_email"]}
    assert listed(inst)[BERTIL["contact_name"]]["contact_email"] == new_email
    assert invoke("audit", "verify", "--instance", str(inst)).exit_code == 0

    # The backup from before, with the keys of today: the old address opens nowhere.
    restored = tmp_path / "restored"
    result = invoke(
        "restore", str(tmp_path / "backup"), "--instance", str(restored), "--keys", str(inst / "personal_keys.sqlite3")
    )
    assert result.exit_code == 0, result.stderr
    text = json.dumps(cli_json("requests", "--instance", str(restored)), ensure_ascii=False)
    assert BERTIL["contact_email"] not in text and AGNETE["contact_email"] in text
    assert files_holding([inst, restored, tmp_path / "backup"], BERTIL) == []


def test_a_lost_key_store_leaves_the_archive_serving_and_verifying(instance: Instance, tmp_path: Path) -> None:
    inst = instance.path
    publish(inst)
    _, archive = open_instance(inst)
    request = archive.access.file(dict(AGNETE))
    approval = archive.access.approve(request.id)
    archive.catalog.close()
    (inst / "personal_keys.sqlite3").unlink()  # the disk it was on died

    server = start_server(inst, tmp_path / "server.log")
    try:
        listing = requests.get(
            server.url + "/protected/", auth=(approval.credential.username, approval.password), timeout=10
        )
        assert listing.status_code == 200
        got = requests.get(
            server.url + "/files/kursus/v1/kursus.pdf",
            auth=(approval.credential.username, approval.password),
            timeout=10,
        )
        assert got.status_code == 200 and got.content.startswith(b"%PDF")
        owner = requests.get(server.url + "/api/requests", auth=instance.owner_auth, timeout=10)
        assert owner.status_code == 200
        assert [r["personal_data"] for r in owner.json()["requests"]] == ["unreadable"]
    finally:
        stop_server(server)

    for command in (("audit", "verify"), ("requests",), ("harvest",), ("keys", "status")):
        result = invoke(*command, "--instance", str(inst))
        assert result.exit_code == 0, (command, result.stderr)
        if command != ("keys", "status"):
            assert "personal_keys.sqlite3 is missing" in result.stderr, command
    status = cli_json("keys", "status", "--instance", str(inst))
    assert (status["exists"], status["without_key"]) == (False, 1)
    assert invoke("audit", "verify", "--instance", str(inst)).stdout.startswith("audit log intact")
    # New requests are sealed under new keys (a new store is made); the archive goes on.
    file_requests(inst, BERTIL)
    assert BERTIL["contact_name"] in listed(inst)


def test_purge_destroys_the_key_so_a_copy_from_before_cannot_bring_the_fields_back(tmp_path: Path) -> None:
    clock = Clock()
    keys = SqliteKeyStore(tmp_path / "instance" / "personal_keys.sqlite3")
    archive = Archive(
        SqliteCatalog(tmp_path / "instance" / "catalog.sqlite3", keys=keys),
        LocalStorage(tmp_path / "files"),
        clock=clock,
    )
    archive.catalog.migrate()
    request = archive.access.file(dict(AGNETE))
    archive.access.deny(request.id, "no protected material")
    (tmp_path / "copies").mkdir()
    archive.catalog.backup_to(tmp_path / "copies" / "before.sqlite3")
    clock.advance(days=400)

    assert Privacy(archive.catalog, archive.clock).purge().requests == [request.id]
    assert files_holding([tmp_path], AGNETE) == []
    old = SqliteCatalog(tmp_path / "copies" / "before.sqlite3", keys=keys)  # the copy, with today's keys
    found = old.get_request(request.id)
    assert found is not None and found.unreadable and found.contact_email is None
    assert old.personal_data_report()["erased_since"] == 1
    assert Privacy(old, clock).carry_over(lambda _: None) is not None  # and the erasure is carried over
    assert old.get_request(request.id).personal_data == "erased"  # type: ignore[union-attr]
    Archive(old, LocalStorage(tmp_path / "files"), clock=clock).verify_audit()


def test_key_backups_older_than_the_stated_days_are_deleted(instance: Instance, tmp_path: Path) -> None:
    inst = instance.path
    file_requests(inst, AGNETE)
    _, archive = open_instance(inst)
    assert archive.catalog.keys is not None
    folder = tmp_path / "key-backups"
    start = archive.clock()
    first = backup_keys(archive.catalog.keys, folder, start, keep_days=7)
    second = backup_keys(archive.catalog.keys, folder, start + timedelta(days=6), keep_days=7)
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.path.name, second.path.name])
    third = backup_keys(archive.catalog.keys, folder, start + timedelta(days=7, hours=1), keep_days=7)
    assert third.removed == [first.path.name]
    assert sorted(p.name for p in folder.iterdir()) == sorted([second.path.name, third.path.name])
    assert oct(third.path.stat().st_mode & 0o777) == "0o600"


# -- PostgreSQL catalog -----------------------------------------------------------------------


@pytest.mark.parametrize("key_store", ["file", "postgresql"])
def test_a_pg_dump_from_before_the_erasure_restored_after_holds_the_person_nowhere(
    tmp_path: Path, postgres: Cluster, postgres_url: str, key_store: str
) -> None:
    # The key store: the instance's file (one machine), or a database of its own (several machines;
    # in production on another server than the catalog's, here in the same throw-away cluster).
    keys = {"PLIGT_KEY_STORE": postgres.new_database()} if key_store == "postgresql" else {}
    instance = new_instance(tmp_path / "instance", PLIGT_CATALOG=postgres_url, **keys)
    assert (instance.path / "personal_keys.sqlite3").exists() is False
    inst = instance.path
    publish(inst)
    agnete, _ = file_requests(inst, AGNETE, BERTIL)
    assert (inst / "personal_keys.sqlite3").exists() is (key_store == "file")
    dump = tmp_path / "dumps" / "catalog.sql"
    dump.parent.mkdir()
    subprocess.run(
        [str(postgres.bin / "pg_dump"), "--no-owner", "--file", str(dump), postgres_url], check=True, timeout=120
    )
    assert invoke("gdpr", "erase", "--email", AGNETE["contact_email"], "--instance", str(inst)).exit_code == 0

    # The database is lost; the dump from before is loaded into a new one, and the instance pointed at it.
    restored_url = postgres.new_database()
    subprocess.run(
        [str(postgres.bin / "psql"), "--quiet", "--set", "ON_ERROR_STOP=1", "--file", str(dump), restored_url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    result = invoke("requests", "--instance", str(inst), env={"PLIGT_CATALOG": restored_url})
    assert result.exit_code == 0
    assert "(unreadable: no key)" in result.stdout and "unreadable" in result.stderr
    purged = invoke("purge", "--instance", str(inst), "--json", env={"PLIGT_CATALOG": restored_url})
    assert purged.exit_code == 0, purged.stderr
    assert json.loads(purged.stdout)["erasures_carried_over"] == [agnete]
    env = {"PLIGT_CATALOG": restored_url}
    shown = {r["id"]: r for r in json.loads(invoke("requests", "--json", "--instance", str(inst), env=env).stdout)}
    assert shown[agnete]["personal_data"] == "erased"
    assert [r["contact_name"] for r in shown.values() if r["contact_name"]] == [BERTIL["contact_name"]]
    assert invoke("audit", "verify", "--instance", str(inst), env=env).exit_code == 0

    subprocess.run(
        [str(postgres.bin / "psql"), "--quiet", "--command", "CHECKPOINT", postgres.url()], check=True, timeout=60
    )
    # The dump, the instance (with its key store) and the whole cluster: data files, WAL, logs.
    folders = [inst, dump.parent, postgres.folder]
    assert files_holding(folders, AGNETE) == []
    assert files_holding(folders, BERTIL) == []


# -- upgrading an instance whose catalog holds personal fields in clear ------------------------


def test_an_existing_catalog_is_sealed_on_upgrade_and_keeps_no_clear_copy(instance: Instance, tmp_path: Path) -> None:
    inst = instance.path
    # A catalog from before schema 7 (migrations 1-6), with a request and its audit entry in clear.
    old = tmp_path / "before-upgrade" / "catalog.sqlite3"
    old.parent.mkdir()
    db = sqlite3.connect(old, isolation_level=None)
    for number, script in enumerate(_MIGRATIONS[:6], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {number:d}")
    at, fields = "2026-01-05T12:00:00Z", dict(AGNETE)
    db.execute(
        "INSERT INTO access_requests (institution, contact_name, contact_email, legal_basis, message, created_at) "
        "VALUES (:institution, :contact_name, :contact_email, :legal_basis, :message, :at)",
        {**fields, "at": at},
    )
    digest_key, digest = seal_personal(fields)
    data = {"request": 1}
    db.execute(
        "INSERT INTO audit_log (seq, at, action, data, personal, personal_key, personal_digest, prev_hash, hash) "
        "VALUES (1, ?, 'request.filed', ?, ?, ?, ?, ?, ?)",
        (
            at,
            canonical_json(data).decode(),
            canonical_json(fields).decode(),
            digest_key,
            digest,
            GENESIS,
            entry_hash(1, GENESIS, at, "request.filed", data, digest),
        ),
    )
    db.close()
    (inst / "catalog.sqlite3").unlink()
    (inst / "checkpoint").unlink(missing_ok=True)
    shutil.copyfile(old, inst / "catalog.sqlite3")

    _, archive = open_instance(inst, upgrade=True)  # what pligt serve does as it starts
    archive.catalog.close()
    [row] = dump(inst / "catalog.sqlite3", "access_requests")
    assert all(row[f] is None for f in ("institution", "contact_name", "contact_email", "message"))
    assert row["sealed"].startswith("pligt-sealed-v1:") and row["key_id"]
    [entry] = dump(inst / "catalog.sqlite3", "audit_log")
    assert entry["personal"].startswith("pligt-sealed-v1:") and entry["personal_key"] is None
    assert listed(inst)[AGNETE["contact_name"]]["message"] == AGNETE["message"]
    assert invoke("audit", "verify", "--instance", str(inst)).exit_code == 0
    assert files_holding([inst], AGNETE) == []  # overwritten in place, the write-ahead log emptied
    assert files_holding([old.parent], AGNETE)  # a copy from before: in clear (a limit)

    assert invoke("gdpr", "erase", "--email", AGNETE["contact_email"], "--instance", str(inst)).exit_code == 0
    assert invoke("audit", "verify", "--instance", str(inst)).exit_code == 0


def dump(catalog: Path, table: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    finally:
        db.close()


# -- S3 storage ------------------------------------------------------------------------------


def test_on_s3_storage_nothing_personal_reaches_the_bucket_and_the_erasure_reaches_the_backup(
    instance: Instance, tmp_path: Path, bucket: Bucket, aws_env: None
) -> None:
    with instance.settings.config_file.open("a", encoding="utf-8") as config:
        config.write(bucket.settings_toml())
    inst = instance.path
    publish(inst)
    agnete, _ = file_requests(inst, AGNETE, BERTIL)
    assert invoke("backup", "--instance", str(inst), str(tmp_path / "backup")).exit_code == 0
    assert invoke("gdpr", "erase", "--email", AGNETE["contact_email"], "--instance", str(inst)).exit_code == 0
    assert invoke("keys", "backup", "--instance", str(inst), str(tmp_path / "key-backups")).exit_code == 0
    [key_backup] = (tmp_path / "key-backups").iterdir()

    restored = tmp_path / "restored"
    result = invoke("restore", str(tmp_path / "backup"), "--instance", str(restored), "--keys", str(key_backup))
    assert result.exit_code == 0, result.stderr
    assert f"#{agnete}" in result.stdout
    assert set(listed(restored)) == {f"erased #{agnete}", BERTIL["contact_name"]}

    stored = b"".join(
        bucket.client.get_object(Bucket=bucket.name, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        for v in bucket.versions()
        if "VersionId" in v and not v.get("IsDeleteMarker")
    ).lower()
    assert stored  # the deposit is there
    for person in (AGNETE, BERTIL):
        assert not [n for n in needles(person) if n.lower() in stored]
    folders = [inst, restored, tmp_path / "backup", tmp_path / "key-backups"]
    assert files_holding(folders, AGNETE) == []
